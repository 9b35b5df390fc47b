import pytest
import torch

from lira.losses import self_anchoring_loss


def test_matches_the_formula():
    g = torch.Generator().manual_seed(0)
    z, f = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    want = sum(1 - float(z[b] @ f[b]) / float(z[b].norm() * f[b].norm()) for b in range(6)) / 6
    assert abs(float(self_anchoring_loss(z, f)) - want) < 1e-6


def test_zero_at_the_frozen_encoder_and_scale_invariant():
    f = torch.randn(5, 4)
    assert abs(float(self_anchoring_loss(3 * f, f))) < 1e-6
    assert abs(float(self_anchoring_loss(-f, f)) - 2.0) < 1e-6


def test_the_frozen_side_gets_no_gradient():
    z = torch.randn(3, 4, requires_grad=True)
    f = torch.randn(3, 4, requires_grad=True)
    self_anchoring_loss(z, f).backward()
    assert f.grad is None
    assert z.grad is not None and z.grad.abs().sum() > 0
    # the gradient moves z towards f: one small step lowers the loss
    with torch.no_grad():
        stepped = z - 0.1 * z.grad
    assert float(self_anchoring_loss(stepped, f)) < float(self_anchoring_loss(z, f))


def test_shape_mismatch_and_empty_batch():
    with pytest.raises(ValueError, match="full-width"):
        self_anchoring_loss(torch.randn(2, 4), torch.randn(2, 8))
    assert float(self_anchoring_loss(torch.zeros(0, 4), torch.zeros(0, 4))) == 0.0
