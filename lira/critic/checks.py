"""The data gate on the candidate table: great-expectations (GX Core 1.x) expectations, one reason each.

| reason           | expectation                                                            |
|------------------|------------------------------------------------------------------------|
| missing          | ``candidate`` not null                                                 |
| empty            | ``candidate`` does not match ``^\\s*$``                                 |
| preamble         | ``candidate`` matches none of ``checks.meta_patterns``                  |
| injection        | ``candidate`` matches none of ``checks.injection_patterns``             |
| echo             | ``flag_echo`` in {False} (chrF / normalised identity vs the source)    |
| wrong_language   | ``lang_verdict`` in {"en", "undetermined"} (see :mod:`lira.critic.flags`) |
| length           | ``length_ratio`` in [min_length_ratio, max_length_ratio]               |
| score_range      | ``s``, ``e``, ``p`` in [1, 10] (nulls allowed: a missing score is NaN)  |
| sim_range        | ``sim`` in [-1, 1] (nulls allowed)                                     |
| duplicate        | (text_id, agent) unique                                                |

GX runs with ``result_format="COMPLETE"`` and ``unexpected_index_column_names=[id_column]``; the
failing rows and their reasons are read from GX's ``unexpected_index_list``s (not recomputed
here). Column-map expectations skip nulls, so a row without a candidate fails only ``missing``.
Fail closed: an expectation that raised inside GX, or failed without naming a row, raises
:class:`GateFailure` (a broken gate is not a pass).
One ephemeral context per call; the serialised validation result is kept for the stage's output.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lira.config import ChecksParams
from lira.errors import StageFailed

REASONS = ("missing", "empty", "preamble", "injection", "echo", "wrong_language", "length", "score_range",
           "sim_range", "duplicate")
SIM_EPS = 1e-6  # float error on a cosine of unit vectors


class GateFailure(StageFailed):
    """The failing share exceeds ``checks.max_fail_share``; the message is the report."""


@dataclass
class GateResult:
    n_rows: int
    reasons: dict[Any, list[str]]  # row id -> reasons (failing rows only)
    checks: list[dict[str, Any]]  # one summary per expectation
    validation: dict[str, Any]  # GX's result, JSON-serialisable
    success: bool = field(default=True)

    @property
    def failing_share(self) -> float:
        return len(self.reasons) / self.n_rows if self.n_rows else 0.0


def _expectations(checks: ChecksParams) -> list[tuple[str, Any]]:
    import great_expectations.expectations as gxe

    return [
        ("missing", gxe.ExpectColumnValuesToNotBeNull(column="candidate")),
        ("empty", gxe.ExpectColumnValuesToNotMatchRegex(column="candidate", regex=r"^\s*$")),
        ("preamble", gxe.ExpectColumnValuesToNotMatchRegexList(column="candidate",
                                                                regex_list=list(checks.meta_patterns))),
        ("injection", gxe.ExpectColumnValuesToNotMatchRegexList(column="candidate",
                                                                 regex_list=list(checks.injection_patterns))),
        ("echo", gxe.ExpectColumnValuesToBeInSet(column="flag_echo", value_set=[False])),
        ("wrong_language", gxe.ExpectColumnValuesToBeInSet(column="lang_verdict", value_set=["en", "undetermined"])),
        ("length", gxe.ExpectColumnValuesToBeBetween(column="length_ratio", min_value=checks.min_length_ratio,
                                                     max_value=checks.max_length_ratio)),
        *[("score_range", gxe.ExpectColumnValuesToBeBetween(column=c, min_value=1.0, max_value=10.0))
          for c in ("s", "e", "p")],
        ("sim_range", gxe.ExpectColumnValuesToBeBetween(column="sim", min_value=-1.0 - SIM_EPS,
                                                        max_value=1.0 + SIM_EPS)),
        ("duplicate", gxe.ExpectCompoundColumnsToBeUnique(column_list=["text_id", "agent"])),
    ]


GATE_COLUMNS = ["text_id", "agent", "candidate", "flag_echo", "detected_lang", "english_prob", "lang_verdict",
                "length_ratio", "s", "e", "p", "sim"]


def run_gate(df: pd.DataFrame, checks: ChecksParams, id_column: str = "row", max_examples: int = 5) -> GateResult:
    """Validate ``df`` (the :data:`GATE_COLUMNS` plus a unique ``id_column``) with one GX context."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    missing = [c for c in [id_column, *GATE_COLUMNS] if c not in df.columns]
    if missing:
        raise ValueError(f"gate input lacks columns {missing}")
    if not df[id_column].is_unique:
        raise ValueError(f"gate id column {id_column!r} is not unique")

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = ctx.data_sources.add_pandas("lira").add_dataframe_asset("candidates")
    batch_def = asset.add_batch_definition_whole_dataframe("all")
    suite = gx.ExpectationSuite(name="candidate_gate")
    for reason, exp in _expectations(checks):
        exp.meta = {"reason": reason}
        suite.add_expectation(exp)
    suite = ctx.suites.add(suite)
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name="candidate_gate", data=batch_def, suite=suite))
    with warnings.catch_warnings():
        # pandas warns that the meta-text regexes have groups (GX only needs the match, not them).
        warnings.filterwarnings("ignore", message="This pattern is interpreted as a regular expression")
        result = vd.run(
            batch_parameters={"dataframe": df[[id_column, *GATE_COLUMNS]]},
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [id_column]},
        )

    reasons: dict[Any, list[str]] = {}
    summaries: list[dict[str, Any]] = []
    for r in result.results:
        cfg = r.expectation_config
        reason = (cfg.meta or {}).get("reason", cfg.type)
        raised = _raised(r.exception_info)
        if raised is not None:
            # A check that could not run is a broken gate, not a pass.
            raise GateFailure(f"candidate gate broken: GX expectation {cfg.type} ({reason}) raised: {raised}")
        index_list = r.result.get("unexpected_index_list") or []
        ids = [_plain(item[id_column]) for item in index_list]
        if not r.success and not ids:
            # A failure that names no row would otherwise count as 0 failing rows and pass.
            raise GateFailure(f"candidate gate broken: GX expectation {cfg.type} ({reason}) failed without "
                              f"naming a failing row: {_short(r.result)}")
        for i in ids:
            bucket = reasons.setdefault(i, [])
            if reason not in bucket:
                bucket.append(reason)
        column = cfg.kwargs.get("column") or ",".join(cfg.kwargs.get("column_list", []))
        summaries.append({
            "reason": reason, "expectation": cfg.type, "column": column, "success": bool(r.success),
            "unexpected_count": len(ids),
            "examples": [{k: _plain(v) for k, v in item.items()} for item in index_list[:max_examples]],
        })
    order = {r: k for k, r in enumerate(REASONS)}
    ordered = {i: sorted(rs, key=lambda r: order.get(r, len(order))) for i, rs in reasons.items()}
    return GateResult(n_rows=len(df), reasons=ordered, checks=summaries,
                      validation=result.to_json_dict(), success=bool(result.success))


def _raised(info: Any) -> str | None:
    """The exception message(s) of a GX result, or None.

    GX 1.x reports an expectation's exception either flat (``{"raised_exception": True, ...}``) or
    keyed by metric id (``{"MetricConfigurationID(...)": {"raised_exception": True, ...}}``); the
    second form was missed once and the gate failed open.
    """
    if not info:
        return None
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    msgs = [str(e.get("exception_message") or "unknown error") for e in entries if e.get("raised_exception")]
    return "; ".join(dict.fromkeys(msgs)) if msgs else None


def _short(v: Any, n: int = 300) -> str:
    text = repr(v)
    return text if len(text) <= n else text[: n - 3] + "..."


def _plain(v: Any) -> Any:
    """numpy / pandas scalars -> Python (for dict keys and JSON)."""
    if hasattr(v, "item"):
        return v.item()
    if v is pd.NA:
        return None
    return v


def gate_report(gate: GateResult, max_fail_share: float) -> str:
    """A human report: the failing share against the threshold, then each failing check with examples."""
    n_fail = len(gate.reasons)
    head = (f"candidate gate: {n_fail}/{gate.n_rows} rows fail ({gate.failing_share:.1%}); "
            f"max_fail_share = {max_fail_share:.1%}")
    lines = [head]
    for c in gate.checks:
        if c["success"]:
            continue
        lines.append(f"  - {c['reason']}: {c['expectation']}({c['column']}) failed on {c['unexpected_count']} rows")
        for ex in c["examples"][:3]:
            lines.append(f"      e.g. {ex}")
    return "\n".join(lines)


def read_scores(path: Path) -> pd.DataFrame:
    """``scores.parquet`` read back for training, checked: scores in range or NaN, and every row a
    critic failed on (NaN from a critic other than "none") quarantined. A table that breaks this
    was not written by this stage and would feed the Actor a made-up number."""
    df = pd.read_parquet(path)
    need = ["text_id", "agent", "s", "e", "p", "sim", "critic", "quarantined", "reasons"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; rerun `lira stage critic_score`")
    if df["quarantined"].isna().any() or df["quarantined"].dtype != bool:
        raise ValueError(f"{path}: column 'quarantined' must be boolean without nulls")
    for col, lo, hi in (("s", 1, 10), ("e", 1, 10), ("p", 1, 10), ("sim", -1 - SIM_EPS, 1 + SIM_EPS)):
        x = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        out = np.flatnonzero(~np.isnan(x) & ~((x >= lo) & (x <= hi)))
        if len(out):
            i = int(out[0])
            raise ValueError(f"{path}: row {i}: field {col!r} = {x[i]} outside [{lo}, {hi}] "
                             f"({len(out)} such rows)")
    nan_spe = df[["s", "e", "p"]].isna().any(axis=1).to_numpy()
    leak = np.flatnonzero(nan_spe & (df["critic"] != "none").fillna(False).to_numpy(dtype=bool)
                          & ~df["quarantined"].to_numpy())
    if len(leak):
        i = int(leak[0])
        raise ValueError(f"{path}: row {i}: fields 's','e','p': unscored by critic {df['critic'].iloc[i]!r} "
                         f"but not quarantined ({len(leak)} such rows); rerun `lira stage critic_score`")
    return df
