"""Translation ranking: checked against sentence-transformers' MultipleNegativesRankingLoss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lira.losses.translation_ranking import (
    TranslationRankingLoss,
    duplicate_free_batches,
    translation_ranking_loss,
)


def _unit(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def _st_loss(q: torch.Tensor, docs: list[torch.Tensor], scale: float, symmetric: bool) -> torch.Tensor:
    mnrl = pytest.importorskip("sentence_transformers.sentence_transformer.losses.multiple_negatives_ranking")
    kw = {"directions": ("query_to_doc", "doc_to_query"), "partition_mode": "per_direction"} if symmetric else {}
    loss = mnrl.MultipleNegativesRankingLoss(model=None, scale=scale, **kw)
    return loss.compute_loss_from_embeddings([q, *docs], labels=None)


@pytest.mark.parametrize("scale", [1.0, 20.0, 50.0])
def test_one_direction_equals_sentence_transformers_mnrl(scale: float) -> None:
    u_lr, u_en = _unit(8, 16, seed=1), _unit(8, 16, seed=2)
    ours = translation_ranking_loss(u_lr, u_en, scale=scale, margin=0.0, symmetric=False)
    assert torch.allclose(ours, _st_loss(u_lr, [u_en], scale, symmetric=False), atol=1e-10)


def test_extra_negatives_equal_sentence_transformers_hard_negatives() -> None:
    u_lr, u_en, neg = _unit(6, 16, seed=1), _unit(6, 16, seed=2), _unit(6, 16, seed=3)
    ours = translation_ranking_loss(u_lr, u_en, scale=20.0, symmetric=False, extra_en=neg)
    assert torch.allclose(ours, _st_loss(u_lr, [u_en, neg], 20.0, symmetric=False), atol=1e-10)
    # more negatives make ranking harder: the loss can only rise
    assert ours > translation_ranking_loss(u_lr, u_en, scale=20.0, symmetric=False)


def test_symmetric_equals_sentence_transformers_and_mean_of_directions() -> None:
    u_lr, u_en = _unit(8, 16, seed=4), _unit(8, 16, seed=5)
    sym = translation_ranking_loss(u_lr, u_en, scale=20.0, symmetric=True)
    fwd = translation_ranking_loss(u_lr, u_en, scale=20.0, symmetric=False)
    bwd = translation_ranking_loss(u_en, u_lr, scale=20.0, symmetric=False)
    assert torch.allclose(sym, 0.5 * (fwd + bwd), atol=1e-12)
    assert torch.allclose(sym, _st_loss(u_lr, [u_en], 20.0, symmetric=True), atol=1e-10)
    assert not torch.allclose(fwd, bwd)  # the two directions really differ here


def test_margin_matches_formula_and_raises_loss() -> None:
    u_lr, u_en = _unit(5, 8, seed=6), _unit(5, 8, seed=7)
    s, m = 10.0, 0.3
    sim = (u_lr @ u_en.T).tolist()
    expected = 0.0
    for i in range(5):
        pos = s * (sim[i][i] - m)
        denom = math.exp(pos) + sum(math.exp(s * sim[i][j]) for j in range(5) if j != i)
        expected += -(pos - math.log(denom))
    expected /= 5
    got = translation_ranking_loss(u_lr, u_en, scale=s, margin=m, symmetric=False)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    assert got > translation_ranking_loss(u_lr, u_en, scale=s, margin=0.0, symmetric=False)
    sym_m = translation_ranking_loss(u_lr, u_en, scale=s, margin=m, symmetric=True)
    assert sym_m > translation_ranking_loss(u_lr, u_en, scale=s, margin=0.0, symmetric=True)


def test_duplicates_are_not_negatives() -> None:
    u_lr, u_en = _unit(4, 8, seed=8), _unit(4, 8, seed=9)
    u_en = u_en.clone()
    u_en[2] = u_en[0]  # rows 0 and 2 share one English target
    group = torch.tensor([0, 1, 0, 3])
    got = translation_ranking_loss(u_lr, u_en, scale=20.0, symmetric=False, group=group)
    # by hand: row 0 must not see column 2 and row 2 must not see column 0
    logits = 20.0 * (u_lr @ u_en.T)
    logits[0, 2] = -math.inf
    logits[2, 0] = -math.inf
    assert torch.allclose(got, F.cross_entropy(logits, torch.arange(4)), atol=1e-12)
    unmasked = translation_ranking_loss(u_lr, u_en, scale=20.0, symmetric=False)
    assert not torch.allclose(got, unmasked)
    # all-distinct groups are the same as no groups
    same = translation_ranking_loss(u_lr, u_en, scale=20.0, group=torch.arange(4))
    assert torch.allclose(same, translation_ranking_loss(u_lr, u_en, scale=20.0), atol=1e-12)


def test_queued_copy_of_the_positive_is_masked() -> None:
    u_lr, u_en = _unit(3, 8, seed=10), _unit(3, 8, seed=11)
    extra = torch.cat([u_en[1:2], _unit(2, 8, seed=12)])  # queue holds row 1's own target
    group, extra_group = torch.tensor([10, 11, 12]), torch.tensor([11, 98, 99])
    got = translation_ranking_loss(u_lr, u_en, scale=20.0, symmetric=False, group=group, extra_en=extra,
                                   extra_group=extra_group)
    want = translation_ranking_loss(u_lr, u_en, scale=20.0, symmetric=False, extra_en=extra[1:])
    fwd = torch.cat([20.0 * u_lr @ u_en.T, 20.0 * u_lr @ extra.T], 1)
    fwd[1, 3] = -math.inf
    assert torch.allclose(got, F.cross_entropy(fwd, torch.arange(3)), atol=1e-12)
    assert not torch.allclose(got, want)  # rows 0 and 2 still see the queued copy as a negative


def test_gradient_reaches_u_lr_only_when_english_detached() -> None:
    lr = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
    en = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
    loss = TranslationRankingLoss(scale=20.0, margin=0.2)(F.normalize(lr, dim=-1), F.normalize(en, dim=-1).detach())
    loss.backward()
    assert lr.grad is not None and lr.grad.abs().sum() > 0
    assert en.grad is None
    lr.grad = None
    translation_ranking_loss(F.normalize(lr, dim=-1), F.normalize(en, dim=-1)).backward()
    assert en.grad is not None and en.grad.abs().sum() > 0


def test_bad_input_is_refused() -> None:
    a = _unit(4, 8)
    with pytest.raises(ValueError, match="both be"):
        translation_ranking_loss(a, _unit(3, 8))
    with pytest.raises(ValueError, match="scale"):
        translation_ranking_loss(a, a, scale=0.0)
    with pytest.raises(ValueError, match="margin"):
        translation_ranking_loss(a, a, margin=-0.1)
    with pytest.raises(ValueError, match="extra negatives"):
        translation_ranking_loss(a, a, extra_en=_unit(2, 4))
    with pytest.raises(ValueError, match="needs group"):
        translation_ranking_loss(a, a, extra_en=_unit(2, 8), extra_group=torch.tensor([0, 1]))


def test_duplicate_free_batches() -> None:
    keys = ["a", "b", "a", "c", "d", "a", "e", "f", "b", "g"]
    batches = duplicate_free_batches(keys, batch_size=3, seed=0, drop_last=False)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(keys)))  # every row once, nothing dropped
    for b in batches:
        assert len({keys[i] for i in b}) == len(b)  # no key twice in a batch
        assert len(b) <= 3
    kept = duplicate_free_batches(keys, batch_size=3, seed=0, drop_last=True)
    assert kept and all(len(b) == 3 for b in kept)
    assert duplicate_free_batches(keys, 3, seed=0) == kept  # deterministic
    assert duplicate_free_batches(keys, 3, seed=1, drop_last=False) != batches  # seeded
    with pytest.raises(ValueError):
        duplicate_free_batches(keys, 0, seed=0)
