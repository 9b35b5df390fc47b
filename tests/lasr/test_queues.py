import torch

from lira.lasr import CorrQueue, DocQueue, hard_negatives


def test_corr_queue_wraps_keeping_last_capacity_in_order():
    q = CorrQueue(4)
    vals = torch.arange(10, dtype=torch.float)  # 2.5x capacity, in batches of 3, 3, 3, 1
    for chunk in vals.split(3):
        q.enqueue(chunk, -chunk)
        n = len(q)
        seen = vals[: int(chunk[-1]) + 1]
        p, y = q.contents()
        torch.testing.assert_close(p, seen[-n:])
        torch.testing.assert_close(y, -seen[-n:])
    assert len(q) == 4
    p, y = q.contents()
    assert p.tolist() == [6.0, 7.0, 8.0, 9.0]


def test_corr_queue_batch_larger_than_capacity_keeps_its_tail():
    q = CorrQueue(3)
    q.enqueue(torch.tensor([1.0]), torch.tensor([1.0]))
    q.enqueue(torch.arange(7.0), torch.arange(7.0))
    assert q.contents()[0].tolist() == [4.0, 5.0, 6.0]
    q.enqueue(torch.tensor([9.0]), torch.tensor([9.0]))
    assert q.contents()[0].tolist() == [5.0, 6.0, 9.0]


def test_corr_queue_capacity_zero_is_empty():
    q = CorrQueue(0)
    q.enqueue(torch.randn(5), torch.randn(5))
    p, y = q.contents()
    assert len(q) == 0 and p.numel() == 0 and y.numel() == 0


def test_corr_queue_stores_detached_and_is_in_state_dict():
    q = CorrQueue(8)
    x = torch.randn(5, requires_grad=True)
    q.enqueue(x * 2, x.detach())
    p, _ = q.contents()
    assert not p.requires_grad and not q.preds.requires_grad and p.grad_fn is None
    q2 = CorrQueue(8)
    q2.load_state_dict(q.state_dict())
    torch.testing.assert_close(q2.contents()[0], p)
    assert len(q2) == 5


def test_doc_queue_validity_language_and_positives():
    dq = DocQueue(10, 2)
    emb = torch.randn(6, 2)
    dq.enqueue(emb, torch.tensor([0, 0, 1, 0, 1, 0]), torch.tensor([10, 11, 12, 13, 14, 11]))
    # query 0: lang 0, positive 11 (stored twice); query 1: lang 1, positive 14; query 2: lang 2
    e, valid = dq.candidates(torch.tensor([0, 1, 2]), torch.tensor([[11, -1], [14, 12], [-1, -1]]))
    torch.testing.assert_close(e, emb)
    assert valid.tolist() == [
        [True, False, False, True, False, False],
        [False, False, False, False, False, False],
        [False] * 6,
    ]


def test_doc_queue_never_returns_own_positive_randomised():
    g = torch.Generator().manual_seed(0)
    dq = DocQueue(32, 4)
    for _ in range(20):
        dq.enqueue(
            torch.randn(7, 4, generator=g),
            torch.randint(0, 3, (7,), generator=g),
            torch.randint(0, 15, (7,), generator=g),
        )
    ql = torch.randint(0, 3, (9,), generator=g)
    pos = torch.randint(-1, 15, (9, 3), generator=g)
    _, valid = dq.candidates(ql, pos)
    for qi in range(9):
        for j in valid[qi].nonzero().flatten().tolist():
            assert dq.lang[dq._order()][j] == ql[qi]
            assert dq.item[dq._order()][j].item() not in pos[qi].tolist()
    assert valid.any()


def test_doc_queue_wraps_and_memory_is_constant():
    dq = DocQueue(5, 3)
    sizes = {n: b.numel() for n, b in dq.named_buffers()}
    for i in range(1000):
        dq.enqueue(torch.full((3, 3), float(i)), torch.zeros(3, dtype=torch.long), torch.arange(3) + 3 * i)
    assert {n: b.numel() for n, b in dq.named_buffers()} == sizes
    assert len(dq) == 5
    e, valid = dq.candidates(torch.tensor([0]), torch.full((1, 1), -1))
    # the last 5 rows enqueued, oldest first: two of batch 998, three of batch 999
    assert e[:, 0].tolist() == [998.0, 998.0, 999.0, 999.0, 999.0]
    assert dq.item[dq._order()].tolist() == [2995, 2996, 2997, 2998, 2999]
    assert valid.all()


def test_doc_queue_capacity_zero_and_detached():
    dq = DocQueue(0, 4)
    dq.enqueue(torch.randn(3, 4, requires_grad=True), torch.zeros(3, dtype=torch.long), torch.arange(3))
    e, valid = dq.candidates(torch.tensor([0, 0]), torch.full((2, 1), -1))
    assert e.shape == (0, 4) and valid.shape == (2, 0)
    dq = DocQueue(4, 4)
    dq.enqueue(torch.randn(3, 4, requires_grad=True) * 1, torch.zeros(3, dtype=torch.long), torch.arange(3))
    e, _ = dq.candidates(torch.tensor([0]), torch.full((1, 1), -1))
    assert not e.requires_grad


def test_hard_negatives_picks_top_m_valid():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    angles = torch.tensor([0.0, 0.3, 0.6, 0.9, 1.2])
    cand = torch.stack([angles.cos(), angles.sin()], 1)  # cos to q0 decreasing, to q1 increasing
    valid = torch.tensor([[False, True, True, True, True], [True, True, True, False, False]])
    scores, mask = hard_negatives(q, cand, valid, m=2)
    assert mask.all()
    torch.testing.assert_close(scores[0], angles[[1, 2]].cos())  # best valid for q0: 1, 2 (0 invalid)
    torch.testing.assert_close(scores[1], angles[[2, 1]].sin())  # best valid for q1: 2, 1 (3, 4 invalid)
    # fewer valid than m: tail masked, finite
    scores, mask = hard_negatives(q, cand, valid, m=4)
    assert mask.tolist() == [[True] * 4, [True, True, True, False]]
    assert torch.isfinite(scores).all() and scores[1, 3] == 0
    # m larger than the candidate pool, and empty pool
    scores, mask = hard_negatives(q, cand, valid, m=7)
    assert scores.shape == (2, 7) and mask.sum().item() == 7
    scores, mask = hard_negatives(q, cand[:0], valid[:, :0], m=3)
    assert scores.shape == (2, 3) and not mask.any()


def test_hard_negatives_gradient_flows_to_query():
    q = torch.randn(3, 4, requires_grad=True)
    cand = torch.randn(6, 4)
    valid = torch.rand(3, 6) > 0.3
    valid[:, 0] = True
    scores, mask = hard_negatives(q, cand, valid, m=3)
    (scores * mask).sum().backward()
    assert torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0


def _brute_sums(x, tau):
    return torch.sigmoid((x.double().unsqueeze(0) - x.double().unsqueeze(1)) / tau).sum(1) - 0.5


def test_corr_queue_rank_sums_stay_exact_through_updates_wraps_reset_and_reload():
    from lira.lasr.queues import CorrQueue

    g = torch.Generator().manual_seed(0)
    q = CorrQueue(64)
    assert q.rank_sums(0.1)[0].shape == (0,)
    for step, b in enumerate([5, 30, 40, 64, 70, 3, 1, 16, 16, 16]):
        q.enqueue(torch.randn(b, generator=g), (torch.rand(b, generator=g) * 5).round())
        p, labels = q.contents()
        sp, sl = q.rank_sums(0.1)
        torch.testing.assert_close(sp, _brute_sums(p, 0.1), rtol=0, atol=1e-9, msg=f"step {step}")
        torch.testing.assert_close(sl, _brute_sums(labels, 0.1), rtol=0, atol=1e-9, msg=f"step {step}")
    # a different tau recomputes; a reloaded queue recomputes from its loaded values
    torch.testing.assert_close(q.rank_sums(0.5)[0], _brute_sums(q.contents()[0], 0.5), rtol=0, atol=1e-9)
    other = CorrQueue(64)
    other.rank_sums(0.5)
    other.load_state_dict(q.state_dict())
    assert set(q.state_dict()) == {"ptr", "count", "preds", "labels"}  # checkpoints keep their keys
    torch.testing.assert_close(other.rank_sums(0.5)[1], _brute_sums(other.contents()[1], 0.5), rtol=0, atol=1e-9)
    q.reset()
    q.enqueue(torch.tensor([0.3, -0.2]), torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(q.rank_sums(0.5)[0], _brute_sums(torch.tensor([0.3, -0.2]), 0.5), rtol=0, atol=1e-9)
