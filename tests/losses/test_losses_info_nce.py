import math

import torch
import torch.nn.functional as F

from lira.losses import info_nce


def test_info_nce_matches_the_formula_by_hand():
    g = torch.Generator().manual_seed(0)
    u_lr = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    u_en = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    t = 0.1
    s = (u_lr @ u_en.T / t).tolist()
    rows = [-(s[b][b] - math.log(sum(math.exp(x) for x in s[b]))) for b in range(5)]
    cols = [-(s[b][b] - math.log(sum(math.exp(s[j][b]) for j in range(5)))) for b in range(5)]
    expected = 0.5 * (sum(rows) / 5 + sum(cols) / 5)
    assert math.isclose(float(info_nce(u_lr, u_en, t)), expected, rel_tol=1e-5)


def test_info_nce_rewards_alignment_and_is_symmetric():
    g = torch.Generator().manual_seed(1)
    u = F.normalize(torch.randn(6, 16, generator=g), dim=-1)
    other = F.normalize(torch.randn(6, 16, generator=g), dim=-1)
    assert float(info_nce(u, u, 0.05)) < float(info_nce(u, other, 0.05))
    torch.testing.assert_close(info_nce(u, other, 0.05), info_nce(other, u, 0.05))
