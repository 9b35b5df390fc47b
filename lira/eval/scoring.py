"""Per-example scores of one system on the test split, their summary, and the paired comparison.

A system is one embedding per text row (``z [N, d]``); everything here is arrays in, numbers out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lira.eval.bootstrap import paired_bootstrap
from lira.eval.metrics import retrieval_metrics, scores_to_run, sts_metrics
from lira.eval.systems import unit
from lira.train.lasr import LasrData


def retrieval_scores(
    z: np.ndarray, ld: LasrData, ks: list[int], z_items: np.ndarray | None = None, item_ok: np.ndarray | None = None,
    text_ok: np.ndarray | None = None,
) -> dict[str, Any]:
    """Test queries against the items of their language. In-language by default (both sides from
    ``z``, one row per text); ``z_items`` [I, d] replaces the items' embeddings (cross-lingual:
    the items' English references), ``item_ok`` [I] bool drops items from every corpus (those
    without a reference), and queries left without a relevant item are not scored; ``text_ok``
    [N] bool (per text row) drops the queries whose own row is False."""
    q = np.flatnonzero(ld.query_split == "test")
    zi = z[ld.item_text.numpy()] if z_items is None else z_items
    ok = np.ones(len(zi), dtype=bool) if item_ok is None else np.asarray(item_ok, dtype=bool)
    if item_ok is not None:  # in-language scoring keeps every test query (the gate pairs them by position)
        q = np.array([j for j in q if any(ok[i] and r > 0 for i, r in ld.qrels[j].items())], dtype=np.int64)
    if text_ok is not None:  # queries whose own text row has nothing to embed (e.g. no reference)
        q = q[np.asarray(text_ok, dtype=bool)[ld.query_text[q].numpy()]]
    zq = z[ld.query_text[q].numpy()]
    scores = zq @ zi.T
    mask = (ld.query_lang[q].numpy()[:, None] == ld.item_lang.numpy()[None, :]) & ok[None, :]
    qids = [f"q{j:06d}" for j in q]
    run = scores_to_run(qids, [f"i{j:06d}" for j in range(len(zi))], scores, top_k=100, candidate_mask=mask)
    qrels = {f"q{j:06d}": {f"i{i:06d}": r for i, r in ld.qrels[j].items() if ok[i]} for j in q}
    names = [f"ndcg@{k}" for k in ks if k == 10] + [f"recall@{k}" for k in ks] + ["mrr@10"]
    per = retrieval_metrics(run, qrels, tuple(dict.fromkeys(["ndcg@10", *names])))
    # ranx aligns to sorted(qrels); qids are zero-padded so that order is q's order
    return {"per_query": per, "lang": ld.query_lang[q].numpy(), "qids": qids}


def sts_scores(z: np.ndarray, ld: LasrData) -> dict[str, Any]:
    t = np.flatnonzero(ld.sts_split == "test")
    a, b = z[ld.sts_a[t].numpy()], z[ld.sts_b[t].numpy()]
    return {"pred": (unit(a) * unit(b)).sum(1), "gold": ld.sts_score[t].numpy(), "lang": ld.lang[ld.sts_a[t]].numpy()}


def mc_scores(z: np.ndarray, ld: LasrData) -> dict[str, Any]:
    t = np.flatnonzero(ld.mc_split == "test")
    ch = ld.mc_choices[t].numpy()
    zq = unit(z[ld.mc_q[t].numpy()])
    zc = unit(z[np.clip(ch, 0, None)])
    logits = np.where(ch >= 0, np.einsum("bd,bcd->bc", zq, zc), -np.inf)
    top = logits.max(1, keepdims=True)
    # A tie at the top counts as wrong: a model that scores every choice alike earns nothing.
    correct = (logits[np.arange(len(t)), ld.mc_answer[t].numpy()] == top[:, 0]) & ((logits == top).sum(1) == 1)
    return {"correct": correct.astype(float), "lang": ld.lang[ld.mc_q[t]].numpy()}


def score_all(z: np.ndarray, ld: LasrData, ks: list[int]) -> dict[str, Any]:
    return {"retrieval": retrieval_scores(z, ld, ks), "sts": sts_scores(z, ld), "mc": mc_scores(z, ld)}


def crosslingual_summary(res: dict[str, Any], langs: list[str]) -> dict[str, Any]:
    """Mean of each metric of a :func:`retrieval_scores` result, overall and per language."""
    out: dict[str, Any] = {k: float(np.mean(v)) if len(v) else float("nan") for k, v in res["per_query"].items()}
    out["n_queries"] = len(res["qids"])
    out["per_language"] = {lang: {k: float(v[res["lang"] == li].mean()) for k, v in res["per_query"].items()}
                           for li, lang in enumerate(langs) if (res["lang"] == li).any()}
    return out


def _pearson(pred: np.ndarray, gold: np.ndarray) -> float:
    return sts_metrics(pred, gold)["pearson"] if len(pred) > 2 else float("nan")


def summarise(res: dict[str, Any], langs: list[str]) -> dict[str, Any]:
    r, s, m = res["retrieval"], res["sts"], res["mc"]
    out: dict[str, Any] = {"retrieval": {k: float(np.mean(v)) for k, v in r["per_query"].items()}}
    if len(s["pred"]) > 2:
        out["sts"] = sts_metrics(s["pred"], s["gold"])
    if len(m["correct"]):
        out["mc"] = {"accuracy": float(m["correct"].mean())}
    per_lang = {}
    for li, lang in enumerate(langs):
        row: dict[str, float] = {}
        sel = r["lang"] == li
        if sel.any():
            row.update({k: float(v[sel].mean()) for k, v in r["per_query"].items()})
        sel = s["lang"] == li
        if sel.sum() > 2:
            row.update({f"sts_{k}": v for k, v in sts_metrics(s["pred"][sel], s["gold"][sel]).items()})
        sel = m["lang"] == li
        if sel.any():
            row["mc_accuracy"] = float(m["correct"][sel].mean())
        per_lang[lang] = row
    out["per_language"] = per_lang
    return out


def compare(a: dict[str, Any], b: dict[str, Any], n: int, conf: float, seed: int) -> dict[str, Any]:
    """Paired bootstrap of (a - b) on the same test items: retrieval, STS Pearson, MC accuracy."""
    out = {}
    ra, rb = a["retrieval"]["per_query"]["ndcg@10"], b["retrieval"]["per_query"]["ndcg@10"]
    if len(ra):
        out["retrieval.ndcg@10"] = paired_bootstrap(np.mean, ra, rb, n_resamples=n, confidence=conf, seed=seed).as_dict()
    if len(a["sts"]["pred"]) > 2:
        out["sts.pearson"] = paired_bootstrap(_pearson, a["sts"]["pred"], b["sts"]["pred"], a["sts"]["gold"],
                                              n_resamples=n, confidence=conf, seed=seed).as_dict()
    if len(a["mc"]["correct"]):
        out["mc.accuracy"] = paired_bootstrap(np.mean, a["mc"]["correct"], b["mc"]["correct"], n_resamples=n, confidence=conf, seed=seed).as_dict()
    return out


# How far LiRA's English path may fall below the frozen English encoder (x100 points).
FORGETTING_TOLERANCE = 1.0


def forgetting_summary(res: dict[str, dict], langs: list[str], n: int, conf: float, seed: int) -> dict:
    """English -> English retrieval and STS, LiRA's English path vs frozen, and whether each stays
    within :data:`FORGETTING_TOLERANCE` points of frozen (the forgetting check)."""
    out: dict = {"definition": "the sample's English references (en_ref), test split: query reference -> its "
                               "language's item references (retrieval), STS test pairs' references (STS); LiRA's "
                               "English path (anchor-language entry) vs the frozen English encoder",
                 "tolerance_points": FORGETTING_TOLERANCE}
    if not res:
        return out
    out["retrieval"] = {name: crosslingual_summary(r["retrieval"], langs) for name, r in res.items()}
    out["sts"] = {name: sts_metrics(r["sts"]["pred"], r["sts"]["gold"]) if len(r["sts"]["pred"]) > 2 else {}
                  for name, r in res.items()}
    lq, fq = res["lira"]["retrieval"]["per_query"]["ndcg@10"], res["frozen"]["retrieval"]["per_query"]["ndcg@10"]
    if len(lq):
        out["lira_minus_frozen"] = {"retrieval.ndcg@10": paired_bootstrap(
            np.mean, lq, fq, n_resamples=n, confidence=conf, seed=seed).as_dict()}
    checks = {}
    if len(lq):
        checks["retrieval.ndcg@10"] = 100 * (out["retrieval"]["lira"]["ndcg@10"] - out["retrieval"]["frozen"]["ndcg@10"])
    for k in ("pearson", "spearman"):
        if out["sts"].get("lira") and out["sts"].get("frozen"):
            checks[f"sts.{k}"] = 100 * (out["sts"]["lira"][k] - out["sts"]["frozen"][k])
    out["lira_minus_frozen_points"] = checks
    out["within_tolerance"] = bool(checks) and all(v >= -FORGETTING_TOLERANCE for v in checks.values())
    return out
