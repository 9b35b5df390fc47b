from __future__ import annotations

import pytest
import torch

from lira.arca.config import ArcaConfig
from lira.train.arca import ArcaData, build_modules, dev_report, train_arca
from lira.train.common import Checkpointer, Interrupt


def synthetic(n: int = 160, k: int = 3, s: int = 2, h: int = 16, seed: int = 0) -> ArcaData:
    """Candidate 0 is a faithful 'translation' (a fixed linear map of the source), 2 is noise."""
    g = torch.Generator().manual_seed(seed)
    lr = torch.randn(n, s, h, generator=g)
    w = torch.randn(h, h, generator=g) / h**0.5
    clean = lr @ w
    cand = torch.stack([clean + 0.05 * torch.randn(n, s, h, generator=g),
                        clean + 0.5 * torch.randn(n, s, h, generator=g),
                        torch.randn(n, s, h, generator=g)], 1)
    quality = torch.tensor([0.9, 0.6, 0.1])
    feats = torch.stack([quality.expand(n, k) + 0.05 * torch.randn(n, k, generator=g), torch.zeros(n, k)], -1)
    reward = quality.expand(n, k) + 0.05 * torch.randn(n, k, generator=g)
    idx = torch.arange(n)
    return ArcaData(lang=idx % 2, lr=lr, cand=cand, feats=feats, mask=torch.ones(n, k, dtype=torch.bool),
                    reward=reward, train_idx=idx[: int(0.75 * n)], dev_idx=idx[int(0.75 * n):])


CFG = dict(d=16, residual=False, epochs=8, batch_size=32, patience=8, lr=5e-3, dropout=0.0)
SEED = 3


def test_training_lowers_dev_anchoring_error_and_prefers_the_clean_candidate():
    data = synthetic()
    cfg = ArcaConfig(**CFG, stop_on="eps1")  # the checkpoint kept is the one with the lowest dev eps1
    before = dev_report(*build_modules(data, cfg, SEED), data, data.dev_idx, 2)
    result = train_arca(data, cfg, n_langs=2, seed=SEED)
    after = dev_report(result.adaptors, result.actor, data, data.dev_idx, 2)
    for li in (0, 1):
        assert after["eps1"][li] < before["eps1"][li]
    probs = result.actor.log_probs(data.feats, data.mask).exp()
    assert probs[:, 0].mean() > 0.5  # started at 1/3


def test_guards_keep_outputs_spread_and_discriminative():
    data = synthetic()
    result = train_arca(data, ArcaConfig(**{**CFG, "epochs": 40, "patience": 40, "lambda_var": 1.0, "lambda_nce": 0.5}), n_langs=2, seed=SEED)
    with torch.no_grad():
        e_lr, _ = result.adaptors(data.lr, data.cand[:, 0])
    u = torch.nn.functional.normalize(e_lr.mean(1), dim=-1)
    assert u.std(0).mean() * 16**0.5 > 0.3  # per-dim spread of unit vectors, in units of 1/sqrt(d)
    report = dev_report(result.adaptors, result.actor, data, data.dev_idx, 2)
    assert min(report["bitext_acc"].values()) > 0.4  # each text finds its own translation (chance: 0.05)


def test_resume_after_kill_ends_where_uninterrupted_run_ends(tmp_path):
    data = synthetic()
    cfg = ArcaConfig(**CFG)
    full = train_arca(data, cfg, n_langs=2, seed=SEED, checkpointer=Checkpointer(tmp_path / "a", "k"))

    def kill(epoch, row):
        if epoch == 3:
            raise Interrupt()

    ck = Checkpointer(tmp_path / "b", "k")
    with pytest.raises(Interrupt):
        train_arca(data, cfg, n_langs=2, seed=SEED, checkpointer=ck, on_epoch=kill)
    assert ck.load()["epoch"] == 3
    resumed = train_arca(data, cfg, n_langs=2, seed=SEED, checkpointer=ck)
    assert resumed.resumed_from == 3
    assert [r["loss"] for r in resumed.history if r["epoch"] >= 0] == pytest.approx([r["loss"] for r in full.history if r["epoch"] >= 0])
    for (n1, p1), (n2, p2) in zip(full.adaptors.state_dict().items(), resumed.adaptors.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), n1


def test_stop_gradient_keeps_english_side_out_of_the_anchor_gradient():
    data = synthetic(n=8)
    adaptors, _ = build_modules(data, ArcaConfig(d=16, residual=False, dropout=0.0), SEED)
    p_en = data.cand[:, 0].clone().requires_grad_(True)
    p_lr = data.lr.clone().requires_grad_(True)
    from lira.losses import anchoring_loss

    e_lr, e_en = adaptors(p_lr, p_en)
    anchoring_loss(e_lr, e_en, stop_grad_en=True).backward()
    assert p_en.grad is None and p_lr.grad is not None
