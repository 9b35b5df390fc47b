"""The one typed config: ``params.yaml`` validated into :class:`Params`.

Each method owns its section next to its code (:class:`lira.arca.config.ArcaConfig`,
:class:`lira.lasr.config.LasrConfig`, :class:`lira.encoders.config.EncoderConfig`); this module
composes them with the stage sections, and is the only YAML loader and dotted-override code.

Every parameter enters the code through here. Each DVC stage reads its own section plus
``shared``; an unknown key, a wrong type, an out-of-range value or an unsupported language fails
before any work with a message naming the key, the value and what is allowed.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from lira.arca.config import ArcaConfig
from lira.config_base import ConfigSection as _Section
from lira.config_base import did_you_mean
from lira.credentials import check_key_env, check_key_transport
from lira.distributed.config import DistributedConfig
from lira.encoders.config import EncoderConfig, EncodersConfig
from lira.languages import LANGUAGES, supported_codes
from lira.lasr.config import LasrConfig


class ConfigError(ValueError):
    """A params file that cannot be used; the message names file, key, value and what is allowed."""


# --------------------------------------------------------------------------------------- shared
class PathsParams(_Section):
    raw: str = Field("data/raw", description="the DVC-tracked raw data (data.dvc): the sources' paths live under it")
    prepared: str = Field("data/prepared", description="build_dataset's output: the prepared tables (texts, items, qrels, pairs) with their splits")
    translations: str = Field("data/translations", description="translate's output: every agent's candidate translations")
    critic: str = Field("data/critic", description="critic_score's output: the scored candidates and the quarantine")
    arca: str = Field("models/arca", description="train_arca's output: adaptors, Actor and the selected translations")
    lasr: str = Field("models/lasr", description="train_lasr's output: one lira model folder per variant (full + ablations)")
    distill: str = Field("models/distill", description="evaluate's MSE-distillation student (a baseline)")
    metrics: str = Field("metrics", description="the stages' reports (JSON) and the headline DVC metrics")
    plots: str = Field("plots", description="the stages' plots (CSV for dvc plots, PNG)")
    cache: str = Field(".cache/lira", description='encoder feature caches and the MLflow parent-run record (not tracked)')


PRESETS: dict[str, dict[str, str]] = {
    # The paper's Base / Large / Max differ only in backbone size.
    "base": {"lrl": "hf:intfloat/multilingual-e5-base", "en": "hf:intfloat/e5-base-v2"},
    "large": {"lrl": "hf:intfloat/multilingual-e5-large", "en": "hf:intfloat/e5-large-v2"},
    "max": {"lrl": "hf:BAAI/bge-m3", "en": "hf:BAAI/bge-large-en-v1.5"},
}


class SharedParams(_Section):
    languages: list[str] = Field(default_factory=lambda: ["vi", "th", "id", "ms", "ur", "bn", "fil"], min_length=1, description='the low-resource languages to train and evaluate (codes from lira/languages.py)')
    anchor_language: str = Field("en", description='the anchor language: the English semantic space the LRL path is aligned to')
    seed: int = Field(13, ge=0, description='the one seed of every random draw (splits, init, sampling, bootstrap)')
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description='cpu | cuda | auto (cuda if available)')
    threads: int = Field(2, ge=1, le=512, description='torch CPU threads per process')
    preset: Literal["base", "large", "max"] | None = Field(None, description="null, or base | large | max: the paper's real backbones (multilingual-e5-base/large, bge-m3 with their English twins); overrides shared.encoders.*.spec and needs the weights locally or a hub")
    encoders: EncodersConfig = Field(EncodersConfig(), description='the two frozen encoders: lrl reads the low-resource text, en the chosen English translation')
    s_feat: int = Field(1, ge=1, le=64, description="temporal-pooling slots S_feat (1 = mean pooling: LiRA then starts at the frozen encoder's own embedding)")
    paths: PathsParams = Field(PathsParams(), description='where each stage reads and writes, relative to the project root')
    distributed: DistributedConfig = Field(DistributedConfig(), description=(
        "scale-out under torchrun: processes per node and backend (see lira.distributed); without it one process"))

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in LANGUAGES]
        if bad:
            raise ValueError(f"unsupported language code(s) {bad}; supported: {supported_codes()}")
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate language codes in {v}")
        return v

    @field_validator("anchor_language")
    @classmethod
    def _known_anchor(cls, v: str) -> str:
        if v not in LANGUAGES:
            raise ValueError(f"unsupported language code {v!r}; supported: {supported_codes()}")
        return v

    @model_validator(mode="after")
    def _anchor_not_target(self) -> SharedParams:
        if self.anchor_language in self.languages:
            raise ValueError(f"anchor_language {self.anchor_language!r} is also in languages")
        return self

    def encoder(self, path: Literal["lrl", "en"]) -> EncoderConfig:
        """The encoder of one path, with the preset (if any) applied."""
        enc: EncoderConfig = getattr(self.encoders, path)
        if self.preset is not None:
            enc = enc.model_copy(update={"spec": PRESETS[self.preset][path]})
        return enc

    def resolved_encoders(self) -> dict[str, Any]:
        """The two encoders as plain data, presets applied (what a trained model records)."""
        data = self.encoders.model_dump(mode="json")
        for path in ("lrl", "en"):
            data[path]["spec"] = self.encoder(path).spec  # type: ignore[arg-type]
        return data


# --------------------------------------------------------------------------------- build_dataset
class SourceParams(_Section):
    """One raw source. ``kind`` picks the reader; ``language`` is required where the format has none."""

    kind: Literal["sample", "beir", "parallel_tsv", "sts", "mc_jsonl"] = Field(description='the reader: sample (the shipped sample folder), beir, parallel_tsv, sts, mc_jsonl')
    path: str = Field(description="the source's file or folder, relative to the project root")
    language: str | None = Field(None, description="the source's language code (required where the format does not carry one: beir, sts, mc_jsonl, parallel_tsv)")
    name: str | None = Field(None, description='a name for the source in reports (default: derived from the path)')

    @field_validator("language")
    @classmethod
    def _lang(cls, v: str | None) -> str | None:
        if v is not None and v not in LANGUAGES:
            raise ValueError(f"unsupported language code {v!r}; supported: {supported_codes()}")
        return v

    @model_validator(mode="after")
    def _needs_language(self) -> SourceParams:
        if self.kind in ("beir", "sts", "mc_jsonl", "parallel_tsv") and self.language is None:
            raise ValueError(f"source kind {self.kind!r} needs `language`")
        return self


class SplitParams(_Section):
    train: float = Field(0.6, gt=0, lt=1, description="share of each language's data in the train split")
    dev: float = Field(0.2, gt=0, lt=1, description='share in the dev split (early stopping, model choice)')
    test: float = Field(0.2, gt=0, lt=1, description='share in the test split (evaluate only); train + dev + test = 1')

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitParams:
        total = self.train + self.dev + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + dev + test must be 1.0, got {total:.4f}")
        return self


class BuildDatasetParams(_Section):
    sources: list[SourceParams] = Field(
        default_factory=lambda: [SourceParams(kind="sample", path="data/raw/sample")], min_length=1, description='the raw sources, e.g. {kind: beir, path: data/raw/my-beir-folder, language: th} or {kind: parallel_tsv, path: data/raw/tatoeba-th.tsv, language: th}')
    split: SplitParams = Field(SplitParams(), description='the train/dev/test shares, drawn per language with shared.seed')
    on_bad_row: Literal["error", "reject"] = Field("error", description='error: stop at the first bad row (file, row, field named) | reject: write it to <prepared>/rejects.parquet with the reason and go on')
    max_per_language: int | None = Field(None, ge=4, description='cap per language and task (a small slice for smoke tests); null keeps everything')


# ------------------------------------------------------------------------------------- translate
class _ServerClient(_Section):
    """The key checks every section that talks to an LLM server shares."""

    @field_validator("api_key_env", check_fields=False)
    @classmethod
    def _key_env(cls, v: str | None) -> str | None:
        return None if v is None else check_key_env(v)

    @model_validator(mode="after")
    def _key_url(self) -> Any:
        # Checked here when base_url is in params; the HTTP client checks it again at request time
        # (base_url may come from $OPENAI_BASE_URL).
        if self.api_key_env is not None and self.base_url is not None:
            check_key_transport(self.base_url)
        return self


class AgentParams(_ServerClient):
    """One translator agent of the pass@k budget."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the agent's unique name (letters, digits, _ . -), used in reports and caches")
    backend: Literal["simulated", "transformers", "openai", "vllm"] = Field(description='simulated (offline, distorts the reference) | transformers (in-process) | openai (an OpenAI-compatible server) | vllm')
    model: str = Field("simulated", description='the model id or local path the backend loads or asks for')
    noise: float = Field(0.3, ge=0, le=1, description='simulated backend: the probability that a candidate is distorted')
    distortions: list[
        Literal["drop", "swap", "copy", "truncate", "preamble", "wrong_language", "closing"]
    ] = Field(default_factory=lambda: ["drop", "swap", "copy", "truncate", "preamble", "wrong_language"], description='simulated backend: the distortions a distorted candidate may get')
    temperature: float = Field(0.0, ge=0, le=2, description='sampling temperature (0 = greedy)')
    max_new_tokens: int = Field(256, ge=1, le=8192, description='the longest translation generated, in tokens')
    batch_size: int = Field(16, ge=1, le=4096, description='texts per generation batch (transformers/vllm)')
    base_url: str | None = Field(None, description="the server's URL for openai/vllm (default: $OPENAI_BASE_URL); a key is sent only over https or to localhost")
    api_key_env: str | None = Field(None, description='the NAME of the environment variable holding the API key (never the key itself)')
    concurrency: int = Field(4, ge=1, le=256, description='requests in flight at once (openai backend)')
    timeout_s: float = Field(60.0, gt=0, description='seconds before a request is abandoned (then retried)')
    max_retries: int = Field(3, ge=0, le=20, description='retries per failed request, with backoff')
    # vllm only: vLLM's own parallelism (its engine arguments of the same names; GPUs per agent =
    # tensor_parallel_size x data_parallel_size).
    tensor_parallel_size: int = Field(1, ge=1, le=64, description=(
        "vllm backend: GPUs each model replica is split over (vLLM tensor parallelism)"))
    data_parallel_size: int = Field(1, ge=1, le=64, description=(
        "vllm backend: model replicas that share the agent's requests (vLLM data parallelism)"))

    @model_validator(mode="after")
    def _parallelism_is_vllms(self) -> Any:
        if self.backend != "vllm" and (self.tensor_parallel_size > 1 or self.data_parallel_size > 1):
            raise ValueError(f"agent {self.name!r}: tensor_parallel_size / data_parallel_size are vLLM's and need "
                             f"backend 'vllm' (got {self.backend!r}); an openai agent scales with concurrency, or "
                             "with the parallelism of the server it calls (`vllm serve --tensor-parallel-size N`)")
        return self


def _default_agents() -> list[AgentParams]:
    return [
        AgentParams(name="sim-careful", backend="simulated", noise=0.15),
        AgentParams(name="sim-average", backend="simulated", noise=0.35),
        AgentParams(name="sim-sloppy", backend="simulated", noise=0.6),
    ]


class TranslateParams(_Section):
    agents: list[AgentParams] = Field(default_factory=_default_agents, min_length=1, description='the pass@k budget: K agents, each its own backend/model/settings, e.g. {name: qwen-7b, backend: openai, model: Qwen/Qwen2.5-7B-Instruct, base_url: http://127.0.0.1:8000/v1, api_key_env: OPENAI_API_KEY}')
    prompt_version: str = Field("v1", description="the translation prompt's version (part of the cache key: a new prompt re-asks)")
    max_failed_share: float = Field(0.5, ge=0, le=1, description='an agent whose requests fail (after retries) on more than this share of its rows fails the stage; failures are never cached, so a rerun retries only them')

    @field_validator("agents")
    @classmethod
    def _unique_names(cls, v: list[AgentParams]) -> list[AgentParams]:
        names = [a.name for a in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"agent names must be unique, repeated: {dup}")
        return v


# ---------------------------------------------------------------------------------- critic_score
class LLMCriticParams(_ServerClient):
    backend: Literal["openai", "transformers", "vllm"] = Field(description='openai (an OpenAI-compatible server) | transformers | vllm')
    model: str = Field(description="the judge model's id or local path")
    base_url: str | None = Field(None, description="the server's URL (openai/vllm; default $OPENAI_BASE_URL)")
    api_key_env: str | None = Field(None, description='the NAME of the environment variable holding the API key')
    max_retries: int = Field(2, ge=0, le=20, description='retries per failed request')
    timeout_s: float = Field(60.0, gt=0, description='seconds before a request is abandoned')
    concurrency: int = Field(4, ge=1, le=256, description='requests in flight at once')


class ChecksParams(_Section):
    """Great-expectations gate on the candidate table."""

    meta_patterns: list[str] = Field(
        default_factory=lambda: [
            r"(?i)^\s*(sure|certainly|of course|okay|ok)[,!.]",
            r"(?i)here\s+is\s+(the|your|a)\s+(english\s+)?translation",
            r"(?i)^\s*translation\s*:",
            r"(?i)\bas an ai\b",
            r"(?i)i hope this helps",
            r"(?i)let me know if",
        ], description="regexes of chatty meta text ('Sure, here is the translation'): such a candidate is flagged")
    injection_patterns: list[str] = Field(
        default_factory=lambda: [
            r"(?i)\b(ignore|disregard|forget|override)\b[^.!?\n]{0,40}\b(previous|prior|above|earlier|preceding|all|any|your)\b[^.!?\n]{0,30}\b(instructions?|prompts?|rules?|rubric|directions?|guidelines?)\b",
            r"(?i)\b(rate|score|grade|mark)\b[^.!?\n]{0,40}\b(10|ten)\s*(/|out\s+of)\s*(10|ten)\b",
            r"(?i)\b(give|assign|award)\b[^.!?\n]{0,30}\b(translation|candidate|answer|output|text|response)\b[^.!?\n]{0,30}\b(perfect|maximum|max|full|highest|top)\s+(score|rating|marks?)\b",
            r"(?i)[\"']\s*(fidelity|emotion|tone)\s*[\"']\s*:",
            r"(?i)</?\s*(candidate|source|system|user|assistant|instructions?)\s*>",
            r"(?i)\b(system|developer)\s+(prompt|message)\s*:",
            r"(?i)\bnew\s+instructions?\s*:",
            r"(?i)\byou\s+(must|should|will)\s+(now\s+)?(output|answer|respond|reply|rate|score|print)\b",
        ], description="regexes of instruction-like text aimed at the judge ('ignore all previous instructions', 'rate this 10/10', a planted verdict, our own block tags): flagged `injection` and quarantined")
    min_length_ratio: float = Field(0.3, gt=0, description='a candidate shorter than this times the source (in characters) is flagged')
    max_length_ratio: float = Field(3.0, gt=0, description='a candidate longer than this times the source is flagged')
    min_english_prob: float = Field(0.5, ge=0, le=1, description='a candidate whose language-id probability of English is below this is flagged')
    max_fail_share: float = Field(0.5, ge=0, le=1, description='above this share of flagged candidates the stage fails (a broken agent, not noise)')

    @field_validator("meta_patterns", "injection_patterns")
    @classmethod
    def _patterns_compile(cls, v: list[str], info: Any) -> list[str]:
        for i, pat in enumerate(v):
            try:
                re.compile(pat)
            except re.error as e:
                raise ValueError(f"{info.field_name}[{i}] = {pat!r} is not a valid regex: {e}") from None
        return v

    @model_validator(mode="after")
    def _length_bounds_ordered(self) -> ChecksParams:
        # Inverted bounds flag every row, and GX errors on them instead of failing rows.
        if self.min_length_ratio >= self.max_length_ratio:
            raise ValueError(f"min_length_ratio = {self.min_length_ratio} must be < max_length_ratio = "
                             f"{self.max_length_ratio}")
        return self


class CriticParams(_Section):
    llm: LLMCriticParams | None = Field(None, description='the LLM critic (semantic/emotion/pragmatics scores), e.g. {backend: openai, model: Qwen/Qwen2.5-32B-Instruct, base_url: http://127.0.0.1:8000/v1}; null: none')
    reference_critic: bool = Field(True, description='score candidates by chrF against the reference translation + emotion/tone proxies (the offline default)')
    embedding_critic: bool = Field(True, description='score candidates by embedding similarity to the source')
    checks: ChecksParams = Field(ChecksParams(), description='the great-expectations checks every candidate passes before it is scored')
    max_unscored_share: float = Field(0.1, ge=0, le=1, description='candidates a critic was asked about but could not score (critic down, unparsable answers) are quarantined as unscored; above this share the stage fails')


# -------------------------------------------------------------------------------------- evaluate
class EvaluateParams(_Section):
    retrieval_k: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [1, 5, 10], min_length=1, description='the k of recall@k (nDCG@10 and MRR@10 are always reported)')
    bootstrap_resamples: int = Field(1000, ge=100, le=100_000, description='paired-bootstrap resamples for every CI and for the promotion gate')
    confidence: float = Field(0.95, gt=0.5, lt=1, description="the CIs' confidence level")
    # st_distill is off by default: it fine-tunes the whole encoder (about 28 min and 7 GiB on a
    # loaded 2-core machine), far beyond the run's time budget; bench/quality_flores.py always runs it.
    baselines: list[Literal["frozen", "translate_test", "mse_distill", "st_distill"]] = Field(
        default_factory=lambda: ["frozen", "translate_test", "mse_distill"],
        description="systems LiRA is compared with: frozen (the frozen encoder), translate_test (embed the English "
                    "translation), mse_distill (an MSE-distilled residual student on the frozen features), st_distill "
                    "(sentence-transformers multilingual distillation of the whole encoder, lira.eval.st_distill; "
                    "optional because of its cost)"
    )
    distill_epochs: int = Field(20, ge=1, description="epochs of the mse_distill baseline's student")
    distill_lr: float = Field(1e-3, gt=0, description='learning rate of the mse_distill student')
    st_distill_epochs: int = Field(1, ge=1, le=100, description="st_distill: epochs over the train pairs (the recipe's 1)")
    st_distill_lr: float = Field(2e-5, gt=0, le=1, description="st_distill: AdamW learning rate (warmup 10%, linear decay)")
    st_distill_batch_size: int = Field(64, ge=1, le=4096, description="st_distill: pairs per step")
    lipschitz_deltas: list[float] = Field(default_factory=lambda: [3.0, 4.0, 5.0], min_length=1, description="the deltas over which the bound's empirical Lipschitz constant L_emp is taken (P95)")
    external: list[SourceParams] = Field(default_factory=list, description='external benchmarks evaluated beside the test split (same source format as build_dataset.sources)')


# -------------------------------------------------------------------------------------- tracking
class TrackingParams(_Section):
    enabled: bool = Field(True, description='log every stage to MLflow and register the trained model (false: no MLflow at all)')
    tracking_uri: str | None = Field(None, description='null: $MLFLOW_TRACKING_URI if set, else sqlite:///<root>/mlruns.db (embedded, no server)')
    experiment: str = Field("lira", description='the MLflow experiment the runs go to')
    registered_model: str = Field("lira", description='the registered model each evaluate run adds a version to')
    gate_metric: str = Field("retrieval.ndcg@10", description='the metric the promotion gate compares (paired bootstrap vs the champion and the frozen baseline)')
    champion_alias: str = Field("champion", description='the alias the gate moves to a better version (what models:/<name>@<alias> serves)')


STAGES = ("build_dataset", "translate", "critic_score", "train_arca", "train_lasr", "evaluate")
ENCODER_STAGES = ("critic_score", "train_arca", "train_lasr", "evaluate")  # the stages that load shared.encoders


class Params(_Section):
    shared: SharedParams = Field(SharedParams(), description='what every stage reads: languages, seed, device, encoders, paths')
    build_dataset: BuildDatasetParams = Field(BuildDatasetParams(), description='stage 1: read the raw sources, validate, split')
    translate: TranslateParams = Field(TranslateParams(), description='stage 2: K translator agents (the pass@k budget)')
    critic_score: CriticParams = Field(CriticParams(), description='stage 3: checks and critics score every candidate')
    train_arca: ArcaConfig = Field(ArcaConfig(), description='stage 4: Arca (Actor + shared adaptor anchored to English)')
    train_lasr: LasrConfig = Field(LasrConfig(), description='stage 5: LaSR and its ablations')
    evaluate: EvaluateParams = Field(EvaluateParams(), description='stage 6: LiRA vs baselines and ablations on the test split')
    tracking: TrackingParams = Field(TrackingParams(), description='MLflow tracking, registry and the promotion gate')

    def encoder(self, path: Literal["lrl", "en"]) -> EncoderConfig:
        """The encoder of one path, with the preset (if any) applied (:meth:`SharedParams.encoder`)."""
        return self.shared.encoder(path)

    def resolved(self) -> dict[str, Any]:
        """The config as plain data, presets applied (what `lira config show` prints and MLflow logs)."""
        data = self.model_dump(mode="json")
        data["shared"]["encoders"] = self.shared.resolved_encoders()
        return data


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Walk the model along ``loc`` to list the keys allowed where an unknown key appeared."""
    cur: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(cur, "model_fields", None)
        if not fields or part not in fields:
            return None
        ann = fields[part].annotation
        cur = _model_in(ann)
        if cur is None:
            return None
    fields = getattr(cur, "model_fields", None)
    return sorted(fields) if fields else None


def _model_in(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid params ({err.error_count()} problem(s)):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        value = e.get("input")
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(Params, tuple(e["loc"]))
            dym = did_you_mean(e["loc"][-1], allowed or [])
            hint = f"{dym}{' A' if dym else '; a'}llowed keys here: {allowed}" if allowed else ""
            lines.append(f"  - {key}: unknown key (value {value!r}){hint}")
        else:
            shown = repr(value)
            if len(shown) > 120:
                shown = shown[:117] + "..."
            lines.append(f"  - {key} = {shown}: {e['msg']}")
    return "\n".join(lines)


def set_dotted(data: Any, key: str, value: Any, new_map: type = dict) -> None:
    """Set ``a.b.0.c`` in nested mappings/lists, creating missing (or null) mappings on the way."""
    parts = key.split(".")
    cur = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(cur, list):
            if not part.lstrip("-").isdigit() or not -len(cur) <= int(part) < len(cur):
                raise ConfigError(f"override {key!r}: {part!r} is not an index of a list of {len(cur)}")
            idx = int(part)
            if last:
                cur[idx] = value
            else:
                if cur[idx] is None:
                    cur[idx] = new_map()
                cur = cur[idx]
        elif isinstance(cur, dict):
            if last:
                cur[part] = value
            else:
                if cur.get(part) is None:
                    cur[part] = new_map()
                cur = cur[part]
        else:
            raise ConfigError(f"override {key!r}: {'.'.join(parts[:i])!r} is a {type(cur).__name__}, not a mapping")


def flatten_overrides(overrides: dict[str, Any] | list[str] | None = None, preset: str | None = None) -> dict[str, Any]:
    """Overrides as ``{dotted.key: value}``.

    Accepts ``{"a.b": v}``, nested ``{"a": {"b": v}}`` (merged leaf by leaf) or ``["a.b=v"]``
    (values parsed as YAML, like ``lira stage -S``). ``preset`` becomes ``shared.preset``.
    """
    if isinstance(overrides, (list, tuple)):
        overrides = dotted_overrides(list(overrides))
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = value

    for key, value in (overrides or {}).items():
        if not str(key).strip():
            raise ConfigError("override with an empty key")
        walk(str(key).strip(), value)
    if preset is not None:
        flat["shared.preset"] = preset
    return flat


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """A copy of params ``data`` with the overrides (any form :func:`flatten_overrides` takes) set."""
    out = copy.deepcopy(data)
    for key, value in flatten_overrides(overrides).items():
        set_dotted(out, key, value)
    return out


def parse_params(data: dict[str, Any] | None, source: str = "<params>") -> Params:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def read_params_data(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a params file (the only place lira reads YAML params)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found (run from the project root or pass --params)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        raise ConfigError(f"{path}: the params file is empty (expected sections such as `shared:`)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | list[str] | None = None) -> Params:
    """Read and validate ``params.yaml`` plus optional overrides (dotted, nested or ``KEY=VALUE``)."""
    data = read_params_data(path)
    if overrides:
        data = apply_overrides(data, overrides)
    return parse_params(data, str(path))


def dotted_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["train_arca.lr=0.01", ...]`` -> nested dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r}: expected KEY=VALUE with a dotted key")
        key, raw = pair.split("=", 1)
        cur = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
            if not isinstance(cur, dict):
                raise ConfigError(f"override {pair!r}: {p!r} was already given a value, it cannot also hold keys")
        try:
            cur[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {pair!r}: the value is not valid YAML: {err}") from None
    return out
