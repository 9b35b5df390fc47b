"""Issue 13, forgetting: the English self-anchoring guard (train_arca.lambda_self,
train_lasr.lambda_self) keeps LiRA's English path at the frozen English encoder while the LRL path
is anchored to it - and it changes nothing at the residual start."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lira.arca import AnchorAdaptors
from lira.arca.config import ArcaConfig
from lira.lasr.config import LasrConfig
from lira.losses import self_anchoring_loss
from lira.train.arca import build_modules, train_arca
from lira.train.lasr import LasrStep, train_lasr
from lira.train.lasr_run import build_net
from test_lasr_trainer import synthetic  # same folder (pytest puts it on sys.path)
from test_never_worse import _arca_data


def _cos_to_frozen(z: torch.Tensor, p_en: torch.Tensor) -> float:
    return float(F.cosine_similarity(z, F.normalize(p_en.mean(1), dim=-1), dim=-1).mean())


def _arca_english_path(adaptors, p_en: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.normalize(adaptors.en(p_en).mean(1), dim=-1)


ARCA = dict(epochs=6, patience=10, batch_size=8, lr=0.02, lora_epochs=0)


def test_arca_guard_keeps_the_english_path_at_the_frozen_encoder():
    data = _arca_data()
    g = torch.Generator().manual_seed(5)
    for k in range(data.cand.shape[1]):  # noisy but faithful translations
        data.cand[:, k] = data.lr + 0.5 * torch.randn(data.lr.shape, generator=g)
    p_en = data.cand[:, 0]
    off = train_arca(data, ArcaConfig(**ARCA, lambda_self=0.0, stop_on="eps1"), n_langs=2, seed=3)
    on = train_arca(data, ArcaConfig(**ARCA, lambda_self=ArcaConfig().lambda_self, stop_on="eps1"), n_langs=2, seed=3)
    assert off.best_epoch >= 0 and on.best_epoch >= 0  # both trained (not the untouched start)
    cos_off = _cos_to_frozen(_arca_english_path(off.adaptors, p_en), p_en)
    cos_on = _cos_to_frozen(_arca_english_path(on.adaptors, p_en), p_en)
    # unguarded, the shared adaptor moves English text; guarded, far less (it started at cos 1)
    assert cos_off < 0.95
    assert 1 - cos_on < 0.5 * (1 - cos_off)
    assert all(r["self"] > 0 for r in on.history if r["epoch"] >= 0)
    assert all(r["self"] == 0 for r in off.history if r["epoch"] >= 0)


def test_arca_guard_is_zero_at_the_residual_start():
    data = _arca_data()
    adaptors, _ = build_modules(data, ArcaConfig(), 0)
    p_en = data.cand[:, 0]
    z = _arca_english_path(adaptors.eval(), p_en)
    assert float(self_anchoring_loss(z, F.normalize(p_en.mean(1), dim=-1))) < 1e-6


def test_arca_guard_skips_a_bottleneck():
    data = _arca_data()
    # d != the English width: nothing to compare to, so it trains as without the guard
    res = train_arca(data, ArcaConfig(d=8, residual=False, epochs=1, batch_size=8, lambda_self=1.0), n_langs=2, seed=0)
    assert all(r["self"] == 0 for r in res.history if r["epoch"] >= 0)


LASR = dict(epochs=2, batch_size=12, patience=10, corr_queue=16, doc_queue=16, top_m=4, lr=1e-2, dropout=0.0, n_layers=1,
            n_heads=2, d_model=16)


def _lasr_net(data, cfg: LasrConfig):
    adaptors = AnchorAdaptors(data.lr.shape[-1], data.en.shape[-1], data.lr.shape[-1], residual=True, dropout=0.0)
    return build_net(adaptors, cfg, n_langs=2, s_feat=data.lr.shape[1], seed=0)


def _english_path(net, data) -> torch.Tensor:
    with torch.no_grad():
        return net.eval().en_only(data.en)


def test_lasr_guard_keeps_the_anchor_entry_at_the_frozen_encoder():
    data = synthetic()
    # no dev queries: the epoch with the lowest train loss is kept, never the untouched start
    data.query_split = np.array(["train"] * len(data.query_split), dtype=object)
    cfgs = {w: LasrConfig(**LASR, lambda_self=w) for w in (0.0, LasrConfig().lambda_self)}
    cos = {}
    for w, cfg in cfgs.items():
        net = _lasr_net(data, cfg)
        res = train_lasr(data, net, cfg, seed=1)
        assert res.best_epoch >= 0
        cos[w] = _cos_to_frozen(_english_path(res.net, data), data.en)
        assert all((r.get("self_r", 0) > 0) == (w > 0) for r in res.history if r["epoch"] >= 0)
    w = LasrConfig().lambda_self
    assert cos[w] > cos[0.0]
    assert 1 - cos[w] < 0.5 * (1 - cos[0.0])


def test_lasr_guard_term_is_zero_at_the_residual_start_and_off_without_english():
    data = synthetic()
    cfg = LasrConfig(**LASR)
    net = _lasr_net(data, cfg).eval()
    st = LasrStep(data, net, cfg, None, None, None)
    rows = torch.arange(20)
    assert float(st.self_anchor_term(rows)) < 1e-6
    st_off = LasrStep(data, net, cfg.replaced(use_english=False), None, None, None)
    assert float(st_off.self_anchor_term(rows)) == 0.0
