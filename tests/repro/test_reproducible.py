"""The same seed on the same machine reproduces a training bit for bit, across processes.

All six stages on a slice of the sample with the tiny test BERT (tests/repro/run_small.py), run
twice in fresh processes that differ in their Python hash seed (so set iteration order differs):
every weight file must be byte-identical and every metric equal. Across CPUs the figures move; how
much is measured by bench/determinism.py and stated in README ("Reproducibility").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).with_name("run_small.py")


def _run(root: Path, bert: Path, hash_seed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "LIRA_QUIET": "1"}
    out = subprocess.run([sys.executable, str(RUNNER), str(root), str(bert)], env=env, capture_output=True,
                         text=True, timeout=1500, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.e2e
def test_the_same_seed_reproduces_weights_and_metrics_exactly(tmp_path, tiny_bert_dir):
    a = _run(tmp_path / "a", tiny_bert_dir, "1")
    b = _run(tmp_path / "b", tiny_bert_dir, "2")
    assert {"models/arca/adaptors.safetensors", "models/lasr/full/net.safetensors",
            "models/lasr/no_queue/net.safetensors", "models/distill/student.safetensors"} <= set(a["weights"])
    assert a["weights"] == b["weights"]
    assert "evaluate.json:systems.lira.retrieval.ndcg@10" in a["metrics"] and len(a["metrics"]) > 100
    changed = {k: (v, b["metrics"].get(k)) for k, v in a["metrics"].items() if b["metrics"].get(k) != v}
    assert not changed and a["metrics"].keys() == b["metrics"].keys()
