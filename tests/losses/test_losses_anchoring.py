import torch

from lira.losses import anchoring_error, anchoring_loss


def test_identical_is_zero_and_opposite_is_two():
    e = torch.randn(4, 3, 8)
    assert abs(float(anchoring_loss(e, e.clone()))) < 1e-6
    assert abs(float(anchoring_loss(e, -e)) - 2.0) < 1e-6
    # Scale-invariant: cosine, not distance.
    assert abs(float(anchoring_loss(e, 5 * e))) < 1e-6


def test_mean_over_batch_and_slots():
    e_lr = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    e_en = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])  # orthogonal (1) and identical (0)
    assert abs(float(anchoring_loss(e_lr, e_en)) - 0.5) < 1e-6
    torch.testing.assert_close(anchoring_error(e_lr, e_en), torch.tensor([0.5]))


def test_stop_grad_on_and_off():
    e_lr = torch.randn(2, 2, 4, requires_grad=True)
    e_en = torch.randn(2, 2, 4, requires_grad=True)
    anchoring_loss(e_lr, e_en, stop_grad_en=True).backward()
    assert e_en.grad is None
    assert e_lr.grad is not None and e_lr.grad.abs().sum() > 0

    e_lr.grad = None
    anchoring_loss(e_lr, e_en, stop_grad_en=False).backward()
    assert e_en.grad is not None and e_en.grad.abs().sum() > 0


def test_anchoring_error_is_per_example_and_detached():
    e_lr = torch.randn(5, 3, 4, requires_grad=True)
    e_en = torch.randn(5, 3, 4)
    err = anchoring_error(e_lr, e_en)
    assert err.shape == (5,) and not err.requires_grad
    torch.testing.assert_close(err.mean(), anchoring_loss(e_lr, e_en).detach())
