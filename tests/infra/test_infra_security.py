"""infra/ is locked down (issue 17 item 16), checked by parsing the files (no Docker or cluster here).

Reproduction: Prefect, MLflow and the MinIO console ran without authentication, images used
``:latest``, workers got the MinIO root credentials, the Kubernetes template had no
securityContext or NetworkPolicy, and the worker image had a world-writable /opt/lira.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from test_infra_compose import interpolate, read_env_example  # same folder (pytest puts it on sys.path)

INFRA = Path(__file__).resolve().parents[2] / "infra"
WORKERS = ("worker-cpu", "worker-gpu")
# An exact version: a digest, a MinIO release stamp, a tag with at least major.minor.patch, or
# Postgres' major.minor (its full version) on an exact Alpine release.
PINNED = re.compile(
    r"(@sha256:[0-9a-f]{64}$)|(:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$)|(:v?\d+\.\d+\.\d+[\w.-]*$)"
    r"|(^postgres:\d+\.\d+-alpine\d+\.\d+$)"
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((INFRA / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def rendered() -> dict:
    env = {k: (v or f"dummy-{k.lower()}") for k, v in read_env_example().items()}
    return yaml.safe_load(interpolate((INFRA / "docker-compose.yml").read_text(), env))


def _env(svc: dict) -> dict:
    env = svc.get("environment") or {}
    return env if isinstance(env, dict) else dict(e.split("=", 1) for e in env)


def test_no_latest_and_every_image_pinned(rendered):
    text = (INFRA / "docker-compose.yml").read_text() + (INFRA / ".env.example").read_text()
    assert ":latest" not in text
    for name, svc in rendered["services"].items():
        image = svc["image"]
        if svc.get("build"):  # built here: tagged with the pinned version it is built from
            continue
        assert PINNED.search(image), f"{name}: {image} is not an exact version or digest"
    for dockerfile in ("worker.Dockerfile", "mlflow.Dockerfile"):
        text = (INFRA / dockerfile).read_text()
        args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.MULTILINE))
        for base in re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE):
            resolved = re.sub(r"\$\{(\w+)\}", lambda m, a=args: a[m.group(1)], base)
            assert re.search(r":v?\d+\.\d+\.\d+", resolved), f"{dockerfile}: FROM {resolved} is not an exact version"


def test_prefect_requires_the_auth_string_on_both_sides(compose, rendered):
    server = _env(rendered["services"]["prefect-server"])
    assert server["PREFECT_SERVER_API_AUTH_STRING"] == "lira:dummy-prefect_auth_password"
    for name in WORKERS:
        assert _env(rendered["services"][name])["PREFECT_API_AUTH_STRING"] == server["PREFECT_SERVER_API_AUTH_STRING"]
    raw = compose["services"]["prefect-server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"]
    assert ":?" in raw, "a missing Prefect password must stop compose"


def test_mlflow_runs_the_basic_auth_app_and_workers_log_in_as_their_own_user(rendered):
    s = rendered["services"]
    assert "--app-name=basic-auth" in s["mlflow"]["command"]
    env = _env(s["mlflow"])
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] and env["MLFLOW_AUTH_ADMIN_PASSWORD"]
    ini = (INFRA / "mlflow" / "basic_auth.ini").read_text()
    assert re.search(r"^default_permission = READ$", ini, re.MULTILINE)
    assert "admin_password" not in ini.replace("MLFLOW_AUTH_ADMIN_PASSWORD", "")  # the secret is never in git
    mount = next(v for v in s["mlflow"]["volumes"] if "basic_auth.ini" in v)
    assert mount.split(":")[1] == env["MLFLOW_AUTH_CONFIG_PATH"] and mount.endswith(":ro")
    for name in WORKERS:
        w = _env(s[name])
        assert w["MLFLOW_TRACKING_USERNAME"] == "lira-worker" != env["MLFLOW_AUTH_ADMIN_USERNAME"]
        assert w["MLFLOW_TRACKING_PASSWORD"] == "dummy-mlflow_worker_password"
        assert s[name]["depends_on"]["mlflow-init"]["condition"] == "service_completed_successfully"
    init = s["mlflow-init"]
    assert _env(init)["MLFLOW_WORKER_USER"] == "lira-worker"
    script = (INFRA / "mlflow" / "create_users.py").read_text()
    compile(script, "create_users.py", "exec")
    assert "create_user(" in script and "update_user_admin(username=user, is_admin=False)" in script


def test_workers_and_mlflow_never_get_minio_root_credentials(rendered):
    s = rendered["services"]
    root_secret = _env(s["minio"])["MINIO_ROOT_PASSWORD"]
    root_user = _env(s["minio"])["MINIO_ROOT_USER"]
    for name, svc in s.items():
        if name in ("minio", "minio-init"):
            continue
        values = set(_env(svc).values())
        assert root_secret not in values and root_user not in values, f"{name} gets MinIO's root account"
    for name, user_var in (("worker-cpu", "MINIO_WORKER_USER"), ("worker-gpu", "MINIO_WORKER_USER"), ("mlflow", "MINIO_MLFLOW_USER")):
        assert _env(s[name])["AWS_ACCESS_KEY_ID"] == _env(s["minio-init"])[user_var]


def test_minio_users_are_scoped_to_their_bucket():
    policy = json.loads((INFRA / "minio" / "bucket-rw.json").read_text())
    resources = [r for st in policy["Statement"] for r in st["Resource"]]
    assert resources and all(r in ("arn:aws:s3:::@BUCKET@", "arn:aws:s3:::@BUCKET@/*") for r in resources)
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert all(st["Effect"] == "Allow" for st in policy["Statement"])
    assert not any(a.endswith("*") or a.startswith("admin:") for a in actions), actions
    init = (INFRA / "minio" / "init.sh").read_text()
    assert init.splitlines()[0] == "#!/bin/sh" and "set -eu" in init
    assert "mc admin policy create" in init and "mc admin user add" in init and "mc admin policy attach" in init
    assert 'grant "$MINIO_WORKER_USER" "$MINIO_WORKER_PASSWORD" "$DVC_BUCKET"' in init
    assert 'grant "$MINIO_MLFLOW_USER" "$MINIO_MLFLOW_PASSWORD" "$MLFLOW_BUCKET"' in init


def test_minio_console_is_off_by_default(rendered):
    assert _env(rendered["services"]["minio"])["MINIO_BROWSER"] == "off"


def test_containers_drop_privileges(compose, rendered):
    for name, svc in rendered["services"].items():
        assert "no-new-privileges:true" in (svc.get("security_opt") or []), f"{name}: privilege escalation allowed"
    for name in ("prefect-server", "minio", "minio-init", "mlflow", "mlflow-init", *WORKERS):
        assert rendered["services"][name].get("cap_drop") == ["ALL"], f"{name} keeps capabilities"
    for name in ("minio-init", "mlflow", "mlflow-init", *WORKERS):
        assert rendered["services"][name].get("read_only") is True, f"{name}: writable root file system"
    for name in WORKERS:
        assert rendered["services"][name]["user"] == "1000:1000"  # the .env.example's LIRA_UID:LIRA_GID
    assert rendered["services"]["minio-init"]["user"] == "65534:65534"
    assert re.search(r"^USER 10001$", (INFRA / "mlflow.Dockerfile").read_text(), re.MULTILINE)


def test_worker_image_is_not_world_writable_and_runs_as_lira():
    text = (INFRA / "worker.Dockerfile").read_text()
    assert "a+rw" not in text and "777" not in text and "o+w" not in text
    assert re.search(r"^USER 1000:1000$", text, re.MULTILINE)
    assert "COPY --chown=lira:lira . ." in text
    user_line = text.index("USER 1000:1000")
    assert user_line > text.index("COPY --chown=lira:lira . .") and text.rstrip().endswith(
        'CMD ["prefect", "worker", "start", "--pool", "lira-cpu", "--type", "process", "--with-healthcheck"]'
    )
    # The worker's Prefect client is the server's version.
    server = yaml.safe_load((INFRA / "docker-compose.yml").read_text())["services"]["prefect-server"]["image"]
    version = re.search(r"prefect:(\d+\.\d+\.\d+)", server).group(1)
    assert f"ARG PREFECT_VERSION={version}" in text and '"prefect==${PREFECT_VERSION}"' in text


def test_k8s_job_runs_non_root_read_only_without_escalation():
    from prefect.utilities.templating import apply_values

    template = json.loads((INFRA / "k8s" / "gpu-job-template.json").read_text())
    props = template["variables"]["properties"]
    values = {k: v["default"] for k, v in props.items() if "default" in v}
    values.update(name="run", labels={"x": "y"})
    job = apply_values(template["job_configuration"], values)["job_manifest"]
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
    # The workspace the flows write is an emptyDir holding a copy of the image's checkout.
    main = pod["containers"][0]
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    assert values["env"]["LIRA_ROOT"] in mounts and "/tmp" in mounts
    assert pod["initContainers"][0]["volumeMounts"][0]["name"] == mounts[values["env"]["LIRA_ROOT"]]
    assert "AWS_SECRET_ACCESS_KEY" in props["env_secret"]["description"] and "never the root" in props["env_secret"]["description"]


def test_k8s_network_policy_selects_the_flow_run_pods_and_denies_ingress():
    template = json.loads((INFRA / "k8s" / "gpu-job-template.json").read_text())
    pod_labels = template["job_configuration"]["job_manifest"]["spec"]["template"]["metadata"]["labels"]
    (policy,) = [d for d in yaml.safe_load_all((INFRA / "k8s" / "networkpolicy.yaml").read_text()) if d]
    assert policy["kind"] == "NetworkPolicy" and policy["apiVersion"] == "networking.k8s.io/v1"
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    assert spec["ingress"] == []
    egress_ports = {(p["protocol"], p["port"]) for rule in spec["egress"] for p in rule.get("ports", [])}
    assert ("UDP", 53) in egress_ports
    assert all(rule.get("to") for rule in spec["egress"]), "an egress rule without `to` allows every destination"
    assert template["variables"]["properties"]["namespace"]["default"] == policy["metadata"]["namespace"]


def test_readme_states_the_threat_model():
    text = (INFRA / "README.md").read_text()
    assert "## Threat model" in text
    section = text.split("## Threat model", 1)[1].split("\n## ", 1)[0]
    for word in ("PREFECT_SERVER_API_AUTH_STRING", "basic-auth", "bucket", "NetworkPolicy", "alias"):
        assert word in section, word
