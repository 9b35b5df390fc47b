"""The champion gate: refuse a worse model, promote a clearly better one; always against both the
champion and the frozen baseline, on the same test set, from verified records, on gate_metric."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from lira.tracking import registry, runs
from lira.tracking.model import TAG_GATE, gate_bytes, gate_record

N = 40
rng = np.random.default_rng(0)
BASE = rng.uniform(0.3, 0.7, N)
QIDS = [f"q{i:03d}" for i in range(N)]
TEST_SET = hashlib.sha256(b"the test set").hexdigest()
NDCG, RECALL = "retrieval.ndcg@10", "retrieval.recall@10"


def _bootstrap(params) -> dict:
    """The gate's paired-bootstrap settings, as the evaluate stage passes them."""
    return {"resamples": params.evaluate.bootstrap_resamples, "confidence": params.evaluate.confidence,
            "seed": params.shared.seed}


def register(params, root: Path, values, frozen=None, qids=QIDS, test_set=TEST_SET, recall=None, frozen_recall=None) -> str:
    """A registered version whose artifacts hold a gate.json and whose run records its sha256 (what
    log_lira_model does), built with create_model_version over a plain folder: the gate logic is
    under test here, the pyfunc itself in test_model.py (a pyfunc per version costs seconds)."""
    c = runs.client(params.tracking, root)
    name = params.tracking.registered_model
    if not c.search_registered_models(f"name='{name}'"):
        c.create_registered_model(name)
    n = len(c.search_model_versions(f"name='{name}'")) + 1
    run_id = c.create_run(runs.experiment_id(params.tracking, root, c)).info.run_id
    metrics = {NDCG: [float(v) for v in values]}
    metrics[RECALL] = [float(v) for v in (recall if recall is not None else values)]
    baselines = {}
    if frozen is not None:
        baselines["frozen"] = {NDCG: [float(v) for v in frozen],
                               RECALL: [float(v) for v in (frozen_recall if frozen_recall is not None else frozen)]}
    raw = gate_bytes(gate_record(list(qids), metrics, baselines, test_set))
    src = root / "versions" / str(n)
    (src / "artifacts").mkdir(parents=True)
    (src / "artifacts" / "gate.json").write_bytes(raw)
    c.set_tag(run_id, TAG_GATE, hashlib.sha256(raw).hexdigest())
    return str(c.create_model_version(name, src.resolve().as_uri(), run_id=run_id).version)


def alias_holder(params, root) -> str | None:
    return registry._champion(
        runs.client(params.tracking, root), params.tracking.registered_model, params.tracking.champion_alias
    )


def tags(params, root, version) -> dict:
    return runs.client(params.tracking, root).get_model_version(params.tracking.registered_model, version).tags


def test_gate_against_frozen_then_champion(tracked):
    params, root = tracked
    low = BASE - 0.3  # a frozen baseline every candidate below beats clearly
    # no champion yet: v1 is compared with the frozen baseline in its own gate.json
    v1 = register(params, root, BASE, frozen=BASE - 0.1 + rng.normal(0, 0.02, N))
    d1 = registry.promote(params.tracking, root, **_bootstrap(params))
    assert d1.promoted and d1.version == v1 and alias_holder(params, root) == v1
    assert "frozen" in d1.message and d1.diff == pytest.approx(0.1, abs=0.02) and d1.ci[0] > 0
    assert tags(params, root, v1)["gate.decision"] == "promoted"

    # a worse candidate: refused, the alias stays, the message gives the numbers
    v2 = register(params, root, BASE - 0.05 + rng.normal(0, 0.02, N), frozen=BASE - 0.1)
    d2 = registry.promote(params.tracking, root, **_bootstrap(params))
    assert not d2.promoted and d2.version == v2 and d2.diff < 0
    assert alias_holder(params, root) == v1
    assert "not better than champion v1" in d2.message and f"{d2.diff:+.4f}" in d2.message
    assert f"stays on version {v1}" in d2.message
    t2 = tags(params, root, v2)
    assert t2["gate.decision"] == "refused" and float(t2["gate.ci_high"]) < 0

    # a slightly-better-on-average but noisy candidate: diff > 0 but the CI straddles 0
    noisy = BASE + np.where(np.arange(N) % 2 == 0, 0.2, -0.19)
    v3 = register(params, root, noisy, frozen=low)
    d3 = registry.promote(params.tracking, root, version=v3, **_bootstrap(params))
    assert not d3.promoted and d3.diff > 0 and d3.ci[0] <= 0 and "not significant" in d3.message
    assert alias_holder(params, root) == v1

    # a clearly better candidate
    v4 = register(params, root, BASE + 0.15 + rng.normal(0, 0.02, N), frozen=low)
    d4 = registry.promote(params.tracking, root, **_bootstrap(params))
    assert d4.promoted and alias_holder(params, root) == v4
    assert f"on {N} shared queries" in d4.message
    assert float(tags(params, root, v4)["gate.diff"]) == pytest.approx(d4.diff, abs=1e-6)
    assert [c.against for c in d4.comparisons] == ["frozen", f"champion v{v1}"]

    # force overrides the gate (and says so); promoting the champion again is a no-op
    d5 = registry.promote(params.tracking, root, version=v2, force=True, **_bootstrap(params))
    assert d5.promoted and alias_holder(params, root) == v2 and "FORCED" in d5.message
    assert tags(params, root, v2)["gate.decision"] == "forced"
    assert not registry.promote(params.tracking, root, version=v2, **_bootstrap(params)).promoted


def test_no_champion_and_not_better_than_frozen_is_refused(tracked):
    params, root = tracked
    assert not registry.promote(params.tracking, root, **_bootstrap(params)).promoted  # no versions at all: a clear refusal
    register(params, root, BASE, frozen=BASE + 0.02)
    d = registry.promote(params.tracking, root, **_bootstrap(params))
    assert (
        not d.promoted
        and "frozen-encoder baseline" in d.message
        and "no version holds @champion" in d.message
    )
    assert alias_holder(params, root) is None
    # a version without a frozen baseline cannot pass the gate ...
    v = register(params, root, BASE + 0.3)
    d = registry.promote(params.tracking, root, version=v, **_bootstrap(params))
    assert not d.promoted and "no frozen baseline" in d.message and d.diff is None
    # ... unless forced
    assert registry.promote(params.tracking, root, version=v, force=True, **_bootstrap(params)).promoted and alias_holder(params, root) == v
    assert "no version 99" in registry.promote(params.tracking, root, version="99", **_bootstrap(params)).message


def test_the_frozen_baseline_is_checked_even_when_a_champion_exists(tracked):
    """Observed: over a (force-promoted) weak champion, a version significantly worse than the
    frozen encoder was promoted: the frozen baseline was never checked once a champion existed."""
    params, root = tracked
    weak = register(params, root, BASE - 0.2, frozen=BASE)
    assert registry.promote(params.tracking, root, version=weak, force=True, **_bootstrap(params)).promoted
    cand = register(params, root, BASE - 0.06 + rng.normal(0, 0.01, N), frozen=BASE)
    d = registry.promote(params.tracking, root, version=cand, **_bootstrap(params))
    assert not d.promoted and alias_holder(params, root) == weak
    assert "not better than the frozen-encoder baseline" in d.message
    frozen, champ = d.comparisons
    assert not frozen.passed and champ.passed  # it does beat the champion, and is still refused
    t = tags(params, root, cand)
    assert t["gate.frozen.passed"] == "false" and t["gate.champion.passed"] == "true"
    assert float(t["gate.frozen.diff"]) == pytest.approx(frozen.diff, abs=1e-6) and "frozen" in t["gate.reason"]


def test_an_edited_gate_record_is_refused(tracked):
    """Observed: a version whose gate.json was edited to 1.0 was promoted."""
    params, root = tracked
    v = register(params, root, BASE - 0.2, frozen=BASE)
    gate_path = root / "versions" / v / "artifacts" / "gate.json"
    rec = json.loads(gate_path.read_text())
    rec["metrics"][NDCG] = [1.0] * N
    gate_path.write_text(json.dumps(rec))
    d = registry.promote(params.tracking, root, version=v, **_bootstrap(params))
    assert not d.promoted and alias_holder(params, root) is None
    assert "is not the one its run recorded" in d.message and "edited" in d.message
    assert tags(params, root, v)["gate.decision"] == "refused"


def test_versions_on_other_test_sets_are_not_compared(tracked):
    """Observed: versions evaluated on different test sets were compared on 4 shared queries."""
    params, root = tracked
    v1 = register(params, root, BASE, frozen=BASE - 0.2)
    assert registry.promote(params.tracking, root, version=v1, **_bootstrap(params)).promoted
    other = hashlib.sha256(b"another test set").hexdigest()
    qids = QIDS[:4] + [f"x{i}" for i in range(N - 4)]
    v2 = register(params, root, BASE + 0.2, frozen=BASE - 0.2, qids=qids, test_set=other)
    d = registry.promote(params.tracking, root, version=v2, **_bootstrap(params))
    assert not d.promoted and alias_holder(params, root) == v1
    assert "different test sets" in d.message and other[:12] in d.message


def test_gate_metric_selects_the_metric_compared(tracked):
    """Observed: with tracking.gate_metric = recall@10 the gate still compared nDCG@10."""
    params, root = tracked
    params = params.model_copy(update={"tracking": params.tracking.model_copy(update={"gate_metric": RECALL})})
    # better than frozen on nDCG@10, worse on recall@10
    v = register(params, root, BASE + 0.2, frozen=BASE, recall=BASE - 0.1, frozen_recall=BASE)
    d = registry.promote(params.tracking, root, version=v, **_bootstrap(params))
    assert not d.promoted and "retrieval.recall@10" in d.message and d.diff < 0
    assert tags(params, root, v)["gate.metric"] == RECALL
    # and the other way round: promoted on recall@10 although nDCG@10 is worse
    w = register(params, root, BASE - 0.2, frozen=BASE, recall=BASE + 0.1, frozen_recall=BASE)
    assert registry.promote(params.tracking, root, version=w, **_bootstrap(params)).promoted


def _cli(params, root: Path, monkeypatch, *args: str):
    """``lira promote ARGS`` in ``root`` against the fixture's store (a params.yaml naming it)."""
    import yaml
    from typer.testing import CliRunner

    from lira.cli import app

    (root / "params.yaml").write_text(yaml.safe_dump({
        "shared": {"languages": ["vi", "th"], "s_feat": 2},
        "tracking": {"tracking_uri": params.tracking.tracking_uri, "registered_model": params.tracking.registered_model},
        "evaluate": {"bootstrap_resamples": 200},
    }))
    monkeypatch.chdir(root)
    return CliRunner().invoke(app, ["promote", *args])


def test_cli_promote_exits_non_zero_when_the_gate_refuses(tracked, monkeypatch):
    """Observed: `lira promote` exited 0 when the gate refused."""
    params, root = tracked
    register(params, root, BASE, frozen=BASE + 0.02)  # not better than frozen
    out = _cli(params, root, monkeypatch)
    assert out.exit_code == 1, out.output
    assert "not promoted" in out.output and "frozen-encoder baseline" in out.output
    assert alias_holder(params, root) is None
    good = register(params, root, BASE + 0.2, frozen=BASE - 0.1)
    out = _cli(params, root, monkeypatch, "--version", good)
    assert out.exit_code == 0 and f"promoted lira-test version {good}" in out.output
    # asking again for the version that already holds the alias is no failure
    assert _cli(params, root, monkeypatch, "--version", good).exit_code == 0
    assert _cli(params, root, monkeypatch, "--version", "99").exit_code == 1


def test_force_needs_a_version(tracked, monkeypatch):
    """Observed: `lira promote --force` promoted the newest version, not one the user named."""
    params, root = tracked
    first = register(params, root, BASE, frozen=BASE + 0.02)
    register(params, root, BASE, frozen=BASE + 0.02)
    out = _cli(params, root, monkeypatch, "--force")
    assert out.exit_code == 2 and "--force needs --version" in out.output
    assert alias_holder(params, root) is None
    out = _cli(params, root, monkeypatch, "--force", "--version", first)
    assert out.exit_code == 0 and "FORCED" in out.output and alias_holder(params, root) == first


def test_each_version_keeps_its_whole_gate_history(tracked):
    """A refusal then a forced promotion: both stay on the version, numbered, the first unchanged."""
    params, root = tracked
    v = register(params, root, BASE, frozen=BASE + 0.2)  # worse than frozen: refused
    first = registry.promote(params.tracking, root=root, version=v, **_bootstrap(params))
    assert first.decision == "refused"
    h1 = registry.gate_history(params.tracking, root, v)
    assert [e["decision"] for e in h1] == ["refused"]
    forced = registry.promote(params.tracking, root=root, version=v, force=True, **_bootstrap(params))
    assert forced.decision == "forced"
    h2 = registry.gate_history(params.tracking, root, v)
    assert [e["n"] for e in h2] == [1, 2] and [e["decision"] for e in h2] == ["refused", "forced"]
    assert h2[0] == h1[0]  # the earlier decision is not rewritten
    t = tags(params, root, v)
    assert t["gate.history.count"] == "2" and t["gate.decision"] == "forced"  # the latest stays in gate.*
    assert h2[0]["diff"] == pytest.approx(first.diff) and h2[0]["against"] == "frozen"
    assert TAG_GATE in runs.client(params.tracking, root).get_run(
        runs.client(params.tracking, root).get_model_version(params.tracking.registered_model, v).run_id).data.tags
