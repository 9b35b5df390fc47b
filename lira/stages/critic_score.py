"""Stage ``critic_score``: score every candidate, flag its hygiene, and gate the table.

Inputs: ``<prepared>/texts.parquet`` and ``<translations>/candidates.parquet``. Outputs in
``<critic>/``:

- ``scores.parquet``: one row per candidate - text_id, lang, agent, s, e, p (1..10, NaN = missing),
  critic ("llm:<model>" | "reference" | "none"), llm_raw, sim (NaN when the embedding critic is
  off or there is no candidate), flag_empty, flag_preamble, flag_echo, flag_wrong_language,
  flag_length, flag_injection, length_ratio, english_prob, detected_lang, quarantined, reasons (comma-joined);
- ``quarantine.parquet``: the rows failing any gate check, with their reasons and candidate;
- ``validation.json``: the great-expectations validation result plus the gate summary;

and ``<metrics>/critic.json``. Which critic gives s/e/p: the LLM critic when ``critic_score.llm``
is set (fail-closed NaN on unparsable answers); else the reference critic where an en_ref exists
and ``reference_critic`` is on; else NaN with critic "none". Rows without a candidate are kept and
quarantined ("missing"), never dropped. A candidate a critic was asked about and could not score
(NaN s/e/p from the LLM critic, NaN sim from the embedding critic) is quarantined as "unscored".
When the failing share exceeds ``checks.max_fail_share``, or the unscored share (of the candidates
a critic was asked about) exceeds ``critic_score.max_unscored_share``, the stage writes
quarantine, validation and metrics (not scores) and raises :class:`GateFailure` with a report
naming the failing checks. :func:`lira.critic.checks.read_scores` is how later stages read the table back.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lira import distributed
from lira.config import Params
from lira.critic.checks import GateFailure, GateResult, gate_report, run_gate
from lira.critic.flags import FLAG_COLUMNS, hygiene
from lira.io import publish_dir, write_json, write_parquet

log = logging.getLogger(__name__)

METRICS = ["critic.json"]  # under paths.metrics; dvc.yaml declares the same (tests/stages/test_outputs.py)
PLOTS: list[str] = []
SCORE_COLUMNS = ["text_id", "lang", "agent", "s", "e", "p", "critic", "llm_raw", "sim", *FLAG_COLUMNS,
                 "length_ratio", "english_prob", "detected_lang", "lang_verdict", "quarantined", "reasons"]


def load_inputs(params: Params, root: Path) -> pd.DataFrame:
    paths = params.shared.paths
    texts = pd.read_parquet(root / paths.prepared / "texts.parquet", columns=["text_id", "text", "en_ref"])
    cands = pd.read_parquet(root / paths.translations / "candidates.parquet")
    df = cands.merge(texts.drop_duplicates("text_id"), on="text_id", how="left", validate="many_to_one")
    unknown = df["text"].isna()
    if unknown.any():
        ids = df.loc[unknown, "text_id"].head(5).tolist()
        raise ValueError(f"{int(unknown.sum())} candidates point at text ids missing from texts.parquet, e.g. {ids}")
    return df.reset_index(drop=True)


def critic_scores(params: Params, df: pd.DataFrame) -> pd.DataFrame:
    """s, e, p, critic, llm_raw for every row (see the module docstring for which critic)."""
    cfg = params.critic_score
    n = len(df)
    s, e, p = (np.full(n, np.nan) for _ in range(3))
    critic = np.array(["none"] * n, dtype=object)
    raw: list[str | None] = [None] * n
    has_cand = df["candidate"].notna().to_numpy() & (df["candidate"].fillna("").str.strip() != "").to_numpy()
    if cfg.llm is not None:
        from lira.critic.llm import LLMCritic

        idx = np.flatnonzero(has_cand)
        judge = LLMCritic(cfg.llm, seed=params.shared.seed, device=params.shared.device)
        try:
            results = judge.score([(df.at[i, "text"], df.at[i, "candidate"], df.at[i, "lang"]) for i in idx])
        finally:
            judge.close()
        for i, r in zip(idx, results):
            s[i], e[i], p[i], raw[i], critic[i] = r.s, r.e, r.p, r.raw, judge.label
        failed = sum(np.isnan(r.s) for r in results)
        if failed:
            log.warning("LLM critic: %d/%d candidates unscored after retries (NaN, raw kept)", failed, len(idx))
    elif cfg.reference_critic:
        from lira.critic.reference import reference_scores

        has_ref = df["en_ref"].notna().to_numpy() & (df["en_ref"].fillna("").str.strip() != "").to_numpy()
        for i in np.flatnonzero(has_cand & has_ref):
            s[i], e[i], p[i] = reference_scores(df.at[i, "candidate"], df.at[i, "en_ref"])
            critic[i] = "reference"
    return pd.DataFrame({"s": s, "e": e, "p": p, "critic": pd.array(critic, dtype="string"),
                         "llm_raw": pd.array(raw, dtype="string")})


def asked_rows(params: Params, frame: pd.DataFrame) -> np.ndarray:
    """Rows with a candidate that some critic was asked to score."""
    has_cand = frame["candidate"].notna().to_numpy() & (frame["candidate"].fillna("").str.strip() != "").to_numpy()
    spe_asked = (frame["critic"] != "none").fillna(False).to_numpy(dtype=bool)
    return has_cand & (spe_asked | params.critic_score.embedding_critic)


def unscored_rows(params: Params, frame: pd.DataFrame) -> np.ndarray:
    """Rows a critic was asked about that got no number: NaN s/e/p from a critic, or a NaN sim
    with the embedding critic on. Never a number made up for them: they are quarantined."""
    has_cand = frame["candidate"].notna().to_numpy() & (frame["candidate"].fillna("").str.strip() != "").to_numpy()
    spe_asked = (frame["critic"] != "none").fillna(False).to_numpy(dtype=bool)
    spe = frame[["s", "e", "p"]].to_numpy(dtype=float)
    bad = spe_asked & ~np.isfinite(spe).all(axis=1)
    if params.critic_score.embedding_critic:
        bad |= ~np.isfinite(frame["sim"].to_numpy(dtype=float))
    return has_cand & bad


def similarity(params: Params, df: pd.DataFrame, root: Path) -> np.ndarray:
    sim = np.full(len(df), np.nan)
    if not params.critic_score.embedding_critic:
        return sim
    from lira.critic.embedding import embedding_similarity

    idx = np.flatnonzero(df["candidate"].notna().to_numpy())
    if len(idx):
        sim[idx] = embedding_similarity(params.shared, df["text"].iloc[idx].astype(str).tolist(),
                                        df["candidate"].iloc[idx].astype(str).tolist(), root=root)
    return sim


def _mean(x: pd.Series) -> float | None:
    x = x.astype("float64")
    return float(x.mean()) if x.notna().any() else None


def group_metrics(scores: pd.DataFrame) -> dict[str, Any]:
    flagged = scores[FLAG_COLUMNS].any(axis=1)
    return {
        "n": len(scores),
        "share_flagged": float(flagged.mean()) if len(scores) else 0.0,
        "share_quarantined": float(scores["quarantined"].mean()) if len(scores) else 0.0,
        **{f"share_{c}": float(scores[c].mean()) if len(scores) else 0.0 for c in FLAG_COLUMNS},
        **{f"mean_{c}": _mean(scores[c]) for c in ("s", "e", "p", "sim")},
    }


def build_metrics(scores: pd.DataFrame, df: pd.DataFrame, gate: GateResult, max_fail_share: float) -> dict[str, Any]:
    reason_counts: dict[str, int] = {}
    for rs in gate.reasons.values():
        for r in rs:
            reason_counts[r] = reason_counts.get(r, 0) + 1
    out: dict[str, Any] = {
        "rows": len(scores),
        "failing_share": gate.failing_share,
        "max_fail_share": max_fail_share,
        "gate_passed": gate.failing_share <= max_fail_share,
        "quarantined": int(scores["quarantined"].sum()),
        "reasons": dict(sorted(reason_counts.items())),
        "critic": {str(k): int(v) for k, v in scores["critic"].value_counts().items()},
        "overall": group_metrics(scores),
        "per_agent": {str(a): group_metrics(g) for a, g in scores.groupby("agent", sort=True)},
        "per_language": {str(lang): group_metrics(g) for lang, g in scores.groupby("lang", sort=True)},
    }
    if "distortion" in df.columns and df["distortion"].notna().any():
        # Simulated ground truth: how much of each planted distortion the gate caught.
        d = pd.DataFrame({"distortion": df["distortion"], "quarantined": scores["quarantined"]}).dropna()
        out["gate_by_distortion"] = {
            str(k): {"n": len(g), "quarantined_share": float(g["quarantined"].mean())}
            for k, g in d.groupby("distortion", sort=True)
        }
    return out


def run(params: Params, root: Path) -> dict:
    t0 = time.perf_counter()
    root = Path(root)
    paths = params.shared.paths
    checks = params.critic_score.checks
    df = load_inputs(params, root)
    if df.empty:
        raise ValueError(f"{paths.translations}/candidates.parquet has no rows")

    flags = hygiene(df["candidate"], df["text"], df["en_ref"], checks)
    # Under torchrun the ranks share the embedding critic's encoding (lira.encoders.features); the
    # LLM critic, the gate and every output are rank 0's alone.
    sim = similarity(params, df, root)
    if not distributed.is_main():
        return {"rank": distributed.rank()}
    scores_spe = critic_scores(params, df)

    frame = pd.DataFrame({
        "row": np.arange(len(df), dtype=np.int64),
        "text_id": df["text_id"].astype("string"),
        "lang": df["lang"].astype("string"),
        "agent": df["agent"].astype("string"),
        "candidate": df["candidate"].astype("string"),
    })
    frame = pd.concat([frame, scores_spe, flags], axis=1)
    frame["sim"] = sim
    out_dir = root / paths.critic
    try:
        gate = run_gate(frame, checks, id_column="row")
    except GateFailure:
        # A broken gate leaves no table that looks gated (the folder is replaced whole).
        with publish_dir(out_dir):
            pass
        raise
    unscored = unscored_rows(params, frame)
    row_reasons = {i: [*gate.reasons.get(i, []), *(["unscored"] if unscored[i] else [])] for i in range(len(df))}
    reasons = [",".join(row_reasons[i]) for i in range(len(df))]
    frame["reasons"] = pd.array(reasons, dtype="string")
    frame["quarantined"] = (frame["reasons"] != "").astype(bool)

    scores = frame[SCORE_COLUMNS].reset_index(drop=True)
    quarantine = frame.loc[frame["quarantined"], ["text_id", "lang", "agent", "candidate", "reasons",
                                                  *FLAG_COLUMNS, "length_ratio", "english_prob",
                                                  "detected_lang", "s", "e", "p", "sim"]]
    quarantine = quarantine.assign(raw=df.loc[quarantine.index, "raw"].astype("string")
                                   if "raw" in df.columns else pd.NA).reset_index(drop=True)

    metrics = build_metrics(scores, df, gate, checks.max_fail_share)
    asked = int(asked_rows(params, frame).sum())
    n_unscored = int(unscored.sum())
    max_unscored = params.critic_score.max_unscored_share
    metrics.update(unscored=n_unscored, unscored_share=n_unscored / asked if asked else 0.0,
                   max_unscored_share=max_unscored)
    if n_unscored:
        metrics["reasons"] = dict(sorted({**metrics["reasons"], "unscored": n_unscored}.items()))
        metrics["quarantined"] = int(scores["quarantined"].sum())
    report = gate_report(gate, checks.max_fail_share)
    if n_unscored:
        report += (f"\ncritic: unscored {n_unscored}/{asked} candidates ({metrics['unscored_share']:.1%}; "
                   f"max_unscored_share = {max_unscored:.1%}), quarantined as 'unscored'")
    if metrics["unscored_share"] > max_unscored:
        metrics["gate_passed"] = False
    metrics["seconds"] = round(time.perf_counter() - t0, 3)
    # The folder is published whole: a crash part-way leaves the previous run's folder, and a
    # refused gate publishes quarantine and validation without a scores table.
    with publish_dir(out_dir) as tmp:
        write_parquet(tmp / "quarantine.parquet", quarantine)
        write_json(tmp / "validation.json", {
            "gate_passed": metrics["gate_passed"], "failing_share": gate.failing_share,
            "max_fail_share": checks.max_fail_share, "unscored": n_unscored, "unscored_share": metrics["unscored_share"],
            "max_unscored_share": max_unscored, "report": report, "checks": gate.checks,
            "great_expectations": gate.validation,
        })
        if metrics["gate_passed"]:
            write_parquet(tmp / "scores.parquet", scores)
    write_json(root / paths.metrics / "critic.json", metrics)
    if not metrics["gate_passed"]:
        raise GateFailure(report)
    log.info("%s", report)
    return metrics
