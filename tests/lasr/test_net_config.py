"""A trained net describes itself: the saved folder rebuilds the same net from its own config."""

from __future__ import annotations

import json

import torch

from lira.arca import Actor, AnchorAdaptors
from lira.lasr.head import LaSRHead
from lira.lasr.net import LiraNet
from lira.model import load_net, save_lira_model


def _net(residual: bool = False) -> LiraNet:
    torch.manual_seed(0)
    adaptors = AnchorAdaptors(12, 20, 16, shared=True, hidden=24, dropout=0.1, residual=False)
    head = LaSRHead(8, 3, 2, n_layers=1, n_heads=2, dropout=0.0, path_dropout=0.5, d_in=16, residual=residual)
    return LiraNet(adaptors, head).eval()


def _meta(backbone) -> dict:
    # a model folder names its backbone by content hash, so the spec must point at real files
    backbone.mkdir(exist_ok=True)
    (backbone / "config.json").write_text("{}")
    spec = f"hf:{backbone}"
    return {"variant": "full", "languages": ["vi", "th", "id"], "s_feat": 2, "agents": ["a"],
            "encoders": {"lrl": {"spec": spec}, "en": {"spec": spec}}}


def test_saved_folder_rebuilds_the_same_net_and_actor(tmp_path):
    net, actor = _net(residual=True), Actor(9, hidden=6)
    save_lira_model(tmp_path / "model", net, _meta(tmp_path / "backbone"), actor, use_english=False)
    meta = json.loads((tmp_path / "model" / "lira_model.json").read_text())
    assert meta["arca"] == net.adaptors.config() and meta["actor"] == {"features": 9, "hidden": 6}
    assert meta["lasr"]["use_english"] is False and meta["lasr"]["d_model"] == 8 and meta["lasr"]["residual"] is True
    net2, actor2, _ = load_net(tmp_path / "model")
    lr, en, lang = torch.randn(4, 2, 12), torch.randn(4, 2, 20), torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(net2(lr, en, lang), net(lr, en, lang))
    f, m = torch.rand(2, 3, 9), torch.ones(2, 3, dtype=torch.bool)
    torch.testing.assert_close(actor2.log_probs(f, m), actor.log_probs(f, m))


def test_a_folder_written_before_the_parts_saved_their_config_still_loads(tmp_path):
    net = _net()
    old = {**_meta(tmp_path), "arca": {"in_dim_lr": 12, "in_dim_en": 20, "d": 16, "hidden": 24, "shared": True, "dropout": 0.1},
           "lasr": {"d_model": 8, "n_layers": 1, "n_heads": 2, "dropout": 0.0, "use_english": True}}
    rebuilt = LiraNet.from_meta(old)
    rebuilt.load_state_dict(net.state_dict())
    rebuilt.eval()
    lr, en, lang = torch.randn(3, 2, 12), torch.randn(3, 2, 20), torch.tensor([0, 1, 2])
    torch.testing.assert_close(rebuilt(lr, en, lang), net(lr, en, lang))
