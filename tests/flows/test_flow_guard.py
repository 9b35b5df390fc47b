"""Flow-run overrides are an allow-list of training parameters; every path stays in the project.

Reproduces issue 17 item 9: a flow run's ``overrides`` accepted ``trust_remote_code: true``, an
``api_key_env`` naming any variable, and output paths such as ``/etc``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flows import pipeline
from flows import retrain as retrain_mod
from flows.guard import ALLOWED_OVERRIDES, allowed, check_overrides, confine
from lira.config import ConfigError, Params

COUNT = """\
from pathlib import Path
with Path("attempts.txt").open("a") as fh:
    fh.write("x\\n")
"""

HOSTILE = {
    "trust_remote_code": {"shared.encoders.lrl.trust_remote_code": True},
    "encoder spec": {"shared.encoders.lrl.spec": "hf:/tmp/evil-model"},
    "api_key_env": {
        "translate.agents": [
            {"name": "x", "backend": "openai", "model": "m", "base_url": "http://203.0.113.9/v1",
             "api_key_env": "AWS_SECRET_ACCESS_KEY"}
        ]
    },
    "output path": {"shared.paths.metrics": "/etc"},
    "source path": {"build_dataset.sources": [{"kind": "sample", "path": "../../outside"}]},
    "whole section": {"shared": {"paths": {"cache": "/tmp/x"}}},
}


@pytest.fixture
def counting_project(tmp_path, dvc_project) -> Path:
    root = dvc_project(tmp_path / "proj", {"build_dataset": f"{sys.executable} count.py"})
    (root / "count.py").write_text(COUNT, encoding="utf-8")
    return root


def _attempts(root: Path) -> int:
    f = root / "attempts.txt"
    return len(f.read_text().splitlines()) if f.exists() else 0


# ------------------------------------------------------------------------------- the flow runs
@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_pipeline_refuses_overrides_outside_the_allow_list(prefect_harness, counting_project, what):
    before = (counting_project / "params.yaml").read_bytes()
    state = pipeline.lira_pipeline(
        stages=["build_dataset"], root=str(counting_project), overrides=HOSTILE[what], return_state=True
    )
    assert state.is_failed(), f"{what}: the run was accepted"
    with pytest.raises(ConfigError, match="refused") as err:
        state.result()
    assert next(iter(sorted(pipeline.flatten_overrides(HOSTILE[what])))) in str(err.value)
    assert _attempts(counting_project) == 0  # no stage ran
    assert (counting_project / "params.yaml").read_bytes() == before


def test_retrain_refuses_trust_remote_code_before_the_pull(prefect_harness, counting_project, monkeypatch):
    pulled = []
    monkeypatch.setattr(retrain_mod, "_dvc_sync", lambda *a, **k: pulled.append(a) or {"done": False})
    state = retrain_mod.retrain(
        overrides={"shared.encoders.en.trust_remote_code": True}, root=str(counting_project), return_state=True
    )
    assert state.is_failed()
    with pytest.raises(ConfigError, match=r"shared\.encoders\.en\.trust_remote_code"):
        state.result()
    assert not pulled and _attempts(counting_project) == 0


def test_allowed_training_override_still_runs(prefect_harness, counting_project):
    before = (counting_project / "params.yaml").read_bytes()
    out = pipeline.lira_pipeline(
        stages=["build_dataset"], root=str(counting_project), overrides={"train_arca.lr": 0.005, "shared.seed": 3}
    )
    assert out["overrides"] == {"train_arca.lr": 0.005, "shared.seed": 3}
    assert _attempts(counting_project) == 1
    assert (counting_project / "params.yaml").read_bytes() == before


def test_params_yaml_paths_outside_the_project_are_refused(prefect_harness, tmp_path, dvc_project):
    root = dvc_project(
        tmp_path / "p", {"build_dataset": f"{sys.executable} count.py"},
        params_yaml="shared:\n  paths: {metrics: ../elsewhere}\ntracking: {enabled: false}\n",
    )
    (root / "count.py").write_text(COUNT, encoding="utf-8")
    state = pipeline.lira_pipeline(stages=["build_dataset"], root=str(root), return_state=True)
    assert state.is_failed()
    with pytest.raises(ConfigError, match=r"shared\.paths\.metrics.*outside the project root"):
        state.result()
    assert _attempts(root) == 0


def test_a_run_cannot_move_a_pinned_worker_to_another_checkout(tmp_path, monkeypatch, dvc_project):
    home = dvc_project(tmp_path / "home", {"build_dataset": "true"})
    other = dvc_project(tmp_path / "other", {"build_dataset": "true"})
    monkeypatch.setenv("LIRA_ROOT", str(home))
    assert pipeline.project_root(None) == home.resolve()
    assert pipeline.project_root(str(home)) == home.resolve()
    with pytest.raises(ConfigError, match=r"LIRA_ROOT"):
        pipeline.project_root(str(other))


# ---------------------------------------------------------------------------------- the pieces
def test_allow_list_names_real_params_and_no_dangerous_ones():
    data = Params().model_dump()
    for key in ALLOWED_OVERRIDES:
        cur = data
        for part in key.split("."):
            assert isinstance(cur, dict) and part in cur, f"{key}: not a params key (renamed?)"
            cur = cur[part]
    for key in ("shared.encoders.lrl.trust_remote_code", "shared.encoders.en.spec", "shared.paths.metrics",
                "translate.agents", "critic_score.llm", "build_dataset.sources", "evaluate.external",
                "tracking.tracking_uri", "tracking.gate_metric", "tracking.champion_alias"):
        assert not allowed(key), key
    assert allowed("train_arca.reward.alpha") and allowed("train_lasr.ablations.0")
    assert not allowed("train_arca_extra.lr") and not allowed("train")


def test_check_overrides_names_every_refused_key():
    with pytest.raises(ConfigError) as err:
        check_overrides({"train_arca.lr": 0.1, "tracking.tracking_uri": "http://x", "critic_score.llm": None})
    assert "critic_score.llm" in str(err.value) and "tracking.tracking_uri" in str(err.value)
    assert "train_arca.lr'" not in str(err.value).split("Allowed")[0]


@pytest.mark.parametrize("path", ["/etc", "../x", "data/../../x", "~/x", "C:\\x"])
def test_confine_refuses_absolute_and_escaping_paths(tmp_path, path):
    with pytest.raises(ConfigError, match="shared.paths.metrics"):
        confine(path, tmp_path, "shared.paths.metrics")


def test_confine_follows_symlinks_out_of_the_project(tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "proj" / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(ConfigError, match="outside the project root"):
        confine("link/metrics", tmp_path / "proj", "k")
    assert confine("data/../metrics", tmp_path / "proj", "k") == (tmp_path / "proj" / "metrics").resolve()
