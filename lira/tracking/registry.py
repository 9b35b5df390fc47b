"""The champion gate: a registered version takes the champion alias only if it is significantly better.

Each registered version carries ``gate.json``: per-query values v_q of the gate metric
(``tracking.gate_metric``, e.g. nDCG@10 per evaluation query) and those of the frozen-encoder
baseline. For a candidate c against the champion h (or, with no champion yet, against the frozen
baseline f stored in c's own record), on the query ids Q both share:

    diff = mean_Q(v_c) - mean_Q(v_h),   CI = paired bootstrap percentile interval of diff

(``lira.eval.bootstrap.paired_bootstrap``: the same resampled queries for both systems). The alias
moves only if diff > 0 AND CI.low > 0; otherwise the champion stays and the message says why, with
the numbers. ``force`` moves it regardless (an operator override, recorded as such). The decision
is recorded as tags on the candidate version: gate.decision, gate.diff, gate.ci_low, gate.ci_high.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lira.config import Params
from lira.tracking import runs

GATE_FILE = "gate.json"


@dataclass(frozen=True)
class Decision:
    promoted: bool
    message: str
    version: str | None
    diff: float | None = None
    ci: tuple[float, float] | None = None


def read_gate(params: Params, root: str | Path, version: str) -> dict:
    """The ``gate.json`` logged with one registered version."""
    import mlflow.artifacts

    name = params.tracking.registered_model
    uri = runs.tracking_uri(params, root)
    with tempfile.TemporaryDirectory(prefix="lira-gate-") as tmp, runs.using_tracking_uri(uri):
        try:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}/artifacts/{GATE_FILE}", dst_path=tmp
            )
        except Exception as e:  # noqa: BLE001 - any store error means the same to the user
            raise ValueError(f"model {name!r} version {version}: cannot read its {GATE_FILE} ({e})") from None
        return json.loads(Path(path).read_text(encoding="utf-8"))


def _aligned(
    cand: dict, other_ids: list[str], other_values: list[float]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Both systems' values on the query ids they share (in the candidate's order)."""
    other = dict(zip(map(str, other_ids), other_values))
    pairs = [
        (float(v), float(other[q])) for q, v in zip(map(str, cand["query_ids"]), cand["values"]) if q in other
    ]
    a = np.array([p[0] for p in pairs], dtype=np.float64)
    b = np.array([p[1] for p in pairs], dtype=np.float64)
    return a, b, len(pairs)


def _versions(client, name: str) -> list[str]:
    # MLflow hands versions out as int or str depending on the call; lira speaks str
    return sorted((str(mv.version) for mv in client.search_model_versions(f"name='{name}'")), key=int)


def _champion(client, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def promote(
    params: Params, root: str | Path = ".", version: str | None = None, force: bool = False
) -> Decision:
    """Move ``tracking.champion_alias`` to ``version`` (default: the newest) if it passes the gate."""
    from mlflow.exceptions import MlflowException

    t = params.tracking
    name, alias = t.registered_model, t.champion_alias
    c = runs.client(params, root)
    try:
        versions = _versions(c, name)
    except MlflowException as e:
        return Decision(False, f"cannot list versions of registered model {name!r}: {e}", None)
    if not versions:
        return Decision(
            False,
            f"registered model {name!r} has no versions yet (tracking URI {runs.tracking_uri(params, root)})",
            None,
        )
    cand_v = str(version) if version is not None else versions[-1]
    if cand_v not in versions:
        return Decision(
            False, f"model {name!r} has no version {cand_v} (versions: {', '.join(versions)})", cand_v
        )
    champ_v = _champion(c, name, alias)
    if champ_v == cand_v:
        return Decision(False, f"{name} version {cand_v} already holds @{alias}; nothing to do", cand_v)

    # -- the gate ---------------------------------------------------------------------------
    diff = ci = None
    try:
        cand = read_gate(params, root, cand_v)
        if champ_v is not None:
            other_name = f"champion v{champ_v}"
            champ = read_gate(params, root, champ_v)
            if champ.get("metric") != cand.get("metric"):
                raise ValueError(
                    f"gate metrics differ: candidate {cand.get('metric')!r}, champion {champ.get('metric')!r}"
                )
            a, b, n = _aligned(cand, champ["query_ids"], champ["values"])
        else:
            other_name = "the frozen-encoder baseline"
            frozen = (cand.get("baselines") or {}).get("frozen")
            if frozen is None:
                raise ValueError(
                    f"version {cand_v} has no champion to beat and its {GATE_FILE} has no frozen baseline"
                )
            a, b, n = _aligned(cand, cand["query_ids"], frozen)
        if n < 2:
            raise ValueError(
                f"only {n} shared query id(s) between version {cand_v} and {other_name}; need >= 2"
            )
        from lira.eval.bootstrap import paired_bootstrap

        res = paired_bootstrap(
            np.mean,
            a,
            b,
            n_resamples=params.evaluate.bootstrap_resamples,
            confidence=params.evaluate.confidence,
            seed=params.shared.seed,
        )
        diff, ci = res.diff, (res.low, res.high)
        passed = res.diff > 0 and res.low > 0
        metric = cand.get("metric", t.gate_metric)
        level = f"{params.evaluate.confidence:.0%}"
        # p = 0 only means "below the bootstrap's resolution 2/n_resamples"
        floor = 2.0 / params.evaluate.bootstrap_resamples
        p_text = f"p<{floor:.2g}" if res.p_value < floor else f"p={res.p_value:.3g}"
        numbers = (
            f"{metric} {a.mean():.4f} vs {b.mean():.4f} ({other_name}) on {n} shared queries: "
            f"diff {res.diff:+.4f}, {level} CI [{res.low:+.4f}, {res.high:+.4f}], {p_text}"
        )
        if passed:
            reason = None
        elif res.diff <= 0:
            reason = f"refused: version {cand_v} is not better than {other_name}: {numbers}"
        else:
            reason = f"refused: the gain of version {cand_v} over {other_name} is not significant (CI low <= 0): {numbers}"
    except (ValueError, KeyError, TypeError) as e:
        passed, numbers, reason = False, "", f"refused: the gate could not compare version {cand_v}: {e}"

    keep = f"@{alias} stays on version {champ_v}" if champ_v else f"no version holds @{alias}"
    if passed:
        decision, message = "promoted", f"promoted {name} version {cand_v} to @{alias}: {numbers}"
    elif force:
        decision = "forced"
        message = (
            f"FORCED: {name} version {cand_v} set to @{alias} by operator override; the gate said: {reason}"
        )
    else:
        decision, message = "refused", f"{reason}; {keep}"
    if passed or force:
        c.set_registered_model_alias(name, alias, cand_v)
    tags = {"gate.decision": decision, "gate.against": champ_v or "frozen"}
    if diff is not None and ci is not None:
        tags.update(
            {"gate.diff": f"{diff:.6f}", "gate.ci_low": f"{ci[0]:.6f}", "gate.ci_high": f"{ci[1]:.6f}"}
        )
    for k, v in tags.items():
        c.set_model_version_tag(name, cand_v, k, v)
    return Decision(passed or force, message, cand_v, diff, ci)
