import math

import pytest
import torch

from lira.losses import RunningMeanBaseline, critic_reward, reinforce_loss

NAN = float("nan")


def test_critic_reward_hand_computed_and_missing_axes():
    a, b, c, d = 0.5, 0.2, 0.3, 2.0
    s = torch.tensor([8.0, 8.0, NAN, 8.0, NAN, NAN])
    e = torch.tensor([6.0, NAN, NAN, 6.0, NAN, NAN])
    p = torch.tensor([7.0, 7.0, NAN, 7.0, NAN, 2.0])
    sim = torch.tensor([0.9, 0.9, 0.9, NAN, NAN, NAN])
    r = critic_reward(s, e, p, sim, a, b, c, d)
    expected = [
        0.1 * (0.5 * 8 + 0.2 * 6 + 0.3 * 7) + 2.0 * 0.9,  # everything: 0.73 + 1.8
        0.1 * 1.0 * (0.5 * 8 + 0.3 * 7) / 0.8 + 1.8,  # e missing: s, p re-weighted to the full weight
        1.8,  # no LLM axis: LLM term dropped
        0.73,  # sim missing: its term dropped
        NAN,  # nothing scored
        0.1 * 1.0 * 2.0 + 0.0,  # only p present (=2) -> counts as the full LLM mean; sim dropped
    ]
    for got, want in zip(r.tolist(), expected):
        if math.isnan(want):
            assert math.isnan(got)
        else:
            assert math.isclose(got, want, rel_tol=1e-6), (got, want)


def test_critic_reward_zero_weight_axis_and_negative_weight():
    # The only present axis has weight 0: no information, LLM term is 0 (not NaN).
    r = critic_reward(
        torch.tensor([9.0]), torch.tensor([NAN]), torch.tensor([NAN]), torch.tensor([0.5]), 0.0, 1.0, 1.0, 1.0
    )
    assert math.isclose(float(r), 0.5, rel_tol=1e-6)
    with pytest.raises(ValueError):
        critic_reward(torch.ones(1), torch.ones(1), torch.ones(1), torch.ones(1), -1.0, 1.0, 1.0, 1.0)


def test_reinforce_increases_log_prob_of_high_reward_action():
    logits = torch.zeros(1, 3, requires_grad=True)
    rewards = torch.tensor([[0.1, 0.2, 1.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    for baseline in ("none", "leave_one_out"):
        lp = torch.log_softmax(logits, -1)
        loss = reinforce_loss(lp, torch.tensor([2]), rewards, mask, baseline=baseline)
        (g,) = torch.autograd.grad(loss, logits)
        after = torch.log_softmax(logits - 0.5 * g, -1)
        assert after[0, 2] > lp[0, 2], baseline
    # With LOO, choosing the worst action lowers its probability.
    lp = torch.log_softmax(logits, -1)
    (g,) = torch.autograd.grad(reinforce_loss(lp, torch.tensor([0]), rewards, mask, "leave_one_out"), logits)
    assert torch.log_softmax(logits - 0.5 * g, -1)[0, 0] < lp[0, 0]


def test_leave_one_out_baseline_formula():
    lp = torch.log(torch.tensor([[0.2, 0.3, 0.5, 1e-9], [0.4, 0.6, 1e-9, 1e-9]]))
    rewards = torch.tensor([[1.0, 2.0, 3.0, NAN], [4.0, NAN, NAN, NAN]])
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    actions = torch.tensor([2, 0])
    # row 0: b = (1 + 2) / 2 = 1.5 -> adv 1.5 ; row 1: only candidate -> b = 0 -> adv 4
    want = -(math.log(0.5) * 1.5 + math.log(0.4) * 4.0) / 2
    assert math.isclose(
        float(reinforce_loss(lp, actions, rewards, mask, "leave_one_out")), want, rel_tol=1e-5
    )
    # and running_mean / none
    rm = torch.tensor(2.5)
    want_rm = -(math.log(0.5) * 0.5 + math.log(0.4) * 1.5) / 2
    assert math.isclose(
        float(reinforce_loss(lp, actions, rewards, mask, "running_mean", rm)), want_rm, rel_tol=1e-5
    )
    want_none = -(math.log(0.5) * 3.0 + math.log(0.4) * 4.0) / 2
    assert math.isclose(float(reinforce_loss(lp, actions, rewards, mask)), want_none, rel_tol=1e-5)


def test_invalid_action_and_bad_baseline_raise():
    lp = torch.log_softmax(torch.zeros(1, 2), -1)
    with pytest.raises(ValueError):
        reinforce_loss(lp, torch.tensor([1]), torch.tensor([[1.0, NAN]]), torch.tensor([[True, False]]))
    with pytest.raises(ValueError):
        reinforce_loss(lp, torch.tensor([0]), torch.ones(1, 2), torch.ones(1, 2, dtype=torch.bool), "median")


def test_rewards_are_detached():
    lp = torch.log_softmax(torch.zeros(2, 3, requires_grad=True), -1)
    rewards = torch.rand(2, 3, requires_grad=True)
    reinforce_loss(
        lp, torch.tensor([0, 1]), rewards, torch.ones(2, 3, dtype=torch.bool), "leave_one_out"
    ).backward()
    assert rewards.grad is None


def test_running_mean_baseline_module():
    rb = RunningMeanBaseline(momentum=0.9)
    assert rb.value is None
    rb.update(torch.tensor([2.0, 4.0]))
    assert float(rb.value) == 3.0  # first update sets it
    rb.update(torch.tensor([13.0]))
    assert math.isclose(float(rb.value), 0.9 * 3.0 + 0.1 * 13.0, rel_tol=1e-6)
    assert "running" in rb.state_dict()


def test_running_mean_baseline_is_the_previous_batches_mean():
    # As train_arca uses it: the loss reads the running mean of earlier batches, then it is updated.
    running = RunningMeanBaseline(momentum=0.5)
    lp = torch.log(torch.tensor([[0.5, 0.5]]))
    mask = torch.ones(1, 2, dtype=torch.bool)
    for reward, expected_b, after in ((4.0, 0.0, 4.0), (6.0, 4.0, 5.0)):
        r = torch.tensor([[reward, 0.0]])
        loss = reinforce_loss(lp, torch.tensor([0]), r, mask, "running_mean", running.value)
        assert math.isclose(float(loss), -math.log(0.5) * (reward - expected_b), rel_tol=1e-6)  # no history: b = 0
        running.update(r[:, 0])
        assert float(running.value) == after


def _per_sample_grads(theta, actions, rewards, baseline, running_mean=None):
    n = actions.shape[0]
    rep = theta.detach().repeat(n, 1).requires_grad_(True)
    mask = torch.ones_like(rewards, dtype=torch.bool)
    loss = reinforce_loss(torch.log_softmax(rep, -1), actions, rewards, mask, baseline, running_mean)
    loss.backward()
    return rep.grad * n  # the loss is a mean over examples


def test_baselines_lower_gradient_variance_on_a_bandit():
    g = torch.Generator().manual_seed(0)
    theta = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    mu = torch.tensor([5.0, 6.0, 7.0], dtype=torch.float64)  # all-positive rewards: the hard case
    pi = torch.softmax(theta, -1)
    k, n = 3, 4000

    def sample(m):
        actions = torch.multinomial(pi, m, replacement=True, generator=g)
        rewards = mu + 0.5 * torch.randn(m, k, generator=g, dtype=torch.float64)
        return actions, rewards

    rb = RunningMeanBaseline(0.9)
    for _ in range(50):  # warm up the running mean on chosen rewards
        a, r = sample(64)
        rb.update(r.gather(1, a[:, None]).squeeze(1))

    actions, rewards = sample(n)
    grads = {
        "none": _per_sample_grads(theta, actions, rewards, "none"),
        "running_mean": _per_sample_grads(theta, actions, rewards, "running_mean", rb.value),
        "leave_one_out": _per_sample_grads(theta, actions, rewards, "leave_one_out"),
    }
    var = {name: float(v.var(0).sum()) for name, v in grads.items()}
    assert var["running_mean"] < 0.1 * var["none"], var
    assert var["leave_one_out"] < 0.1 * var["none"], var

    # All estimate the same direction: the loss gradient is -pi * (mu - pi.mu); LOO scales it by k/(k-1).
    true = -(pi * (mu - pi @ mu))
    for name, scale in (("running_mean", 1.0), ("leave_one_out", k / (k - 1))):
        est = grads[name].mean(0) / scale
        torch.testing.assert_close(est, true, atol=0.03, rtol=0)
