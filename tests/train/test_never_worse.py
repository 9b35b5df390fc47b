"""Issue 13, 'never worse by construction': the default LiRA starts exactly at the pretrained
encoder, and early stopping scores that start too, so a run that only gets worse returns it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lira.arca import TemporalPooling
from lira.arca.config import ArcaConfig
from lira.config import SharedParams
from lira.lasr.config import LasrConfig
from lira.lasr.head import LaSRHead
from lira.train import arca as arca_mod
from lira.train import lasr as lasr_mod
from lira.train.arca import ArcaData, build_modules, dev_report, stop_signal, train_arca
from lira.train.lasr import train_lasr
from lira.train.lasr_run import build_net

H = 32


def _hidden(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, 9, H, generator=g)
    lengths = torch.randint(2, 10, (n,), generator=g)
    mask = torch.arange(9)[None, :] < lengths[:, None]
    return hidden, mask


def _frozen(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The frozen encoder's sentence embedding: masked mean pooling, L2-normalised."""
    m = mask.float().unsqueeze(-1)
    return F.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)


def _arca_data(n: int = 48, k: int = 2, seed: int = 0) -> ArcaData:
    s = SharedParams.model_fields["s_feat"].default
    pool = TemporalPooling(s)
    h_lr, m_lr = _hidden(n, seed)
    h_en, m_en = _hidden(n * k, seed + 1)
    g = torch.Generator().manual_seed(seed)
    return ArcaData(
        lang=torch.arange(n) % 2, lr=pool(h_lr, m_lr), cand=pool(h_en, m_en).reshape(n, k, s, H),
        feats=torch.rand(n, k, 4, generator=g), mask=torch.ones(n, k, dtype=torch.bool), reward=torch.rand(n, k, generator=g),
        train_idx=torch.arange(0, n - 16), dev_idx=torch.arange(n - 16, n),
    )


def _default_net(data: ArcaData, seed: int = 0):
    adaptors, _ = build_modules(data, ArcaConfig(), seed)
    return build_net(adaptors, LasrConfig(), n_langs=2, s_feat=data.lr.shape[1], seed=seed).eval()


def test_default_lira_starts_at_the_frozen_encoder():
    s = SharedParams.model_fields["s_feat"].default
    pool = TemporalPooling(s)
    h_lr, m_lr = _hidden(20, 0)
    h_en, m_en = _hidden(20, 1)
    p_lr, p_en = pool(h_lr, m_lr), pool(h_en, m_en)
    data = ArcaData(lang=torch.zeros(20, dtype=torch.long), lr=p_lr, cand=p_en[:, None], feats=torch.zeros(20, 1, 4),
                    mask=torch.ones(20, 1, dtype=torch.bool), reward=torch.zeros(20, 1),
                    train_idx=torch.arange(20), dev_idx=torch.arange(0))
    net = _default_net(data)
    lang = torch.arange(20) % 2
    with torch.no_grad():
        # full width: no bottleneck by default
        assert net.head.d_in == H
        z_lrl = net.lrl_only(p_lr, lang)
        torch.testing.assert_close(z_lrl, _frozen(h_lr, m_lr), atol=1e-5, rtol=0)
        z_fused = net(p_lr, p_en, lang)
        want = F.normalize((_frozen(h_lr, m_lr) + _frozen(h_en, m_en)) / 2, dim=-1)
        torch.testing.assert_close(z_fused, want, atol=1e-5, rtol=0)
        # English text alone, through the head's anchor-language entry: the frozen English embedding
        torch.testing.assert_close(net.en_only(p_en), _frozen(h_en, m_en), atol=1e-5, rtol=0)


def test_the_anchor_language_has_its_own_entry_and_old_heads_refuse_english():
    head = LaSRHead(16, n_langs=3, n_slots=1, anchor_lang=True).eval()
    assert head.anchor_index == 3 and head.lang_emb.num_embeddings == 4
    assert LaSRHead.from_config(head.config()).anchor_index == 3
    old = {k: v for k, v in head.config().items() if k != "anchor_lang"}
    legacy = LaSRHead.from_config(old)
    assert legacy.anchor_index is None and legacy.lang_emb.num_embeddings == 3
    e = torch.randn(2, 1, 16)
    try:
        legacy.en_only(e)
    except ValueError as err:
        assert "anchor-language" in str(err)
    else:
        raise AssertionError("a head without an anchor entry embedded English text")
    # the anchor entry is what en_only uses: another entry gives another z once the head is trained
    torch.nn.init.normal_(head.out_proj.weight)
    with torch.no_grad():
        assert torch.allclose(head.en_only(e), head.en_only(e, torch.full((2,), 3)))
        assert not torch.allclose(head.en_only(e), head.en_only(e, torch.zeros(2, dtype=torch.long)))


def _worsening(values):
    it = iter(values)
    return lambda *a, **k: next(it)


def test_arca_whose_every_epoch_is_worse_returns_the_initial_weights(monkeypatch):
    data = _arca_data()
    cfg = ArcaConfig(epochs=3, patience=5, batch_size=8, lr=0.05)
    initial, initial_actor = build_modules(data, cfg, 7)
    real = dev_report
    calls = []

    def worse(adaptors, actor, d, idx, n_langs):
        rep = real(adaptors, actor, d, idx, n_langs)
        calls.append(1)
        # the start scores best; every trained epoch scores lower on dev
        rep["bitext_acc"] = {li: 1.0 - 0.1 * len(calls) for li in rep["bitext_acc"]}
        return rep

    monkeypatch.setattr(arca_mod, "dev_report", worse)
    result = train_arca(data, cfg, n_langs=2, seed=7)
    assert len(calls) == 4 and result.best_epoch == -1
    assert [r["epoch"] for r in result.history] == [-1, 0, 1, 2]
    for (name, p), q in zip(result.adaptors.state_dict().items(), initial.state_dict().values()):
        assert torch.equal(p, q), name
    for p, q in zip(result.actor.state_dict().values(), initial_actor.state_dict().values()):
        assert torch.equal(p, q)


def test_arca_stops_on_a_signal_a_collapse_cannot_win():
    data = _arca_data()
    for k in range(data.cand.shape[1]):  # every candidate is a faithful translation
        data.cand[:, k] = data.lr + 0.1 * torch.randn_like(data.lr)
    adaptors, actor = build_modules(data, ArcaConfig(), 0)
    intact = {**dev_report(adaptors, actor, data, data.dev_idx, 2)}
    with torch.no_grad():
        adaptors.adaptor.net[-1].bias.fill_(100.0)  # one common offset: every cosine -> 1
    collapsed = dev_report(adaptors, actor, data, data.dev_idx, 2)
    row = lambda rep: arca_mod.dev_row(rep)
    assert collapsed["eps1_raw_mean"] < intact["eps1_raw_mean"]  # the raw anchoring error rewards it
    assert stop_signal(row(collapsed), "bitext") < stop_signal(row(intact), "bitext")
    assert stop_signal(row(intact), "eps1") == -row(intact)["dev_anchor_error"]


def test_lasr_whose_every_epoch_is_worse_returns_the_initial_weights(monkeypatch):
    import numpy as np
    from test_lasr_trainer import CFG, make_net, synthetic

    data = synthetic()
    net = make_net()
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    scores = iter([0.9, 0.5, 0.4, 0.3])
    monkeypatch.setattr(lasr_mod, "retrieval_eval", lambda *a, **k: {"ndcg": next(scores), "per_query": np.zeros(0)})
    result = train_lasr(data, net, LasrConfig(**{**CFG, "epochs": 3, "lr": 0.05}), 1)
    assert result.best_epoch == -1 and [r["epoch"] for r in result.history] == [-1, 0, 1, 2]
    for name, v in result.net.state_dict().items():
        assert torch.equal(v, initial[name]), name
