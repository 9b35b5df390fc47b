"""#17 item 7: an unscored candidate (NaN reward) is never read as a number, and never crashes training."""

import torch
from test_arca_trainer import CFG, SEED, synthetic

from lira.train.arca import ArcaConfig, train_arca


def test_partly_unscored_rewards_train_without_error_and_ignore_the_unscored():
    data = synthetic()
    data.reward[::3, 1] = float("nan")  # e.g. the LLM critic down on a third of one agent's rows
    result = train_arca(data, ArcaConfig(**CFG), n_langs=2, seed=SEED)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history if h["epoch"] >= 0)


def _agent0_share(unscored_value):
    data = synthetic()
    n, k = data.reward.shape
    scored = torch.arange(n) % 2 == 0
    reward = torch.full((n, k), 0.6)
    reward[:, 0] = torch.where(scored, torch.tensor(0.9), torch.tensor(unscored_value))
    data.reward = reward
    result = train_arca(data, ArcaConfig(**CFG), n_langs=2, seed=SEED)
    return float(result.actor.log_probs(data.feats, data.mask).exp()[:, 0].mean()), k


def test_nan_rewards_are_not_zero_rewards():
    # Agent 0 is the best wherever it was scored (0.9 vs 0.6) and unscored on every other row.
    # Ignored, the NaN rows teach nothing and the Actor learns to prefer agent 0; read as 0 (mean
    # 0.45 < 0.6) they would teach it to avoid agent 0 - the zero-reward run shows the difference.
    share_nan, k = _agent0_share(float("nan"))
    share_zero, _ = _agent0_share(0.0)
    assert share_nan > 1.0 / k + 0.1 and share_zero < share_nan - 0.2
