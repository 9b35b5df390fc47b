import torch

from lira.lasr import LaSRHead, choice_logits

D, S, LANGS = 16, 3, 4


def _inputs(B=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, S, D, generator=g),
        torch.randn(B, S, D, generator=g),
        torch.randint(0, LANGS, (B,), generator=g),
    )


def _head(**kw):
    torch.manual_seed(0)
    return LaSRHead(D, LANGS, S, n_layers=2, n_heads=4, **kw)


def test_output_shape_and_unit_norm():
    head = _head().eval()
    e_lr, e_en, lang = _inputs()
    z = head(e_lr, e_en, lang)
    assert z.shape == (5, D)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(5))
    assert head.lrl_only(e_lr, lang).shape == head.en_only(e_en, lang).shape == (5, D)


def test_uses_every_input():
    head = _head().eval()
    e_lr, e_en, lang = _inputs()
    z = head(e_lr, e_en, lang)
    # (a constant shift would be invisible: pre-norm LayerNorm removes each token's mean)
    noise = torch.randn_like(e_lr)
    assert not torch.allclose(z, head(e_lr, e_en + noise, lang), atol=1e-4)
    assert not torch.allclose(z, head(e_lr + noise, e_en, lang), atol=1e-4)
    assert not torch.allclose(z, head(e_lr, e_en, (lang + 1) % LANGS), atol=1e-4)
    # slot order matters (position embeddings)
    assert not torch.allclose(z, head(e_lr.flip(1), e_en, lang), atol=1e-4)


def test_dropping_english_is_independent_of_e_en():
    head = _head().eval()
    e_lr, e_en, lang = _inputs()
    off = torch.tensor([False, True, False, True, False])
    z1 = head(e_lr, e_en, lang, en_mask=off)
    z2 = head(e_lr, torch.randn_like(e_en) * 100, lang, en_mask=off)
    dropped = ~off
    torch.testing.assert_close(z1[dropped], z2[dropped], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(z1[off], z2[off], atol=1e-4)  # kept rows do see English
    # masking the path == omitting it == lrl_only
    torch.testing.assert_close(z1[dropped], head(e_lr, None, lang)[dropped], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(head(e_lr, None, lang), head.lrl_only(e_lr, lang))
    # en_only ignores the LRL slots
    torch.testing.assert_close(
        head.en_only(e_en, lang),
        head.encode(torch.randn_like(e_lr), e_en, lang, lr_mask=torch.zeros(5, dtype=torch.bool)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_path_dropout_is_seeded_and_only_in_training():
    head = _head(dropout=0.0, path_dropout=0.5)
    e_lr, e_en, lang = _inputs(B=32)
    head.train()
    torch.manual_seed(123)
    z1 = head(e_lr, e_en, lang)
    torch.manual_seed(123)
    z2 = head(e_lr, e_en, lang)
    torch.testing.assert_close(z1, z2)
    # about half the rows lost English: they equal the LRL-only embedding
    z_lrl = head.lrl_only(e_lr, lang)
    n_dropped = torch.isclose(z1, z_lrl, atol=1e-5).all(-1).sum().item()
    assert 4 <= n_dropped <= 28
    head.eval()
    z_eval = head(e_lr, e_en, lang)
    assert not torch.isclose(z_eval, z_lrl, atol=1e-5).all(-1).any()


def test_gradients_reach_both_paths():
    head = _head()
    e_lr, e_en, lang = _inputs()
    e_lr.requires_grad_(True)
    e_en.requires_grad_(True)
    head(e_lr, e_en, lang).sum().backward()
    assert e_lr.grad.abs().sum() > 0 and e_en.grad.abs().sum() > 0


def test_task_heads():
    torch.manual_seed(0)
    zq = torch.randn(3, 8)
    zc = torch.randn(2, 3, 8)
    zc[0, 2] = zq[0] * 2
    cmask = torch.tensor([[True, True, True], [True, True, False]])
    logits = choice_logits(zq[:2], zc, cmask, temperature=0.1)
    assert logits.shape == (2, 3)
    assert logits[1, 2] == float("-inf")
    torch.testing.assert_close(logits[0, 2], torch.tensor(10.0))
    p = logits.softmax(-1)
    assert not torch.isnan(p).any() and p[1, 2] == 0


def test_config_round_trip_rebuilds_the_same_head():
    head = LaSRHead(16, 3, 2, n_layers=1, n_heads=2, dropout=0.0, path_dropout=0.3, d_in=8, residual=True)
    again = LaSRHead.from_config(head.config())
    assert again.config() == head.config() and again.d_in == 8 and again.residual and again.path_dropout == 0.3
    again.load_state_dict(head.state_dict())  # same parameter shapes
