"""How `lira stage` asks for ranks (no processes started here), and the helpers on one process."""

from __future__ import annotations

import itertools
import sys

import pytest
import torch

from lira.config import ConfigError, Params
from lira.distributed import (
    all_gather_with_grad,
    chunk_bounds,
    is_main,
    local_rows,
    sync_gradients,
    world_size,
)
from lira.distributed.launch import (
    DISTRIBUTED_STAGES,
    NPROC_ENV,
    check_stage,
    requested_nproc,
    torchrun_command,
)


def test_chunks_cover_the_batch_in_order_for_any_world_size():
    for n in range(12):
        for world in (1, 2, 3, 5):
            bounds = [chunk_bounds(n, world, r) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1


def test_one_process_is_the_plain_path():
    x = torch.randn(5, 3, requires_grad=True)
    assert world_size() == 1 and is_main()
    assert local_rows(x) is x and all_gather_with_grad(x) is x
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 3.0)
    sync_gradients([p])
    assert torch.equal(p.grad, torch.full((2,), 3.0))


def test_nproc_comes_from_the_env_then_the_config(monkeypatch):
    monkeypatch.delenv(NPROC_ENV, raising=False)
    assert requested_nproc(1) == 1 and requested_nproc(3) == 3
    monkeypatch.setenv(NPROC_ENV, "4")
    assert requested_nproc(1) == 4
    monkeypatch.setenv(NPROC_ENV, "zero")
    with pytest.raises(ValueError, match=NPROC_ENV):
        requested_nproc(1)


def test_torchrun_command_runs_lira_as_ranks():
    cmd = torchrun_command(2, ["stage", "train_arca", "--params", "p.yaml"])
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in cmd and cmd[-6:] == ["-m", "lira", "stage", "train_arca", "--params", "p.yaml"]


def test_stages_that_do_not_scale_out_are_refused_under_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for stage in DISTRIBUTED_STAGES:
        check_stage(stage)
    with pytest.raises(ConfigError, match="translate.*does not run under torchrun"):
        check_stage("translate")
    monkeypatch.setenv("WORLD_SIZE", "1")
    check_stage("translate")


def test_the_config_section_is_typed_and_strict():
    assert Params().shared.distributed.nproc_per_node == 1
    with pytest.raises(ValueError, match="nproc_per_node"):
        Params.model_validate({"shared": {"distributed": {"nproc_per_node": 0}}})
    with pytest.raises(ValueError, match="backend"):
        Params.model_validate({"shared": {"distributed": {"backend": "mpi"}}})


def test_lira_stage_relaunches_itself_under_torchrun(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from lira import cli

    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    monkeypatch.delenv(NPROC_ENV, raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    res = CliRunner().invoke(cli.app, ["stage", "train_lasr", "--set", "shared.distributed.nproc_per_node=2",
                                       "--root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    (cmd,) = calls
    assert "--nproc-per-node=2" in cmd and cmd[cmd.index("lira") + 1 : cmd.index("lira") + 3] == ["stage", "train_lasr"]
    assert ["--set", "shared.distributed.nproc_per_node=2"] == cmd[-2:]
