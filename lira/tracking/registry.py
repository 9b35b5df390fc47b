"""The champion gate: a registered version takes the champion alias only if it is significantly
better than BOTH the current champion and the frozen-encoder baseline, on the same test set.

Each registered version carries ``gate.json`` (:func:`lira.tracking.model.gate_record`): per-query
values of every retrieval metric on the evaluation queries, the frozen baseline's on the same
queries, and ``test_set_sha256``, the content hash of those queries and their qrels. Its sha256 is
recorded as the tag ``lira.gate_sha256`` on the run that logged it, and the gate reads nothing it
has not checked against that tag: a hand-edited ``gate.json`` is refused, not believed. The metric
compared is ``tracking.gate_metric``. For the candidate c and each reference r (the frozen baseline
f from c's own record; the champion h when there is one, only if its record has the same
``test_set_sha256``, else the promotion is refused with the reason), over the query ids Q:

    diff = mean_Q(v_c) - mean_Q(v_r),   CI = paired bootstrap percentile interval of diff

(``lira.eval.bootstrap.paired_bootstrap``: the same resampled queries for both systems). The
alias moves only if diff > 0 AND CI.low > 0 against every reference. ``force`` moves it regardless
(an operator override, recorded as such). Every decision - promoted, refused or forced, the reason,
the numbers - is written as tags on the candidate version (``gate.*``: the latest decision) and
returned (:meth:`Decision.as_dict`, which the evaluate stage writes to ``metrics/registry.json``).
The version also keeps every decision ever taken on it: ``gate.history.<NNN>`` (a JSON record:
when, decision, against which version, metric, diff and CI, the message), numbered from 001,
and ``gate.history.count``; a later decision adds a record and never rewrites an earlier one.

The gate is only as strong as the registry's access control: MLflow lets any client that can write
to the registry set an alias directly (``set_registered_model_alias``) or rewrite tags, bypassing
lira. A team locks that down on the server (see README, "Promotion gate").

The functions take the ``tracking`` section and the project root; the gate's paired bootstrap takes
its settings explicitly (``resamples``, ``confidence``, ``seed``: params' ``evaluate.bootstrap_resamples``,
``evaluate.confidence`` and ``shared.seed``, as the evaluate stage's CIs).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lira.config import TrackingParams
from lira.tracking import runs

GATE_FILE = "gate.json"
TAG_GATE = "lira.gate_sha256"
MAX_TAG = 5000  # MLflow refuses longer tag values


@dataclass(frozen=True)
class Comparison:
    against: str  # "frozen" or "champion v<N>"
    metric: str
    n: int
    candidate_mean: float
    other_mean: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    passed: bool


@dataclass(frozen=True)
class Decision:
    promoted: bool
    message: str
    version: str | None
    diff: float | None = None
    ci: tuple[float, float] | None = None
    decision: str = "refused"  # promoted | refused | forced | none
    champion: str | None = None
    comparisons: tuple[Comparison, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        return {"promoted": self.promoted, "decision": self.decision, "message": self.message, "version": self.version,
                "champion_before": self.champion, "comparisons": [asdict(c) for c in self.comparisons]}


class GateError(ValueError):
    """The gate cannot compare (unverifiable record, other test set, missing metric): a refusal."""


def read_gate(tracking: TrackingParams, root: str | Path, version: str) -> dict:
    """The ``gate.json`` of one registered version, verified against the hash its run recorded."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from lira.integrity import bytes_sha256
    from lira.tracking.model import validate_gate

    name = tracking.registered_model
    c = runs.client(tracking, root)
    try:
        mv = c.get_model_version(name, version)
        want = c.get_run(mv.run_id).data.tags.get(TAG_GATE) if mv.run_id else None
    except MlflowException as e:
        raise GateError(f"version {version}: cannot read its run ({e.message})") from None
    if not want:
        raise GateError(f"version {version}: its run records no {TAG_GATE}, so its {GATE_FILE} cannot be verified")
    uri = runs.tracking_uri(tracking, root)
    with tempfile.TemporaryDirectory(prefix="lira-gate-") as tmp, runs.using_tracking_uri(uri):
        try:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}/artifacts/{GATE_FILE}", dst_path=tmp
            )
        except Exception as e:  # noqa: BLE001 - any store error means the same to the user
            raise GateError(f"version {version}: cannot read its {GATE_FILE} ({e})") from None
        raw = Path(path).read_bytes()
    got = bytes_sha256(raw)
    if got != want:
        raise GateError(
            f"version {version}: its {GATE_FILE} (sha256 {got[:12]}) is not the one its run recorded "
            f"({want[:12]}): edited after logging"
        )
    try:
        return validate_gate(json.loads(raw))
    except (ValueError, KeyError, TypeError) as e:
        raise GateError(f"version {version}: {GATE_FILE}: {e}") from None


def _compare(against: str, metric: str, a: np.ndarray, b: np.ndarray, *, resamples: int, confidence: float,
             seed: int) -> Comparison:
    from lira.eval.bootstrap import paired_bootstrap

    if len(a) < 2:
        raise GateError(f"only {len(a)} query(ies) to compare with {against}; need >= 2")
    res = paired_bootstrap(np.mean, a, b, n_resamples=resamples, confidence=confidence, seed=seed)
    return Comparison(against, metric, len(a), float(a.mean()), float(b.mean()), float(res.diff), float(res.low),
                      float(res.high), float(res.p_value), bool(res.diff > 0 and res.low > 0))


def _values(rec: dict, metric: str, who: str) -> list[float]:
    if metric not in rec["metrics"]:
        raise GateError(f"{who} has no per-query {metric!r} (tracking.gate_metric); it has {sorted(rec['metrics'])}")
    return rec["metrics"][metric]


def _describe(c: Comparison, cand_v: str, *, resamples: int, confidence: float) -> str:
    floor = 2.0 / resamples  # p = 0 only means "below the bootstrap's resolution"
    p_text = f"p<{floor:.2g}" if c.p_value < floor else f"p={c.p_value:.3g}"
    other = "the frozen-encoder baseline" if c.against == "frozen" else c.against
    numbers = (f"{c.metric} {c.candidate_mean:.4f} vs {c.other_mean:.4f} ({other}) on {c.n} shared queries: "
               f"diff {c.diff:+.4f}, {confidence:.0%} CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}], {p_text}")
    if c.passed:
        return numbers
    if c.diff <= 0:
        return f"version {cand_v} is not better than {other}: {numbers}"
    return f"the gain of version {cand_v} over {other} is not significant (CI low <= 0): {numbers}"


def gate_comparisons(tracking: TrackingParams, root: str | Path, cand_v: str, champ_v: str | None, *, resamples: int,
                     confidence: float, seed: int) -> list[Comparison]:
    """The candidate against the frozen baseline and (if any) the champion, from verified records."""
    metric = tracking.gate_metric
    bootstrap = {"resamples": resamples, "confidence": confidence, "seed": seed}
    cand = read_gate(tracking, root, cand_v)
    frozen = (cand.get("baselines") or {}).get("frozen")
    if frozen is None:
        raise GateError(f"version {cand_v}'s {GATE_FILE} has no frozen baseline to beat")
    if metric not in frozen:
        raise GateError(f"version {cand_v}'s frozen baseline has no per-query {metric!r} (tracking.gate_metric)")
    a = np.asarray(_values(cand, metric, f"version {cand_v}"), np.float64)
    out = [_compare("frozen", metric, a, np.asarray(frozen[metric], np.float64), **bootstrap)]
    if champ_v is not None:
        champ = read_gate(tracking, root, champ_v)
        if champ["test_set_sha256"] != cand["test_set_sha256"]:
            raise GateError(
                f"version {cand_v} and champion v{champ_v} were evaluated on different test sets "
                f"(test_set_sha256 {cand['test_set_sha256'][:12]} vs {champ['test_set_sha256'][:12]}); "
                "they are not compared"
            )
        other = dict(zip(champ["query_ids"], _values(champ, metric, f"champion v{champ_v}")))
        if set(other) != set(cand["query_ids"]):
            raise GateError(f"version {cand_v} and champion v{champ_v} have the same test set hash but other query ids")
        b = np.array([other[q] for q in cand["query_ids"]], np.float64)
        out.append(_compare(f"champion v{champ_v}", metric, a, b, **bootstrap))
    return out


def _versions(client, name: str) -> list[str]:
    # MLflow hands versions out as int or str depending on the call; lira speaks str
    return sorted((str(mv.version) for mv in client.search_model_versions(f"name='{name}'")), key=int)


def _champion(client, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


HISTORY_PREFIX = "gate.history."
HISTORY_COUNT = "gate.history.count"


def _append_history(client, name: str, version: str, record: dict) -> int:
    """Add ``record`` as the next ``gate.history.<NNN>`` tag of the version; returns its number."""
    import datetime

    tags = client.get_model_version(name, version).tags or {}
    taken = [int(k[len(HISTORY_PREFIX):]) for k in tags if k.startswith(HISTORY_PREFIX) and k[len(HISTORY_PREFIX):].isdigit()]
    n = max(taken, default=0) + 1
    at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    entry = {"n": n, "at": at, **record}
    text = json.dumps(entry, ensure_ascii=False, sort_keys=True)
    if len(text) > MAX_TAG:  # the message is the only long field: cut it, keep the numbers
        entry["message"] = entry["message"][: max(0, len(entry["message"]) - (len(text) - MAX_TAG) - 3)] + "..."
        text = json.dumps(entry, ensure_ascii=False, sort_keys=True)
    client.set_model_version_tag(name, version, f"{HISTORY_PREFIX}{n:03d}", text)
    client.set_model_version_tag(name, version, HISTORY_COUNT, str(n))
    return n


def gate_history(tracking: TrackingParams, root: str | Path, version: str) -> list[dict]:
    """Every gate decision taken on ``version``, oldest first."""
    c = runs.client(tracking, root)
    tags = c.get_model_version(tracking.registered_model, str(version)).tags or {}
    keys = sorted((k for k in tags if k.startswith(HISTORY_PREFIX) and k[len(HISTORY_PREFIX):].isdigit()),
                  key=lambda k: int(k[len(HISTORY_PREFIX):]))
    return [json.loads(tags[k]) for k in keys]


def promote(
    tracking: TrackingParams, root: str | Path = ".", version: str | None = None, force: bool = False, *,
    resamples: int, confidence: float, seed: int,
) -> Decision:
    """Move ``tracking.champion_alias`` to ``version`` (default: the newest) if it passes the gate
    (a paired bootstrap of ``resamples`` draws at ``confidence``, seeded with ``seed``)."""
    from mlflow.exceptions import MlflowException

    t = tracking
    name, alias = t.registered_model, t.champion_alias
    c = runs.client(tracking, root)
    try:
        versions = _versions(c, name)
    except MlflowException as e:
        return Decision(False, f"cannot list versions of registered model {name!r}: {e}", None, decision="none")
    if not versions:
        return Decision(
            False,
            f"registered model {name!r} has no versions yet (tracking URI {runs.tracking_uri(tracking, root)})",
            None, decision="none",
        )
    cand_v = str(version) if version is not None else versions[-1]
    if cand_v not in versions:
        return Decision(
            False, f"model {name!r} has no version {cand_v} (versions: {', '.join(versions)})", cand_v, decision="none"
        )
    champ_v = _champion(c, name, alias)
    if champ_v == cand_v:
        return Decision(False, f"{name} version {cand_v} already holds @{alias}; nothing to do", cand_v,
                        decision="none", champion=champ_v)

    # -- the gate ---------------------------------------------------------------------------
    comparisons: list[Comparison] = []
    try:
        comparisons = gate_comparisons(tracking, root, cand_v, champ_v, resamples=resamples, confidence=confidence,
                                       seed=seed)
        passed = all(x.passed for x in comparisons)
        parts = [_describe(x, cand_v, resamples=resamples, confidence=confidence) for x in comparisons]
        failed = [_describe(x, cand_v, resamples=resamples, confidence=confidence) for x in comparisons if not x.passed]
        numbers = "; ".join(parts)
        reason = None if passed else "refused: " + "; ".join(failed)
    except GateError as e:
        passed, numbers, reason = False, "", f"refused: the gate could not compare version {cand_v}: {e}"

    keep = f"@{alias} stays on version {champ_v}" if champ_v else f"no version holds @{alias}"
    if passed:
        decision, message = "promoted", f"promoted {name} version {cand_v} to @{alias}: {numbers}"
    elif force:
        decision = "forced"
        message = f"FORCED: {name} version {cand_v} set to @{alias} by operator override; the gate said: {reason}"
    else:
        decision, message = "refused", f"{reason}; {keep}"
    if passed or force:
        c.set_registered_model_alias(name, alias, cand_v)
    # the numbers of the comparison the decision is about: the champion if there is one, else frozen
    main = comparisons[-1] if comparisons else None
    tags = {"gate.decision": decision, "gate.against": champ_v or "frozen", "gate.metric": t.gate_metric,
            "gate.reason": message[:MAX_TAG]}
    if main is not None:
        tags.update({"gate.diff": f"{main.diff:.6f}", "gate.ci_low": f"{main.ci_low:.6f}", "gate.ci_high": f"{main.ci_high:.6f}"})
    for x in comparisons:
        key = "frozen" if x.against == "frozen" else "champion"
        tags.update({f"gate.{key}.{k}": f"{getattr(x, k):.6f}" for k in ("candidate_mean", "other_mean", "diff", "ci_low", "ci_high")})
        tags[f"gate.{key}.n"] = str(x.n)
        tags[f"gate.{key}.passed"] = str(x.passed).lower()
    for k, v in tags.items():
        c.set_model_version_tag(name, cand_v, k, v)
    _append_history(c, name, cand_v, {
        "decision": decision, "against": champ_v or "frozen", "metric": t.gate_metric,
        "diff": main.diff if main else None, "ci_low": main.ci_low if main else None,
        "ci_high": main.ci_high if main else None, "champion_before": champ_v, "message": message})
    return Decision(passed or force, message, cand_v, main.diff if main else None,
                    (main.ci_low, main.ci_high) if main else None, decision, champ_v, tuple(comparisons))
