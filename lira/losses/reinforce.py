"""Arca's Actor objective: the critic reward and REINFORCE with an optional baseline."""

from __future__ import annotations

import torch
from torch import Tensor, nn

BASELINES = ("none", "running_mean", "leave_one_out")


def critic_reward(
    s: Tensor,
    e: Tensor,
    p: Tensor,
    sim: Tensor,
    alpha: float,
    beta: float,
    gamma: float,
    delta: float,
) -> Tensor:
    r"""Reward of each translation candidate from the critic scores.

    With every score present this is the paper's reward

    .. math::

        R = 0.1\,(\alpha s + \beta e + \gamma p) + \delta\,\mathrm{sim}

    where ``s, e, p`` are the LLM critic's semantic-fidelity, emotional-consistency and
    pragmatic-tone scores (1..10) and ``sim`` is the embedding critic's cosine.

    Missing scores are ``NaN`` and are handled explicitly, never read as 0 (a 0 would be a
    terrible score, not an unknown one):

    * LLM term. With ``P`` the set of present axes among ``(s, alpha), (e, beta), (p, gamma)``:
      ``llm = 0.1 * (alpha + beta + gamma) * sum_{P} w*x / sum_{P} w``, i.e. the present axes are
      re-weighted to the full LLM weight (identical to the formula when all three are present).
      If no axis is present the LLM term is dropped. If axes are present but all their weights
      are 0 they carry no weight and the LLM term is 0.
    * Embedding term. ``delta * sim``, dropped if ``sim`` is missing.
    * If both terms are dropped the reward is ``NaN``: the caller must mask that candidate.

    Caveat: a candidate whose LLM term was dropped is on a different scale from its siblings
    (it lacks ~``0.1*(alpha+beta+gamma)*mean score``); compare rewards only among candidates
    with the same present terms if that matters.

    Args:
        s, e, p, sim: tensors of the same (broadcastable) shape, ``NaN`` = missing.
        alpha, beta, gamma, delta: non-negative weights (params; the paper never published them).

    Returns:
        Reward tensor of the broadcast shape (``NaN`` where nothing was scored).
    """
    for name, w in (("alpha", alpha), ("beta", beta), ("gamma", gamma), ("delta", delta)):
        if w < 0:
            raise ValueError(f"{name} must be >= 0, got {w}")
    s, e, p, sim = torch.broadcast_tensors(*(torch.as_tensor(x) for x in (s, e, p, sim)))
    dtype = torch.promote_types(s.dtype, torch.float32)
    axes = torch.stack([s, e, p], dim=-1).to(dtype)
    w = torch.tensor([alpha, beta, gamma], dtype=dtype, device=axes.device)
    present = ~torch.isnan(axes)
    x = torch.where(present, axes, torch.zeros_like(axes))
    num = (w * x).sum(dim=-1)
    den = (w * present).sum(dim=-1)
    llm_present = present.any(dim=-1)
    total_w = alpha + beta + gamma
    safe_den = torch.where(den > 0, den, torch.ones_like(den))
    llm = torch.where(den > 0, 0.1 * total_w * num / safe_den, torch.zeros_like(num))

    sim = sim.to(dtype)
    sim_present = ~torch.isnan(sim)
    emb = torch.where(sim_present, delta * sim, torch.zeros_like(sim))

    reward = llm + emb
    return torch.where(llm_present | sim_present, reward, torch.full_like(reward, float("nan")))


def reinforce_loss(
    log_probs: Tensor,
    actions: Tensor,
    rewards: Tensor,
    mask: Tensor,
    baseline: str = "none",
    running_mean: Tensor | None = None,
) -> Tensor:
    r"""REINFORCE loss for a one-step choice among K candidates.

    .. math::

        L = -\frac{1}{B} \sum_{b=1}^{B} \log \pi(a_b \mid c_{b,1..K})\,\big(R_{b,a_b} - b_b\big)

    Baselines ``b_b`` (rewards and baseline are detached; only ``log_probs`` gets a gradient):

    * ``"none"``: ``b_b = 0`` (the paper's choice).
    * ``"running_mean"``: ``b_b = running_mean`` supplied by the caller (e.g.
      :class:`RunningMeanBaseline`); ``None`` (no history yet) means 0.
    * ``"leave_one_out"``: ``b_b`` = mean reward of the *other* valid candidates of example ``b``
      (0 if it has none). Because Arca scores every candidate, this equals
      ``n/(n-1) * (R_a - mean_k R_k)`` with ``n`` valid candidates: the mean-of-all baseline,
      which does not depend on the action, scaled by ``n/(n-1)``. So the estimator stays
      unbiased up to that positive per-example factor.

    Args:
        log_probs: ``[B, K]`` log-probabilities of the policy (gradient flows through these).
        actions: ``[B]`` long, the sampled candidate per example (must be valid).
        rewards: ``[B, K]`` rewards; entries outside ``mask`` (e.g. ``NaN``) are ignored.
        mask: ``[B, K]`` bool, valid candidates.
        baseline: one of ``"none" | "running_mean" | "leave_one_out"``.
        running_mean: scalar tensor, used by ``"running_mean"``.

    Returns:
        Scalar loss.
    """
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    mask = mask.to(torch.bool)
    rewards = rewards.detach().to(log_probs.dtype)
    # A NaN reward on a "valid" candidate would silently poison every baseline of its example.
    valid = mask & torch.isfinite(rewards)
    r = torch.where(valid, rewards, torch.zeros_like(rewards))
    idx = actions.long().unsqueeze(-1)
    if not bool(valid.gather(-1, idx).all()):
        raise ValueError("an action points at a masked candidate or one with a non-finite reward")
    r_a = r.gather(-1, idx).squeeze(-1)
    logp_a = log_probs.gather(-1, idx).squeeze(-1)

    if baseline == "none":
        b = torch.zeros_like(r_a)
    elif baseline == "running_mean":
        if running_mean is None:
            b = torch.zeros_like(r_a)
        else:
            rm = torch.as_tensor(running_mean, dtype=r_a.dtype, device=r_a.device).detach()
            b = rm.expand_as(r_a)
    else:
        n_other = valid.sum(dim=-1).to(r_a.dtype) - 1.0
        other_sum = r.sum(dim=-1) - r_a
        b = torch.where(n_other > 0, other_sum / n_other.clamp_min(1.0), torch.zeros_like(r_a))

    return -(logp_a * (r_a - b)).mean()


class RunningMeanBaseline(nn.Module):
    r"""Exponential moving average of the chosen candidates' rewards.

    ``v <- mean(R)`` on the first update, then ``v <- m*v + (1-m)*mean(R)``. Stored as buffers so
    it is saved with the state dict. ``value`` is ``None`` before the first update.
    """

    def __init__(self, momentum: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.register_buffer("running", torch.zeros(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @property
    def value(self) -> Tensor | None:
        return self.running if bool(self.initialized) else None

    @torch.no_grad()
    def update(self, rewards_of_chosen: Tensor) -> Tensor:
        r = rewards_of_chosen.detach()
        r = r[torch.isfinite(r)]
        if r.numel() == 0:
            return self.running
        m = r.mean().to(self.running)
        if bool(self.initialized):
            self.running.mul_(self.momentum).add_((1.0 - self.momentum) * m)
        else:
            self.running.copy_(m)
            self.initialized.fill_(True)
        return self.running

    def extra_repr(self) -> str:
        return f"momentum={self.momentum}"
