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
