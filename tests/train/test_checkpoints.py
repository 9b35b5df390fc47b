"""Checkpoints hold tensors and plain JSON state: loading one never runs code, and a corrupt one is
moved aside (reported with its path) so training restarts from scratch."""

from __future__ import annotations

import pickle
import warnings

import pytest
import torch
from test_arca_trainer import CFG, SEED, synthetic

from lira.integrity import CorruptFileWarning
from lira.train.arca import ArcaConfig, train_arca
from lira.train.common import Checkpointer, EarlyStopping, Interrupt, decode_state, encode_state


class _Boom:
    """Unpickling this writes a marker file: the proof that a loader executed the checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_placed_as_a_checkpoint_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    ck = Checkpointer(tmp_path / "ck", "k")
    ck.path.parent.mkdir(parents=True)
    payload = pickle.dumps({"epoch": 0, "x": _Boom(marker)})
    # wherever the checkpointer looks (its own path, or a legacy .pt beside it), a pickle is there
    for p in {ck.path, ck.path.with_suffix(".pt")}:
        p.write_bytes(payload)
    data = synthetic()
    with pytest.warns(CorruptFileWarning, match=str(ck.path)):
        result = train_arca(data, ArcaConfig(**{**CFG, "epochs": 2}), n_langs=2, seed=SEED, checkpointer=ck)
    assert not marker.exists()
    assert result.resumed_from is None  # restarted from scratch
    assert list(ck.path.parent.glob(ck.path.name + ".corrupt-*"))  # moved aside for inspection
    fresh = train_arca(data, ArcaConfig(**{**CFG, "epochs": 2}), n_langs=2, seed=SEED)
    for (n1, p1), (n2, p2) in zip(fresh.adaptors.state_dict().items(), result.adaptors.state_dict().items()):
        assert torch.equal(p1, p2), n1


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_a_corrupt_checkpoint_is_moved_aside_and_training_restarts(tmp_path, damage):
    data = synthetic()
    cfg = ArcaConfig(**CFG)

    def kill(epoch, row):
        if epoch == 2:
            raise Interrupt()

    ck = Checkpointer(tmp_path / "ck", "k")
    with pytest.raises(Interrupt):
        train_arca(data, cfg, n_langs=2, seed=SEED, checkpointer=ck, on_epoch=kill)
    raw = ck.path.read_bytes()
    if damage == "truncate":
        ck.path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":  # a flipped byte in the tensor data: only a checksum sees it
        ck.path.write_bytes(raw[:-9] + bytes([raw[-9] ^ 0xFF]) + raw[-8:])
    else:
        ck.path.write_bytes(b"\x00" * 64)
    with pytest.warns(CorruptFileWarning, match=str(ck.path)):
        again = train_arca(data, cfg, n_langs=2, seed=SEED, checkpointer=ck)
    assert again.resumed_from is None
    full = train_arca(data, cfg, n_langs=2, seed=SEED)
    assert [r["loss"] for r in again.history if r["epoch"] >= 0] == [r["loss"] for r in full.history if r["epoch"] >= 0]


def test_state_round_trips_exactly_without_pickle():
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.randn(3))], lr=1e-3)
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    state = {
        "opt": opt.state_dict(), "gen": gen.get_state(), "nan": float("nan"), "inf": float("-inf"),
        "tuple": (1, 2.5, None, True), "empty": torch.zeros(0), "half": torch.randn(2, 2).half(),
        "stopper": EarlyStopping(3).state_dict(), "nested": [{"a": torch.arange(4)}],
    }
    tensors, meta = encode_state(state)
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())
    back = decode_state(tensors, meta)
    assert back["tuple"] == (1, 2.5, None, True) and back["inf"] == float("-inf") and back["nan"] != back["nan"]
    assert list(back["opt"]["state"]) == [0]  # integer keys stay integers (the optimizer needs them)
    assert torch.equal(back["gen"], state["gen"]) and back["half"].dtype == torch.float16
    assert back["opt"]["param_groups"][0]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="cannot store"):
        encode_state({"x": object()})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.optim.AdamW([torch.nn.Parameter(torch.randn(3))], lr=1e-3).load_state_dict(back["opt"])
