"""Every loss is differentiable: double-precision gradcheck on small generic inputs."""

import torch
from torch.autograd import gradcheck

from lira.losses import (
    DocQueueObjective,
    anchoring_loss,
    correlation_loss,
    margin_hinge,
    mse_distillation,
    pearson,
    reinforce_loss,
    soft_ndcg,
    soft_rank,
    soft_spearman,
    symmetric_kl,
    variance_term,
)

G = torch.Generator().manual_seed(0)


def _x(*shape):
    return torch.randn(*shape, generator=G, dtype=torch.float64, requires_grad=True)


def test_gradcheck_ranks_ndcg_correlation():
    mask = torch.tensor([[True, True, False, True, True]] * 3)
    rel = torch.randint(0, 3, (3, 5), generator=G)
    rel[:, 0] = 2
    assert gradcheck(lambda s: soft_rank(s, 0.5, mask), (_x(3, 5),))
    assert gradcheck(lambda s: soft_ndcg(s, rel, 3, 0.5, mask), (_x(3, 5),))
    y = torch.randn(7, generator=G, dtype=torch.float64)
    assert gradcheck(lambda x: pearson(x, y), (_x(7),))
    assert gradcheck(lambda x: soft_spearman(x, y, 0.5), (_x(7),))
    assert gradcheck(lambda x: correlation_loss(x, y, 0.4, 0.5), (_x(7),))


def test_gradcheck_other_losses():
    assert gradcheck(lambda a, b: anchoring_loss(a, b, stop_grad_en=False), (_x(2, 3, 4), _x(2, 3, 4)))
    mask = torch.tensor([[True, False, True], [True, True, True]])
    assert gradcheck(lambda a, b: symmetric_kl(a, b, mask), (_x(2, 3), _x(2, 3)))
    assert gradcheck(lambda z: variance_term(z, target_std=5.0), (_x(6, 3),))
    neg_mask = torch.tensor([[True, True, False], [True, True, True]])
    assert gradcheck(lambda p, n: margin_hinge(p, n, neg_mask, 10.0), (_x(2), _x(2, 3)))
    assert gradcheck(lambda s: mse_distillation(s, torch.zeros(2, 3, dtype=torch.float64)), (_x(2, 3),))
    rew = torch.rand(2, 3, generator=G, dtype=torch.float64)
    ok = torch.ones(2, 3, dtype=torch.bool)
    assert gradcheck(
        lambda lg: reinforce_loss(torch.log_softmax(lg, -1), torch.tensor([0, 2]), rew, ok, "leave_one_out"),
        (_x(2, 3),),
    )


def test_docqueue_backward_is_finite_with_padding():
    scores = torch.randn(4, 6, generator=G)
    scores[:, 4:] = float("-inf")  # padded slots
    scores.requires_grad_(True)
    mask = torch.isfinite(scores.detach())
    rel = torch.zeros(4, 6)
    rel[:3, 0] = 1.0  # the last query has no positive
    z = torch.randn(8, 5, generator=G, requires_grad=True)
    total, _ = DocQueueObjective(k=3, tau=0.1, margin=0.3, lambda_h=1.0, lambda_r=1.0)(scores, rel, mask, z)
    total.backward()
    assert torch.isfinite(total)
    assert torch.isfinite(scores.grad).all() and torch.isfinite(z.grad).all()
