import torch

from lira.losses import mse_distillation


def test_mse_distillation_value_and_teacher_detached():
    s = torch.randn(3, 5, requires_grad=True)
    t = torch.randn(3, 5, requires_grad=True)
    loss = mse_distillation(s, t)
    torch.testing.assert_close(loss, ((s - t) ** 2).mean())
    loss.backward()
    assert t.grad is None and s.grad.abs().sum() > 0
    assert float(mse_distillation(t.detach(), t)) == 0.0
