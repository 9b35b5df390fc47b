"""Every `prefect ...` command the docs show runs against a real local Prefect API.

Reproduction (issue 18 item 6): infra/README's ``prefect deployment run 'lira-promote/manual'
--param version=7`` failed on a schema error (the CLI sends 7 as a JSON number, the flow took a
string). Here the docs' commands are collected from the files a user reads, then run with the
real ``prefect`` CLI against the session's test server: the work pools are created, ``prefect
deploy --all`` registers prefect.yaml's deployments, ``flows.deploy`` registers the served ones,
and each ``prefect deployment run`` must create its flow run (the server validates the parameters
against the deployment's schema). Nothing executes the runs: no worker polls the pools.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MAIN = Path(__file__).resolve().parents[2]
PREFECT = Path(sys.executable).with_name("prefect")
DOCS = ["README.md", "infra/README.md", "prefect.yaml", "flows/deploy.py", "flows/retrain.py", "flows/pipeline.py"]
COMMAND = re.compile(r"prefect (?:deployment run|work-pool create|deploy)\b[^\n`]*")
# Not runnable on a bare test server: a kubernetes pool needs the prefect-kubernetes worker type.
NOT_HERE = ("--type kubernetes",)


def doc_commands() -> list[str]:
    found: list[str] = []
    for rel in DOCS:
        for m in COMMAND.finditer((MAIN / rel).read_text(encoding="utf-8")):
            cmd = m.group(0).split(" # ")[0].split("  #")[0].strip().rstrip(".,;)")
            if cmd not in found:
                found.append(cmd)
    return found


def test_the_docs_show_the_commands_this_test_runs():
    cmds = doc_commands()
    assert any("'lira-promote/manual' --param version=7" in c for c in cmds), cmds
    assert any(c.startswith("prefect deploy --all") for c in cmds) and any("work-pool create" in c for c in cmds)


@pytest.mark.skipif(not PREFECT.exists(), reason="prefect CLI not installed")
def test_every_documented_prefect_command_runs_on_a_local_server(prefect_harness, tmp_path):
    from prefect.settings import get_current_settings

    from flows.deploy import build_deployments

    api = get_current_settings().api.url
    assert api and api.startswith("http://127.0.0.1"), api
    work = tmp_path / "repo"
    work.mkdir()
    shutil.copy(MAIN / "prefect.yaml", work / "prefect.yaml")
    shutil.copytree(MAIN / "flows", work / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PREFECT_API_URL": api, "PYTHONPATH": str(MAIN), "LIRA_ROOT": str(MAIN)}
    for d in build_deployments(name="local"):  # what `python -m flows.deploy` serves
        d.apply()

    cmds = [c for c in doc_commands() if not any(x in c for x in NOT_HERE)]
    order = {"prefect work-pool": 0, "prefect deploy ": 1, "prefect deployment run": 2}
    cmds.sort(key=lambda c: next(v for k, v in order.items() if c.startswith(k)))
    ran = []
    for cmd in cmds:
        args = [a for a in shlex.split(cmd)[1:] if a != "--watch"]  # --watch would wait for a worker
        if args[0] == "deploy":
            args = ["--no-prompt", *args]
        out = subprocess.run([str(PREFECT), *args], cwd=work, env=env, capture_output=True, text=True, timeout=300,
                             check=False)
        text = out.stdout + out.stderr
        if args[:2] == ["work-pool", "create"] and "already exists" in text:
            continue
        assert out.returncode == 0, f"`{cmd}` failed (exit {out.returncode}):\n{text[-3000:]}"
        if args[:2] == ["deployment", "run"]:
            assert "Created flow run" in text, text[-2000:]
        ran.append(cmd)
    assert sum(c.startswith("prefect deployment run") for c in ran) >= 3, ran
