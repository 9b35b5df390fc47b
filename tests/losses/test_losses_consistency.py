import torch
import torch.nn.functional as F

from lira.losses import score_mse, symmetric_kl


def test_zero_for_equal_and_symmetric():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 5, generator=g)
    b = torch.randn(6, 5, generator=g)
    assert abs(float(symmetric_kl(a, a + 3.0))) < 1e-6  # softmax is shift-invariant
    torch.testing.assert_close(symmetric_kl(a, b), symmetric_kl(b, a))
    assert float(symmetric_kl(a, b)) > 0


def test_matches_two_kls():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(4, 3, generator=g)
    b = torch.randn(4, 3, generator=g)
    la, lb = F.log_softmax(a, -1), F.log_softmax(b, -1)
    kl_ab = F.kl_div(lb, la, log_target=True, reduction="batchmean")  # KL(a || b)
    kl_ba = F.kl_div(la, lb, log_target=True, reduction="batchmean")
    torch.testing.assert_close(symmetric_kl(a, b), kl_ab + kl_ba)


def test_mask_excludes_choices_and_empty_rows():
    a = torch.tensor([[1.0, 2.0, 50.0], [0.0, 0.0, 0.0]], requires_grad=True)
    b = torch.tensor([[1.0, 2.0, -50.0], [1.0, 2.0, 3.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    d = symmetric_kl(a, b, mask)
    assert abs(float(d.detach())) < 1e-6  # the only difference sits in the masked choice
    d.backward()
    assert torch.isfinite(a.grad).all()


def test_score_mse_formula():
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    torch.testing.assert_close(score_mse(a, b), ((a - b) ** 2).mean())
