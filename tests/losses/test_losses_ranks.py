import torch
from scipy.stats import rankdata

from lira.losses import soft_rank


def test_soft_rank_matches_hard_rank_with_ties():
    g = torch.Generator().manual_seed(0)
    s = torch.randint(0, 5, (3, 12), generator=g).double()  # many ties on purpose
    r = soft_rank(s, tau=1e-4)
    for row, rr in zip(s, r):
        expected = rankdata(-row.numpy(), method="average")
        torch.testing.assert_close(rr, torch.from_numpy(expected), atol=1e-6, rtol=0)


def test_soft_rank_mask_excludes_from_others_but_ranks_masked():
    s = torch.tensor([[3.0, 100.0, 2.0, 1.0]])
    mask = torch.tensor([[True, False, True, True]])
    r = soft_rank(s, tau=1e-3, mask=mask)
    # The masked 100.0 would otherwise push every valid rank down by one.
    torch.testing.assert_close(r[0, [0, 2, 3]], torch.tensor([1.0, 2.0, 3.0]))
    # It still gets a rank against the valid entries: above all of them.
    torch.testing.assert_close(r[0, 1], torch.tensor(1.0))


def test_soft_rank_masked_inf_padding_is_nan_free():
    s = torch.tensor([[0.3, float("-inf"), 0.1, float("-inf")]], requires_grad=True)
    mask = torch.isfinite(s.detach())
    r = soft_rank(s, tau=0.1, mask=mask)
    assert torch.isfinite(r).all()
    r[mask].sum().backward()
    assert torch.isfinite(s.grad).all()
