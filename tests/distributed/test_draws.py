"""Rank-invariant dropout (lira.distributed.draws), in one process: each "rank" runs its chunk of
the batch from the same RNG state, as every rank does under torchrun."""

from __future__ import annotations

import pytest
import torch

from lira.arca import AnchorAdaptors
from lira.distributed import chunk_bounds
from lira.distributed.draws import chunk_draws, global_batch_draws
from lira.lasr.head import LaSRHead
from lira.lasr.net import LiraNet


def _net() -> LiraNet:
    torch.manual_seed(3)
    net = LiraNet(AnchorAdaptors(8, 8, 8, dropout=0.3), LaSRHead(8, n_langs=2, n_slots=2, n_layers=2, n_heads=2,
                                                                 dropout=0.3, path_dropout=0.5))
    return net.train()


def _inputs(n: int):
    g = torch.Generator().manual_seed(4)
    return torch.randn(n, 2, 8, generator=g), torch.randn(n, 2, 8, generator=g), torch.arange(n) % 2


@pytest.mark.parametrize(("n", "world"), [(7, 2), (9, 3), (4, 4)])
def test_chunks_see_the_single_process_masks(n, world):
    net, (lr, en, lang) = _net(), _inputs(n)
    torch.manual_seed(11)
    full = net(lr, en, lang)
    after_full = torch.get_rng_state()
    parts = []
    for r in range(world):
        torch.manual_seed(11)  # every rank starts from the same state
        s, e = chunk_bounds(n, world, r)
        with chunk_draws(n, s, e) as mode:
            parts.append(net(lr[s:e], en[s:e], lang[s:e]))
        assert mode.matched > 0 and mode.unmatched == []
        # ...and leaves it where one process leaves it: the next draws stay in step too.
        assert torch.equal(torch.get_rng_state(), after_full)
    torch.testing.assert_close(torch.cat(parts), full, atol=1e-6, rtol=0)


def test_without_the_rule_the_chunks_draw_their_own_masks():
    """The check above can fail: plain per-rank draws give other outputs."""
    n, net, (lr, en, lang) = 8, _net(), _inputs(8)
    torch.manual_seed(11)
    full = net(lr, en, lang)
    parts = []
    for r in range(2):
        torch.manual_seed(11)
        s, e = chunk_bounds(n, 2, r)
        parts.append(net(lr[s:e], en[s:e], lang[s:e]))
    assert (torch.cat(parts) - full).abs().max() > 1e-2


def test_gradients_through_the_chunks_sum_to_the_single_process_gradient():
    n, net, (lr, en, lang) = 6, _net(), _inputs(6)
    torch.manual_seed(5)
    net.zero_grad()
    net(lr, en, lang).pow(3).sum().backward()
    single = {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}
    total = {k: torch.zeros_like(g) for k, g in single.items()}
    for r in range(2):
        torch.manual_seed(5)
        s, e = chunk_bounds(n, 2, r)
        net.zero_grad()
        with chunk_draws(n, s, e):
            out = net(lr[s:e], en[s:e], lang[s:e])
        out.pow(3).sum().backward()  # the backward runs outside the context: it draws nothing
        for k, p in net.named_parameters():
            if p.grad is not None:
                total[k] += p.grad
    for k, g in single.items():
        torch.testing.assert_close(total[k], g, atol=1e-5, rtol=1e-5, msg=lambda m, k=k: f"{k}: {m}")


def test_a_rank_without_rows_still_consumes_the_draws():
    net, (lr, en, lang) = _net(), _inputs(3)
    torch.manual_seed(2)
    net(lr, en, lang)
    after = torch.get_rng_state()
    torch.manual_seed(2)
    with chunk_draws(3, 0, 1):  # a stand-in row whose output the rank throws away
        net(lr[:1], en[:1], lang[:1])
    assert torch.equal(torch.get_rng_state(), after)


def test_eval_mode_and_unrelated_shapes(caplog, monkeypatch):
    import lira.distributed.draws as draws

    monkeypatch.setattr(draws, "_REPORTED", set())  # reported once per process: start from none
    net, (lr, en, lang) = _net(), _inputs(5)
    net.eval()
    with chunk_draws(10, 0, 5) as mode:
        net(lr, en, lang)
    assert mode.matched == 0 and mode.unmatched == []
    with chunk_draws(10, 0, 5) as mode:
        torch.rand(3)  # not the chunk's rows: drawn as asked, and reported
    assert len(mode.unmatched) == 1 and mode.unmatched[0].startswith("aten.rand.default")
    # ... and logged (once per op and shape): the ranks' values there are their own.
    warned = [r for r in caplog.records if r.levelname == "WARNING" and "aten.rand.default" in r.getMessage()]
    assert len(warned) == 1 and "[[3]]" in warned[0].getMessage()
    with chunk_draws(10, 0, 5):
        torch.rand(3)
    assert len([r for r in caplog.records if "aten.rand.default" in r.getMessage()]) == 1
    with pytest.raises(ValueError, match="not inside"):
        chunk_draws(4, 3, 6).__enter__()


def test_one_process_pushes_no_mode():
    from torch.utils._python_dispatch import _get_current_dispatch_mode

    with global_batch_draws(8) as mode:
        assert mode is None and _get_current_dispatch_mode() is None
