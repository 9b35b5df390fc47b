"""prefect.yaml and flows/deploy.py declare deployments a user can really trigger with overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prefect.exceptions import ParameterTypeError

from flows.pipeline import flatten_overrides, resolve_params

MAIN = Path(__file__).resolve().parents[2]
FLOW_NAMES = {
    "flows/retrain.py:retrain": "lira-retrain",
    "flows/pipeline.py:lira_pipeline": "lira-pipeline",
    "flows/promote.py:promote": "lira-promote",
}


@pytest.fixture(scope="module")
def prefect_yaml() -> dict:
    return yaml.safe_load((MAIN / "prefect.yaml").read_text())


def _load(entrypoint: str):
    from prefect.flows import load_flow_from_entrypoint

    path, name = entrypoint.split(":")
    return load_flow_from_entrypoint(f"{MAIN / path}:{name}")


def test_prefect_yaml_matches_prefects_schema(prefect_yaml):
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(prefect_yaml)
    assert len(model.deployments) == 5
    step = prefect_yaml["pull"][0]["prefect.deployments.steps.set_working_directory"]
    assert step["directory"] == "{{ $LIRA_ROOT }}"


def test_every_deployment_loads_its_flow_and_accepts_its_parameters(prefect_yaml):
    seen = set()
    for dep in prefect_yaml["deployments"]:
        flow = _load(dep["entrypoint"])
        assert flow.name == FLOW_NAMES[dep["entrypoint"]]
        # The same check the API applies when a run is created from the deployment.
        flow.validate_parameters(dep.get("parameters") or {})
        overrides = (dep.get("parameters") or {}).get("overrides")
        if overrides:
            resolve_params(MAIN, flatten_overrides(overrides))  # valid lira params, not just a dict
        assert dep["work_pool"]["name"] in {"lira-cpu", "lira-gpu"}
        seen.add((flow.name, dep["name"], dep["work_pool"]["name"]))
    assert ("lira-retrain", "cpu", "lira-cpu") in seen and ("lira-retrain", "gpu", "lira-gpu") in seen


def test_ui_parameters_and_workspace_safety(prefect_yaml):
    for dep in prefect_yaml["deployments"]:
        for sched in dep.get("schedules") or []:
            assert sched.get("active") is False, "schedules are off by default"
        if dep["entrypoint"] != "flows/promote.py:promote":
            assert dep.get("concurrency_limit") == 1, "one pipeline run per DVC workspace"
            assert {"overrides", "preset"} <= set(dep["parameters"])
    retrain = _load("flows/retrain.py:retrain")
    assert {"overrides", "preset", "force"} <= set(retrain.parameters.properties)
    with pytest.raises(ParameterTypeError):
        retrain.validate_parameters({"overrides": "train_arca.lr=0.1"})  # must be a mapping
    promote = _load("flows/promote.py:promote")
    assert {"version", "force"} <= set(promote.parameters.properties)


def test_serve_deployments_default_to_no_schedule():
    from flows.deploy import build_deployments

    deps = {d.flow_name: d for d in build_deployments(name="t")}
    assert set(deps) == {"lira-retrain", "lira-pipeline", "lira-promote"}
    assert all(not d.schedules for d in deps.values())
    assert deps["lira-retrain"].parameters["overrides"] == {}
    scheduled = build_deployments(name="t", cron="0 3 * * 1", only=["retrain"], root=str(MAIN))
    assert len(scheduled) == 1 and len(scheduled[0].schedules) == 1
    assert scheduled[0].parameters["root"] == str(MAIN)
    with pytest.raises(ValueError, match="unknown flow"):
        build_deployments(only=["train"])
