"""Critics of candidate translations: LLM rubric, reference proxies, embedding cosine, hygiene
flags, and the great-expectations gate on the candidate table."""

from lira.critic.checks import GateFailure, GateResult, gate_report, run_gate
from lira.critic.embedding import cosine_rows, embedding_similarity
from lira.critic.flags import FLAG_COLUMNS, hygiene, language_id
from lira.critic.llm import LLMCritic, parse_scores
from lira.critic.reference import reference_scores

__all__ = [
    "FLAG_COLUMNS",
    "GateFailure",
    "GateResult",
    "LLMCritic",
    "cosine_rows",
    "embedding_similarity",
    "gate_report",
    "hygiene",
    "language_id",
    "parse_scores",
    "reference_scores",
    "run_gate",
]
