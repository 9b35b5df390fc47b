"""The champion gate: refuse a worse model, promote a clearly better one, frozen baseline, force."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lira.tracking import registry, runs

N = 40
rng = np.random.default_rng(0)
BASE = rng.uniform(0.3, 0.7, N)
QIDS = [f"q{i:03d}" for i in range(N)]


def register(params, root: Path, values, frozen=None, qids=QIDS) -> str:
    """A registered version whose artifacts hold a gate.json (what log_lira_model writes there).

    Built with create_model_version over a plain folder: the gate logic is under test here, the
    pyfunc itself in test_model.py (and a pyfunc per version would cost seconds each)."""
    c = runs.client(params, root)
    name = params.tracking.registered_model
    if not c.search_registered_models(f"name='{name}'"):
        c.create_registered_model(name)
    n = len(c.search_model_versions(f"name='{name}'")) + 1
    src = root / "versions" / str(n)
    (src / "artifacts").mkdir(parents=True)
    gate = {"metric": "retrieval.ndcg@10", "query_ids": list(qids), "values": [float(v) for v in values]}
    if frozen is not None:
        gate["baselines"] = {"frozen": [float(v) for v in frozen]}
    (src / "artifacts" / "gate.json").write_text(json.dumps(gate))
    return str(c.create_model_version(name, src.resolve().as_uri()).version)


def alias_holder(params, root) -> str | None:
    return registry._champion(
        runs.client(params, root), params.tracking.registered_model, params.tracking.champion_alias
    )


def tags(params, root, version) -> dict:
    return runs.client(params, root).get_model_version(params.tracking.registered_model, version).tags


def test_gate_against_frozen_then_champion(tracked):
    params, root = tracked
    # no champion yet: v1 is compared with the frozen baseline in its own gate.json
    v1 = register(params, root, BASE, frozen=BASE - 0.1 + rng.normal(0, 0.02, N))
    d1 = registry.promote(params, root)
    assert d1.promoted and d1.version == v1 and alias_holder(params, root) == v1
    assert "frozen" in d1.message and d1.diff == pytest.approx(0.1, abs=0.02) and d1.ci[0] > 0
    assert tags(params, root, v1)["gate.decision"] == "promoted"

    # a worse candidate: refused, the alias stays, the message gives the numbers
    v2 = register(params, root, BASE - 0.05 + rng.normal(0, 0.02, N), frozen=BASE - 0.1)
    d2 = registry.promote(params, root)
    assert not d2.promoted and d2.version == v2 and d2.diff < 0
    assert alias_holder(params, root) == v1
    assert "not better than champion v1" in d2.message and f"{d2.diff:+.4f}" in d2.message
    assert f"stays on version {v1}" in d2.message
    t2 = tags(params, root, v2)
    assert t2["gate.decision"] == "refused" and float(t2["gate.ci_high"]) < 0

    # a slightly-better-on-average but noisy candidate: diff > 0 but the CI straddles 0
    noisy = BASE + np.where(np.arange(N) % 2 == 0, 0.2, -0.19)
    v3 = register(params, root, noisy)
    d3 = registry.promote(params, root, version=v3)
    assert not d3.promoted and d3.diff > 0 and d3.ci[0] <= 0 and "not significant" in d3.message
    assert alias_holder(params, root) == v1

    # a clearly better candidate, compared on the query ids both versions share only
    better = BASE[5:] + 0.15 + rng.normal(0, 0.02, N - 5)
    v4 = register(params, root, list(better) + [0.0], qids=QIDS[5:] + ["only-in-v4"])
    d4 = registry.promote(params, root)
    assert d4.promoted and alias_holder(params, root) == v4
    assert f"on {N - 5} shared queries" in d4.message
    assert float(tags(params, root, v4)["gate.diff"]) == pytest.approx(d4.diff, abs=1e-6)

    # force overrides the gate (and says so); promoting the champion again is a no-op
    d5 = registry.promote(params, root, version=v2, force=True)
    assert d5.promoted and alias_holder(params, root) == v2 and "FORCED" in d5.message
    assert tags(params, root, v2)["gate.decision"] == "forced"
    assert not registry.promote(params, root, version=v2).promoted


def test_no_champion_and_not_better_than_frozen_is_refused(tracked):
    params, root = tracked
    assert not registry.promote(params, root).promoted  # no versions at all: a clear refusal
    register(params, root, BASE, frozen=BASE + 0.02)
    d = registry.promote(params, root)
    assert (
        not d.promoted
        and "frozen-encoder baseline" in d.message
        and "no version holds @champion" in d.message
    )
    assert alias_holder(params, root) is None
    # a version without a frozen baseline and no champion cannot pass the gate ...
    v = register(params, root, BASE + 0.3)
    d = registry.promote(params, root, version=v)
    assert not d.promoted and "no frozen baseline" in d.message and d.diff is None
    # ... unless forced
    assert registry.promote(params, root, version=v, force=True).promoted and alias_holder(params, root) == v
    assert "no version 99" in registry.promote(params, root, version="99").message
