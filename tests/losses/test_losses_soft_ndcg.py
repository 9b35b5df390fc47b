import math

import pytest
import torch

from lira.losses import SoftNDCGLoss, exact_ndcg, ideal_dcg, soft_ndcg

ranx = pytest.importorskip("ranx")


def _ranx_ndcg(scores, relevance, mask, k, metric):
    qrels, run = {}, {}
    for q in range(scores.shape[0]):
        qid = f"q{q:05d}"  # ranx orders queries by id string
        qrels[qid] = {
            f"d{i:03d}": int(relevance[q, i])  # 4-character ids: see tests/eval/test_metrics.py RUN
            for i in range(scores.shape[1])
            if mask[q, i] and relevance[q, i] > 0
        }
        run[qid] = {f"d{i:03d}": float(scores[q, i]) for i in range(scores.shape[1]) if mask[q, i]}
    out = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), [f"{metric}@{k}"], return_mean=False)
    return torch.as_tensor(out, dtype=torch.float64)


def test_soft_ndcg_equals_ranx_ndcg_burges_as_tau_to_zero():
    g = torch.Generator().manual_seed(0)
    q, n = 16, 25
    # Distinct scores (a permutation) - no score ties; relevance 0..3 with many ties.
    scores = torch.stack([torch.randperm(n, generator=g) for _ in range(q)]).double() / n
    relevance = torch.randint(0, 4, (q, n), generator=g)
    relevance[:, 0] = torch.randint(1, 4, (q,), generator=g)  # every list has a relevant item
    mask = torch.rand(q, n, generator=g) > 0.2
    mask[:, 0] = True
    for k in (1, 3, 5, 10, 30):
        ours = soft_ndcg(scores, relevance, k=k, tau=1e-4, mask=mask)
        ref = _ranx_ndcg(scores, relevance, mask, k, "ndcg_burges")
        torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


def test_exact_ndcg_equals_ranx_and_the_soft_one_at_zero_temperature():
    g = torch.Generator().manual_seed(1)
    q, n = 16, 40
    scores = torch.stack([torch.randperm(n, generator=g) for _ in range(q)]).float() / n
    scores[:, 5] = scores[:, 6]  # a tie, broken by index
    relevance = torch.randint(0, 4, (q, n), generator=g)
    relevance[1] = 0  # nothing relevant: 0, as soft_ndcg gives
    mask = torch.rand(q, n, generator=g) > 0.3
    # integer ranks (ties by index, masked entries last) through the soft form at a vanishing temperature
    order = torch.argsort(-scores.masked_fill(~mask, float("-inf")), dim=1, stable=True)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(n).expand_as(order).contiguous())
    # ranx on the lists it defines (something relevant) and orders as we do (no tie among the valid)
    sel = (relevance.masked_fill(~mask, 0).sum(1) > 0) & ~(mask[:, 5] & mask[:, 6])
    assert 3 < int(sel.sum()) < q
    for k in (1, 3, 10, 60):
        ours = exact_ndcg(scores, relevance, k, mask=mask)
        torch.testing.assert_close(ours, soft_ndcg(-ranks.float(), relevance, k, tau=0.01, mask=mask), atol=1e-6, rtol=0)
        ref = _ranx_ndcg(scores[sel].double(), relevance[sel], mask[sel], k, "ndcg_burges")
        torch.testing.assert_close(ours[sel].double(), ref, atol=1e-6, rtol=0)
        assert float(ours[1]) == 0.0


def test_gain_is_burges_not_jarvelin():
    # One list where the two gains disagree: confirms which ranx metric we match.
    scores = torch.tensor([[0.9, 0.8, 0.1]], dtype=torch.float64)
    relevance = torch.tensor([[1, 3, 0]])
    mask = torch.ones_like(scores, dtype=torch.bool)
    ours = soft_ndcg(scores, relevance, k=3, tau=1e-4)
    burges = _ranx_ndcg(scores, relevance, mask, 3, "ndcg_burges")
    jarvelin = _ranx_ndcg(scores, relevance, mask, 3, "ndcg")
    assert abs(float(burges - jarvelin)) > 1e-2
    torch.testing.assert_close(ours, burges, atol=1e-8, rtol=0)


def test_ideal_dcg_hand_computed():
    rel = torch.tensor([[0, 2, 1, 3], [0, 0, 0, 0]])
    idcg = ideal_dcg(rel, k=2)
    assert math.isclose(float(idcg[0]), 7 / math.log2(2) + 3 / math.log2(3), rel_tol=1e-6)
    assert float(idcg[1]) == 0.0
    # Masking the best item changes the ideal.
    idcg_m = ideal_dcg(rel, k=2, mask=torch.tensor([[True, True, True, False]] * 2))
    assert math.isclose(float(idcg_m[0]), 3 / math.log2(2) + 1 / math.log2(3), rel_tol=1e-6)


def test_lists_without_relevant_items_give_zero_and_are_skipped_by_the_loss():
    scores = torch.tensor([[0.5, 0.2, 0.1], [0.3, 0.2, 0.9]], requires_grad=True)
    relevance = torch.tensor([[0, 0, 0], [1, 0, 0]])
    nd = soft_ndcg(scores, relevance, k=2, tau=0.05)
    assert nd[0].item() == 0.0 and torch.isfinite(nd).all()
    loss = SoftNDCGLoss(k=2, tau=0.05)(scores, relevance)
    torch.testing.assert_close(loss, 1.0 - nd[1])
    loss.backward()
    assert torch.isfinite(scores.grad).all()
    assert torch.all(scores.grad[0] == 0)


def test_loss_with_no_valid_list_is_zero_and_differentiable():
    scores = torch.rand(2, 4, requires_grad=True)
    loss = SoftNDCGLoss()(scores, torch.zeros(2, 4))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(scores.grad).all()


def test_gradient_pushes_relevant_item_up():
    scores = torch.tensor([[0.5, 0.4, 0.3, 0.2]], requires_grad=True)
    relevance = torch.tensor([[0, 0, 0, 2]])
    SoftNDCGLoss(k=2, tau=0.1)(scores, relevance).backward()
    assert scores.grad[0, 3] < 0  # descent raises the relevant item's score
    assert scores.grad[0, 0] > 0


def test_masked_entries_do_not_change_the_value():
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(3, 6, generator=g)
    relevance = torch.randint(0, 3, (3, 6), generator=g)
    relevance[:, 0] = 2
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[:, 4:] = False
    padded = scores.clone()
    padded[:, 4:] = 1e3  # would dominate the ranks if it leaked in
    a = soft_ndcg(padded, relevance, k=3, tau=0.1, mask=mask)
    b = soft_ndcg(scores[:, :4], relevance[:, :4], k=3, tau=0.1)
    torch.testing.assert_close(a, b)
