import pytest
import torch
import torch.nn.functional as F

from lira.arca import TemporalPooling


def _masked_mean(h, mask):
    m = mask.float().unsqueeze(-1)
    return (h * m).sum(1) / m.sum(1)


def test_s1_is_masked_mean():
    torch.manual_seed(0)
    h = torch.randn(4, 9, 5)
    mask = torch.arange(9).unsqueeze(0) < torch.tensor([[9], [3], [1], [6]])
    out = TemporalPooling(1)(h, mask)
    assert out.shape == (4, 1, 5)
    torch.testing.assert_close(out[:, 0], _masked_mean(h, mask))


def test_s_equals_t_without_padding_is_identity():
    torch.manual_seed(1)
    h = torch.randn(3, 7, 4)
    out = TemporalPooling(7)(h, torch.ones(3, 7, dtype=torch.bool))
    torch.testing.assert_close(out, h)


@pytest.mark.parametrize("s", [1, 2, 3, 5, 8])
def test_padding_never_leaks(s):
    torch.manual_seed(2)
    h = torch.randn(2, 6, 3)
    mask = torch.ones(2, 6, dtype=torch.bool)
    ref = TemporalPooling(s)(h, mask)
    # right padding with garbage
    garbage = torch.randn(2, 4, 3) * 1e3
    h_r = torch.cat([h, garbage], 1)
    m_r = torch.cat([mask, torch.zeros(2, 4, dtype=torch.bool)], 1)
    torch.testing.assert_close(TemporalPooling(s)(h_r, m_r), ref)
    # left padding, and padding interleaved with the valid tokens
    h_l = torch.cat([garbage, h], 1)
    m_l = torch.cat([torch.zeros(2, 4, dtype=torch.bool), mask], 1)
    torch.testing.assert_close(TemporalPooling(s)(h_l, m_l), ref)
    perm = torch.tensor([0, 6, 1, 2, 7, 8, 3, 4, 9, 5])
    torch.testing.assert_close(TemporalPooling(s)(h_r[:, perm], m_r[:, perm]), ref)


@pytest.mark.parametrize("s", [1, 3, 4, 7, 16])
def test_matches_adaptive_avg_pool1d_per_sequence(s):
    g = torch.Generator().manual_seed(3)
    B, T, H = 8, 13, 6
    h = torch.randn(B, T, H, generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0], lengths[1] = 1, T  # include the extremes (and L < S when s > 1)
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    out = TemporalPooling(s)(h, mask)
    assert out.shape == (B, s, H)
    for b in range(B):
        seq = h[b, : lengths[b]].T.unsqueeze(0)  # [1, H, L]
        want = F.adaptive_avg_pool1d(seq, s)[0].T  # [S, H]
        torch.testing.assert_close(out[b], want)


def test_all_padding_row_is_zero_and_finite():
    h = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [False] * 4])
    out = TemporalPooling(2)(h, mask)
    assert torch.isfinite(out).all()
    assert (out[1] == 0).all()


def test_gradient_only_reaches_valid_tokens():
    h = torch.randn(1, 5, 2, requires_grad=True)
    mask = torch.tensor([[True, True, True, False, False]])
    TemporalPooling(2)(h, mask).sum().backward()
    assert (h.grad[0, 3:] == 0).all() and (h.grad[0, :3] != 0).all()
