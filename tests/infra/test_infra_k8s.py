"""infra/k8s/gpu-job-template.json: a Prefect Kubernetes base job template that requests a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "k8s" / "gpu-job-template.json"


@pytest.fixture(scope="module")
def template() -> dict:
    return json.loads(TEMPLATE.read_text())


def _defaults(template: dict) -> dict:
    props = template["variables"]["properties"]
    values = {k: v["default"] for k, v in props.items() if "default" in v}
    values.update(name="lira-retrain-run", labels={"prefect.io/flow-run-id": "x"}, env={"A": "1"})
    return values


def test_placeholders_are_declared_variables_with_valid_defaults(template):
    import jsonschema
    from prefect.utilities.templating import find_placeholders

    props = template["variables"]["properties"]
    used = {p.name for p in find_placeholders(json.dumps(template["job_configuration"]))}
    assert used - set(props) == set(), "placeholders without a variable"
    for schema in props.values():
        if "default" in schema:
            jsonschema.validate(schema["default"], {k: v for k, v in schema.items() if k != "default"})


def test_rendered_job_requests_a_gpu_on_gpu_nodes(template):
    from prefect.utilities.templating import apply_values

    job = apply_values(template["job_configuration"], _defaults(template))["job_manifest"]
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0  # Prefect retries, not k8s
    (container,) = pod["containers"]
    assert container["name"] == "prefect-job"  # the Kubernetes worker requires this name
    gpus = container["resources"]["limits"]["nvidia.com/gpu"]
    assert isinstance(gpus, int) and gpus >= 1
    assert pod["nodeSelector"] and all(isinstance(v, str) for v in pod["nodeSelector"].values())
    assert any(t["key"] == "nvidia.com/gpu" and t["effect"] == "NoSchedule" for t in pod["tolerations"])
    assert "lira-worker:gpu" in container["image"]
    assert "{{" not in json.dumps(job)


def test_deployment_can_ask_for_more_gpus(template):
    from prefect.utilities.templating import apply_values

    job = apply_values(template["job_configuration"], {**_defaults(template), "gpu_count": 4})["job_manifest"]
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert template["variables"]["properties"]["gpu_count"]["minimum"] == 1


def test_gpu_job_runs_torchrun_ranks_over_a_shared_cache(template):
    import yaml
    from prefect.utilities.templating import apply_values

    job = apply_values(template["job_configuration"], _defaults(template))["job_manifest"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = template["variables"]["properties"]["env"]["default"]
    assert env["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "1" and "NCCL_DEBUG" in env
    cache = next(m for m in container["volumeMounts"] if m["name"] == "cache")
    assert cache["mountPath"] == env["LIRA_ROOT"] + "/.cache/lira"
    vol = next(v for v in pod["volumes"] if v["name"] == "cache")
    claim = yaml.safe_load((TEMPLATE.parent / "cache-pvc.yaml").read_text())
    assert vol["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    # The torchrun deployment asks the pool for as many GPUs as it starts ranks.
    deployments = yaml.safe_load((TEMPLATE.parents[2] / "prefect.yaml").read_text())["deployments"]
    (dep,) = [d for d in deployments if d["entrypoint"] == "flows/pipeline.py:lira_pipeline" and d["name"] == "gpu"]
    assert dep["parameters"]["nproc"] == dep["work_pool"]["job_variables"]["gpu_count"] > 1
