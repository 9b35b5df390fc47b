from __future__ import annotations

import numpy as np
import pytest
import torch

from lira.arca import AnchorAdaptors
from lira.lasr.config import LasrConfig
from lira.lasr.head import LaSRHead
from lira.lasr.net import LiraNet
from lira.train.common import Checkpointer, Interrupt
from lira.train.lasr import LasrData, embed_rows, retrieval_eval, train_lasr


def synthetic(seed: int = 0, n_items: int = 24, n_queries: int = 40, s: int = 2, h: int = 16) -> LasrData:
    """Two languages; each query is a noisy copy of one item (relevance 2) with a sibling at 1."""
    g = torch.Generator().manual_seed(seed)
    items = torch.randn(n_items, s, h, generator=g)
    target = torch.arange(n_queries) % n_items
    queries = items[target] + 0.3 * torch.randn(n_queries, s, h, generator=g)
    sts_a = torch.randn(30, s, h, generator=g)
    sts_b = sts_a + torch.linspace(0.1, 2.0, 30)[:, None, None] * torch.randn(30, s, h, generator=g)
    mc_q = torch.randn(12, s, h, generator=g)
    mc_c = torch.randn(12, 3, s, h, generator=g)
    mc_c[:, 1] = mc_q + 0.1 * torch.randn(12, s, h, generator=g)
    lr = torch.cat([items, queries, sts_a, sts_b, mc_q, mc_c.reshape(-1, s, h)])
    n = len(lr)
    item_lang = torch.arange(n_items) % 2
    off = n_items + n_queries
    lang = torch.zeros(n, dtype=torch.long)
    lang[:n_items] = item_lang
    lang[n_items:off] = item_lang[target]
    qrels = [{int(t): 2, int((t + 2) % n_items): 1} for t in target]
    split = np.array(["train"] * 28 + ["dev"] * 12, dtype=object)
    mc_base = off + 60
    choices = torch.stack([torch.arange(mc_base + 12 + 3 * i, mc_base + 12 + 3 * i + 3) for i in range(12)])
    return LasrData(
        lr=lr, en=lr + 0.05 * torch.randn(n, s, h, generator=g), has_en=torch.ones(n, dtype=torch.bool), lang=lang,
        item_text=torch.arange(n_items), item_lang=item_lang, query_text=torch.arange(n_items, off),
        query_lang=item_lang[target], query_split=split, qrels=qrels,
        sts_a=torch.arange(off, off + 30), sts_b=torch.arange(off + 30, off + 60),
        sts_score=torch.linspace(5.0, 0.0, 30), sts_split=np.array(["train"] * 20 + ["test"] * 10, dtype=object),
        mc_q=torch.arange(mc_base, mc_base + 12), mc_choices=choices, mc_answer=torch.ones(12, dtype=torch.long),
        mc_split=np.array(["train"] * 8 + ["test"] * 4, dtype=object),
    )


def make_net(seed: int = 0, d: int = 16) -> LiraNet:
    torch.manual_seed(seed)
    return LiraNet(AnchorAdaptors(16, 16, d), LaSRHead(d, n_langs=2, n_slots=2, n_layers=1, n_heads=2, dropout=0.0, path_dropout=0.3))


CFG = dict(epochs=4, batch_size=6, patience=10, corr_queue=16, doc_queue=16, top_m=4, lr=3e-3)
SEED = 1


def test_dev_ndcg_equals_ranx_burges():
    from ranx import Qrels, Run, evaluate

    data, net = synthetic(), make_net()
    res = retrieval_eval(net, data, "dev")
    q = res["query_index"]
    z = embed_rows(net, data, torch.arange(len(data.lr)))
    scores = (z[data.query_text[q]] @ z[data.item_text].T).numpy()
    run, qrels = {}, {}
    for n, j in enumerate(q):
        same = np.flatnonzero(data.item_lang.numpy() == data.query_lang[j].item())
        run[f"q{j:03d}"] = {f"i{i:03d}": float(scores[n, i]) for i in same}
        qrels[f"q{j:03d}"] = {f"i{i:03d}": r for i, r in data.qrels[j].items()}
    expected = evaluate(Qrels(qrels), Run(run), "ndcg_burges@10", return_mean=False)
    np.testing.assert_allclose(res["per_query"], expected, atol=1e-6)


def test_dev_ndcg_is_each_querys_ndcg_over_its_own_language():
    """retrieval_eval sorts once per query; it gives what the O(items^2) soft ranks at a vanishing
    temperature gave (the computation it replaced), item ties broken by index."""
    import torch

    from lira.losses import soft_ndcg
    from lira.train.lasr import embed_rows

    data, net = synthetic(), make_net()
    out = retrieval_eval(net, data, "dev")
    q = out["query_index"]
    with torch.no_grad():
        scores = embed_rows(net, data, data.query_text[q], True) @ embed_rows(net, data, data.item_text, True).T
    mask = torch.as_tensor(data.query_lang[q][:, None] == data.item_lang[None, :])
    rel = torch.zeros_like(scores)
    for n, j in enumerate(q):
        for i, r in data.qrels[j].items():
            rel[n, i] = float(r)
    order = torch.argsort(-scores, dim=1, stable=True)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(scores.shape[1]).expand_as(order).contiguous())
    want = soft_ndcg(-ranks.float(), rel, 10, tau=0.01, mask=mask).numpy()
    assert len(q) > 3 and 0 < out["ndcg"] < 1
    np.testing.assert_allclose(out["per_query"], want, atol=1e-6, rtol=0)


def test_training_improves_dev_ndcg():
    data = synthetic()
    net = make_net()
    before = retrieval_eval(net, data, "dev")["ndcg"]
    result = train_lasr(data, net, LasrConfig(**{**CFG, "epochs": 12}), SEED)
    assert result.best_epoch >= 0  # a trained epoch beat the untrained start (epoch -1)
    assert next(r for r in result.history if r["epoch"] == result.best_epoch)["dev_ndcg10"] > before
    assert result.history[0]["epoch"] == -1 and result.history[0]["dev_ndcg10"] == before


def test_resume_after_kill_equals_uninterrupted(tmp_path):
    data = synthetic()
    full = train_lasr(data, make_net(), LasrConfig(**CFG), SEED, checkpointer=Checkpointer(tmp_path / "a", "k"))

    def kill(epoch, row):
        if epoch == 1:
            raise Interrupt()

    ck = Checkpointer(tmp_path / "b", "k")
    with pytest.raises(Interrupt):
        train_lasr(data, make_net(), LasrConfig(**CFG), SEED, checkpointer=ck, on_epoch=kill)
    resumed = train_lasr(data, make_net(), LasrConfig(**CFG), SEED, checkpointer=ck)
    assert resumed.resumed_from == 1
    assert [r["loss"] for r in resumed.history if r["epoch"] >= 0] == pytest.approx([r["loss"] for r in full.history if r["epoch"] >= 0])
    for (k1, v1), (k2, v2) in zip(full.net.state_dict().items(), resumed.net.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2), k1


def test_no_queue_variant_trains_and_english_can_be_dropped():
    data = synthetic()
    res = train_lasr(data, make_net(), LasrConfig(**{**CFG, "corr_queue": 0, "doc_queue": 0, "use_english": False}), SEED)
    assert all(np.isfinite(r["loss"]) for r in res.history if r["epoch"] >= 0)
    # With use_english False the model never reads the English path: changing it changes nothing.
    z1 = embed_rows(res.net, data, torch.arange(10), use_english=False)
    data.en = torch.randn_like(data.en)
    z2 = embed_rows(res.net, data, torch.arange(10), use_english=False)
    assert torch.allclose(z1, z2)
