import torch

from lira.arca import Actor


def _batch():
    g = torch.Generator().manual_seed(0)
    feats = torch.rand(4, 5, 4, generator=g)
    mask = torch.tensor(
        [[True] * 5, [True, False, True, False, False], [False, False, False, True, False], [False] * 5]
    )
    return feats, mask


def test_masked_candidates_have_zero_probability_and_no_nan():
    torch.manual_seed(0)
    actor = Actor(4, hidden=16)
    feats, mask = _batch()
    logp = actor.log_probs(feats, mask)
    assert not torch.isnan(logp).any()
    probs = logp.exp()
    assert (probs[:3][~mask[:3]] == 0).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))
    assert probs[2, 3] == 1.0  # a single valid candidate is certain
    torch.testing.assert_close(probs[3], torch.full((5,), 0.2))  # all-invalid row: uniform, finite
    assert torch.isfinite(actor.entropy(feats, mask)).all()


def test_reinforce_gradient_is_finite():
    torch.manual_seed(0)
    actor = Actor(4)
    feats, mask = _batch()
    a = torch.multinomial(actor.log_probs(feats, mask).exp().detach(), 1).squeeze(-1)  # as train_arca samples
    logp = actor.log_probs(feats, mask).gather(1, a[:, None]).squeeze(1)
    keep = mask.any(-1)
    (-(logp[keep] * torch.tensor([1.0, 0.5, 2.0])).mean()).backward()
    assert all(torch.isfinite(p.grad).all() for p in actor.parameters())


def test_config_round_trip_rebuilds_the_same_shape():
    actor = Actor(7, hidden=12)
    again = Actor.from_config(actor.config())
    assert again.config() == {"features": 7, "hidden": 12}
    again.load_state_dict(actor.state_dict())  # same parameter shapes


def test_greedy_is_argmax_over_valid():
    actor = Actor(1)
    with torch.no_grad():  # make the MLP monotone in its single feature: score = feature
        for lin in (actor.mlp[0], actor.mlp[2]):
            lin.weight.copy_(torch.eye(lin.out_features, lin.in_features))
            lin.bias.fill_(5.0)  # stay in GELU's near-linear region
        actor.mlp[4].weight.zero_()
        actor.mlp[4].weight[0, 0] = 1.0
        actor.mlp[4].bias.zero_()
    feats = torch.tensor([[0.1, 0.9, 0.5], [0.1, 0.9, 0.5]]).unsqueeze(-1)
    mask = torch.tensor([[True, True, True], [True, False, True]])
    assert actor.greedy(feats, mask).tolist() == [1, 2]
