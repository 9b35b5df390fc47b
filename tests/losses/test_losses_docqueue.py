import torch

from lira.losses import DocQueueObjective, SoftNDCGLoss, margin_hinge, variance_term


def test_margin_hinge_hand_computed():
    pos = torch.tensor([0.9, 0.5, 0.7])
    neg = torch.tensor([[0.2, 0.8, 0.95], [0.1, 0.3, 0.0], [0.4, 0.4, 0.4]])
    neg_mask = torch.tensor([[True, True, False], [True, True, True], [False, False, False]])
    # q0: hardest valid = 0.8 -> relu(0.2 - 0.9 + 0.8) = 0.1 (the masked 0.95 is ignored)
    # q1: hardest = 0.3 -> relu(0.2 - 0.5 + 0.3) = 0.0
    # q2: no valid negative -> excluded from the mean
    out = margin_hinge(pos, neg, neg_mask, margin=0.2)
    torch.testing.assert_close(out, torch.tensor(0.05))


def test_margin_hinge_no_negatives_is_zero():
    pos = torch.tensor([0.1], requires_grad=True)
    out = margin_hinge(pos, torch.zeros(1, 2), torch.zeros(1, 2, dtype=torch.bool), 1.0)
    assert out.item() == 0.0
    out.backward()


def test_variance_term_spread_vs_collapsed():
    g = torch.Generator().manual_seed(0)
    spread = 3.0 * torch.randn(256, 8, generator=g)
    assert float(variance_term(spread)) == 0.0
    collapsed = torch.ones(256, 8) + 1e-3 * torch.randn(256, 8, generator=g)
    v = variance_term(collapsed)
    assert 0.9 < float(v) <= 1.0


def test_docqueue_objective_total_and_parts():
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.0], [0.2, 0.6, 0.5, 0.0]], requires_grad=True)
    relevance = torch.tensor([[1, 0, 0, 0], [1, 0, 0, 0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    z = torch.ones(4, 3, requires_grad=True)  # collapsed
    obj = DocQueueObjective(k=2, tau=0.1, margin=0.2, lambda_h=2.0, lambda_r=0.5)
    total, parts = obj(scores, relevance, mask, z)
    # hinge: q0 relu(0.2-0.9+0.8)=0.1 ; q1 relu(0.2-0.2+0.6)=0.6
    torch.testing.assert_close(parts["hinge"], torch.tensor(0.35))
    torch.testing.assert_close(parts["ndcg"], SoftNDCGLoss(2, 0.1)(scores, relevance, mask))
    torch.testing.assert_close(parts["variance"], variance_term(z))
    torch.testing.assert_close(total, parts["ndcg"] + 2.0 * parts["hinge"] + 0.5 * parts["variance"])
    total.backward()
    assert torch.isfinite(scores.grad).all() and scores.grad[1, 0] < 0


def test_docqueue_query_without_positive_is_skipped():
    scores = torch.tensor([[0.9, 0.8], [0.1, 0.95]])
    relevance = torch.tensor([[0, 0], [1, 0]])
    total, parts = DocQueueObjective(k=1, tau=0.1, margin=0.2, lambda_h=1.0, lambda_r=1.0)(
        scores, relevance, None, None
    )
    torch.testing.assert_close(parts["hinge"], torch.tensor(0.2 - 0.1 + 0.95))
    assert float(parts["variance"]) == 0.0 and torch.isfinite(total)
