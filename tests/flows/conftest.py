"""Fixtures for the flow tests: a per-session PREFECT_HOME, the Prefect test harness, repo copies.

The environment is set at import, before any test module imports prefect, so every Prefect
setting (home, analytics, startup timeout) applies to the whole session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="lira-prefect-home-"))
os.environ["PREFECT_HOME"] = str(_SESSION_HOME)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
os.environ["DVC_NO_ANALYTICS"] = "1"
os.environ["DVC_SITE_CACHE_DIR"] = str(_SESSION_HOME / "dvc-site-cache")
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["HF_HUB_OFFLINE"] = "1"
# The runs must use the copy's own stores, never a server the developer has configured.
for _var in ("PREFECT_API_URL", "PREFECT_API_KEY", "MLFLOW_TRACKING_URI", "LIRA_ROOT"):
    os.environ.pop(_var, None)

MAIN = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# `flows` is not an installed package: import it from the checkout whatever pytest's cwd.
if str(MAIN) not in sys.path:
    sys.path.insert(0, str(MAIN))


@pytest.fixture(scope="session", autouse=True)
def _cleanup_prefect_home():
    yield
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API (SQLite in a temp dir) for the session's in-process flow runs."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=lira-tests", "-c", "user.email=tests@lira.invalid", "-c", "commit.gpgsign=false", *args],
        cwd=cwd, check=True, capture_output=True,
    )


def _declared_outputs(dvc_yaml: Path) -> list[str]:
    import yaml

    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    return [
        (e if isinstance(e, str) else next(iter(e))).rstrip("/")
        for spec in stages.values()
        for field in ("outs", "metrics", "plots")
        for e in spec.get(field, [])
    ]


def copy_project(dest: Path, caches: tuple[Path, ...] = ()) -> Path:
    """The project's files as git sees them (tracked + new, not ignored) in a fresh repo at ``dest``.

    New files are included because helpers add modules before the coordinator commits them; the
    copy is a clean checkout of what the next commit will hold. Raw data comes from the DVC remote
    (``dvc pull data.dvc``), else from the packaged sample (``lira sample sync``); the encoder
    caches are shared (see SHARED_CACHE) so the slice does not unpack and re-encode what the main
    checkout already did.
    """
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=MAIN, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    outputs = _declared_outputs(MAIN / "dvc.yaml")
    dest.mkdir(parents=True, exist_ok=True)
    for rel in filter(None, listing):
        src = MAIN / rel
        # Stage outputs someone produced in the main checkout are not source: leave them out.
        if src.is_file() and not any(rel == o or rel.startswith(o + "/") for o in outputs):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "copy for flow tests")
    raw = dest / "data" / "raw"
    for dvc_file in ("data.dvc", "data/raw.dvc"):
        if not raw.exists() and (dest / dvc_file).exists():
            # The raw data as DVC tracks it, from the project's remote (an in-repo folder by default).
            subprocess.run([str(VENV_BIN / "dvc"), "pull", "-q", dvc_file], cwd=dest, check=False, capture_output=True)
    if not raw.exists():
        subprocess.run([str(VENV_BIN / "lira"), "sample", "sync"], cwd=dest, check=True, capture_output=True)
    for root in (MAIN / ".cache" / "lira", *caches):
        for sub in SHARED_CACHE:
            if (root / sub).is_dir():
                shutil.copytree(root / sub, dest / ".cache" / "lira" / sub, copy_function=_link_or_copy, dirs_exist_ok=True)
    return dest


def share_back(copy: Path, cache: Path) -> None:
    """Link what a copy's run added to the content-keyed caches into the session's ``cache``, so
    the next copy starts with the unpacked encoder and the features (a clean clone has no main
    checkout cache to share). Existing files are kept: the keys name their content."""
    for sub in SHARED_CACHE:
        src = copy / ".cache" / "lira" / sub
        if not src.is_dir():
            continue
        for f in src.rglob("*"):
            target = cache / sub / f.relative_to(src)
            # Temp files and folders of writes in flight (".x.tmp", ".name.tmp-PID-...") are never shared.
            if f.is_file() and ".tmp" not in str(f.relative_to(src)) and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(str(f), str(target))


# Content-keyed caches worth sharing with a copy (unpacked encoder, encoder features); training
# checkpoints and the translation store are left out so every stage really runs.
SHARED_CACHE = ("models", "features")


def _link_or_copy(src: str, dst: str) -> None:
    # Hard links: no 500 MB copy per test; the caches are written by atomic replace, never in place.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@pytest.fixture
def project_copy(tmp_path, shared_cache) -> Path:
    copy = copy_project(tmp_path / "lira", caches=(shared_cache,))
    yield copy
    share_back(copy, shared_cache)


TINY_PARAMS = "shared:\n  seed: 13  # kept\ntracking:\n  enabled: false\n"


def make_dvc_project(root: Path, stages: dict[str, str], params_yaml: str = TINY_PARAMS) -> Path:
    """A tiny DVC project (no git) whose stages are the given shell commands."""
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(params_yaml, encoding="utf-8")
    (root / "dvc.yaml").write_text(
        yaml.safe_dump({"stages": {name: {"cmd": cmd} for name, cmd in stages.items()}}), encoding="utf-8"
    )
    subprocess.run([str(VENV_BIN / "dvc"), "init", "--no-scm", "-q"], cwd=root, check=True, capture_output=True)
    return root


@pytest.fixture
def dvc_project():
    """``dvc_project(root, {stage: cmd}, params_yaml=...)`` -> a tiny DVC project (see make_dvc_project)."""
    return make_dvc_project
