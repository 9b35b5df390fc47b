import math

import torch
from scipy.stats import pearsonr, spearmanr

from lira.losses import correlation_loss, pearson, soft_spearman


def test_pearson_matches_scipy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, generator=g, dtype=torch.float64)
    y = 0.3 * x + torch.randn(50, generator=g, dtype=torch.float64)
    assert math.isclose(float(pearson(x, y)), pearsonr(x.numpy(), y.numpy())[0], abs_tol=1e-10)


def test_soft_spearman_matches_scipy_as_tau_to_zero_even_with_label_ties():
    g = torch.Generator().manual_seed(1)
    x = torch.randperm(40, generator=g).double() / 40  # distinct predictions
    y = torch.randint(0, 6, (40,), generator=g).double()  # STS-like gold scores, many ties
    ref = spearmanr(x.numpy(), y.numpy())[0]
    assert math.isclose(float(soft_spearman(x, y, tau=1e-4)), ref, abs_tol=1e-6)


def test_soft_spearman_is_rank_only():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert math.isclose(float(soft_spearman(x, x.exp() * 10, tau=1e-3)), 1.0, abs_tol=1e-5)
    assert float(pearson(x, x.exp() * 10)) < 0.99


def test_constant_inputs_are_finite():
    x = torch.full((8,), 0.7, requires_grad=True)
    y = torch.arange(8.0)
    assert float(pearson(x.detach(), y)) == 0.0
    loss = correlation_loss(x, y)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(x.grad).all()


def test_correlation_loss_formula_and_extremes():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(30, generator=g)
    y = torch.randn(30, generator=g)
    a, tau = 0.3, 0.2
    expected = a * (1 - pearson(x, y)) + (1 - a) * (1 - soft_spearman(x, y, tau))
    torch.testing.assert_close(correlation_loss(x, y, a=a, tau=tau), expected)
    assert float(correlation_loss(y, y, tau=1e-3)) < 1e-4
    assert abs(float(correlation_loss(-y, y, tau=1e-3)) - 2.0) < 1e-4


def test_descent_improves_correlation():
    g = torch.Generator().manual_seed(3)
    y = torch.randn(32, generator=g)
    pred = torch.randn(32, generator=g, requires_grad=True)
    opt = torch.optim.SGD([pred], lr=0.5)
    first = float(correlation_loss(pred.detach(), y))
    for _ in range(50):
        opt.zero_grad()
        correlation_loss(pred, y).backward()
        opt.step()
    assert float(correlation_loss(pred.detach(), y)) < first - 0.3


# ---------------------------------------------- batch ++ queue: the split form equals the O(N^2) one
def _batch_and_queue(seed: int, b: int = 16, q: int = 300, ties: bool = False):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(b, generator=g).tanh().requires_grad_(True)
    label = torch.rand(b, generator=g)
    q_pred, q_label = torch.randn(q, generator=g).tanh(), torch.rand(q, generator=g)
    if ties:  # STS-like gold scores: many exact ties, batch and queue sharing values
        label, q_label = (label * 5).round() / 5, (q_label * 5).round() / 5
    return pred, label, q_pred, q_label


def test_soft_rank_with_tail_equals_soft_rank_of_the_concatenation():
    from lira.losses.ranks import self_sigmoid_sums, soft_rank, soft_rank_with_tail

    for seed, tau in ((0, 0.1), (1, 0.01), (2, 1.0)):
        head, _, tail, _ = _batch_and_queue(seed)
        ref = soft_rank(torch.cat([head, tail]), tau)
        got = soft_rank_with_tail(head, tail, tau)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(soft_rank_with_tail(head, tail, tau, self_sigmoid_sums(tail.double(), tau)), ref,
                                   rtol=1e-5, atol=1e-4)
        # Gradients in float64: sum(r^2) cancels large terms, which float32 rounds differently per order.
        h64, t64 = head.detach().double().requires_grad_(True), tail.double()
        (g_ref,) = torch.autograd.grad(soft_rank(torch.cat([h64, t64]), tau).square().sum(), h64)
        (g_got,) = torch.autograd.grad(soft_rank_with_tail(h64, t64, tau).square().sum(), h64)
        torch.testing.assert_close(g_got, g_ref, rtol=1e-9, atol=1e-9)


def test_soft_rank_with_tail_refuses_a_tail_with_gradient():
    import pytest

    from lira.losses.ranks import soft_rank_with_tail

    with pytest.raises(ValueError, match="no gradient"):
        soft_rank_with_tail(torch.zeros(2), torch.zeros(3, requires_grad=True), 0.1)


def test_queued_correlation_loss_equals_the_concatenated_formula_value_and_gradient():
    for seed, ties in ((0, False), (1, True)):
        pred, label, q_pred, q_label = _batch_and_queue(seed, ties=ties)
        ref = correlation_loss(torch.cat([pred, q_pred]), torch.cat([label, q_label]), a=0.3, tau=0.1)
        (g_ref,) = torch.autograd.grad(ref, pred)
        got = correlation_loss(pred, label, a=0.3, tau=0.1, queue_pred=q_pred, queue_label=q_label)
        (g_got,) = torch.autograd.grad(got, pred)
        assert abs(got.item() - ref.item()) < 1e-6
        torch.testing.assert_close(g_got, g_ref, rtol=1e-4, atol=1e-7)


def test_queued_correlation_loss_with_the_queues_kept_sums_equals_the_formula_over_many_steps():
    from lira.lasr.queues import CorrQueue

    g = torch.Generator().manual_seed(3)
    q = CorrQueue(200)
    q.rank_sums(0.1)  # start keeping the sums while empty: every later value comes from updates
    for step in range(40):  # fills, wraps around 4 times; one batch larger than the capacity
        b = 250 if step == 17 else 24
        pred = torch.randn(b, generator=g).tanh().requires_grad_(True)
        label = (torch.rand(b, generator=g) * 5).round() / 5
        q_pred, q_label = q.contents()
        ref = correlation_loss(torch.cat([pred, q_pred]), torch.cat([label, q_label]), tau=0.1)
        got = correlation_loss(pred, label, tau=0.1, queue_pred=q_pred, queue_label=q_label,
                               queue_rank_sums=q.rank_sums(0.1))
        assert abs(got.item() - ref.item()) < 1e-5, step
        q.enqueue(pred.detach(), label)
