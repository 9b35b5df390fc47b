import math

import torch

from lira.losses import listwise_softmax_ce


def test_listwise_matches_the_formula_by_hand_with_a_masked_entry():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.2, 0.4, 0.6, 0.0]])
    rel = torch.tensor([[2.0, 0.0, 1.0, 3.0], [0.0, 1.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    t = 0.5
    expected = 0.0
    for q in range(2):
        valid = [i for i in range(4) if mask[q, i]]
        gains = {i: 2.0 ** float(rel[q, i]) - 1 for i in valid}
        z = math.log(sum(math.exp(float(scores[q, i]) / t) for i in valid))
        expected += -sum(gains[i] / sum(gains.values()) * (float(scores[q, i]) / t - z) for i in valid)
    assert math.isclose(float(listwise_softmax_ce(scores, rel, mask, t)), expected / 2, rel_tol=1e-5)


def test_listwise_with_one_relevant_item_is_cross_entropy():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 6, generator=g)
    gold = torch.tensor([0, 3, 5, 2])
    rel = torch.zeros(4, 6)
    rel[torch.arange(4), gold] = 1.0
    ref = torch.nn.functional.cross_entropy(scores / 0.1, gold)
    torch.testing.assert_close(listwise_softmax_ce(scores, rel, torch.ones(4, 6, dtype=torch.bool), 0.1), ref)


def test_a_query_without_relevant_items_adds_zero():
    scores = torch.randn(2, 3)
    rel = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    mask = torch.ones(2, 3, dtype=torch.bool)
    both = listwise_softmax_ce(scores, rel, mask, 1.0)
    only = listwise_softmax_ce(scores[1:], rel[1:], mask[1:], 1.0)
    torch.testing.assert_close(both, only / 2)
