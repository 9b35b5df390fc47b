from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lira.arca import AnchorAdaptors, SharedAdaptor
from lira.lasr.head import LaSRHead


def test_residual_adaptor_starts_as_the_identity_and_needs_matching_width():
    a = SharedAdaptor(16, 16, residual=True)
    x = torch.randn(3, 4, 16)
    assert torch.equal(a(x), x)
    with pytest.raises(ValueError, match="d == in_dim"):
        SharedAdaptor(16, 8, residual=True)
    both = AnchorAdaptors(16, 16, 16, residual=True)
    e_lr, e_en = both(x, x + 1)
    assert torch.equal(e_lr, x) and torch.equal(e_en, x + 1)


def test_residual_head_starts_at_the_mean_of_its_inputs():
    torch.manual_seed(0)
    head = LaSRHead(8, n_langs=2, n_slots=4, n_layers=1, n_heads=2, dropout=0.0, d_in=16, residual=True).eval()
    e_lr, e_en = torch.randn(5, 4, 16), torch.randn(5, 4, 16)
    lang = torch.zeros(5, dtype=torch.long)
    z = head.lrl_only(e_lr, lang)
    assert z.shape == (5, 16)
    torch.testing.assert_close(z, F.normalize(F.normalize(e_lr.mean(1), dim=-1), dim=-1))
    both = head(e_lr, e_en, lang)
    expect = F.normalize(F.normalize(e_lr.mean(1), dim=-1) + F.normalize(e_en.mean(1), dim=-1), dim=-1)
    torch.testing.assert_close(both, expect)
