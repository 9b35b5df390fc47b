import math

import torch

from lira.lasr.head import choice_logits
from lira.losses import choice_cross_entropy


def test_choice_cross_entropy_is_nll_of_the_gold_choice_over_valid_ones():
    g = torch.Generator().manual_seed(0)
    zq, zc = torch.randn(3, 8, generator=g), torch.randn(3, 4, 8, generator=g)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False], [True, True, True, False]])
    answer = torch.tensor([2, 1, 0])
    logits = choice_logits(zq, zc, mask, temperature=0.2)
    expected = 0.0
    for b in range(3):
        cos = [float(torch.nn.functional.cosine_similarity(zq[b], zc[b, c], dim=0)) / 0.2 for c in range(4) if mask[b, c]]
        expected += -(cos[int(answer[b])] - math.log(sum(math.exp(x) for x in cos)))
    assert math.isclose(float(choice_cross_entropy(logits, answer)), expected / 3, rel_tol=1e-5)
