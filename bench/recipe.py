"""Find, by measurement, a training recipe for the LRL encoder that beats the frozen encoder.

Standalone: reuses lira's sample reader and splits, its encoder loading (``lira.encoders``), LoRA
(``lira.encoders.lora``, ``lira.train.live``), metrics (``lira.eval.metrics``), the
translation-ranking loss and the st_distill peer - read-only; it does not go through the stages.

The recipe: LoRA on the LRL encoder, English frozen as the anchor (the untouched encoder embeds
English; LoRA B is zero-initialised, so epoch 0 IS the frozen encoder), trained on pairs
(LRL text, its English reference) with

    L = mean_i (1 - cos(u_lr_i, sg(u_en_i))) + lambda * L_rank(u_lr, sg(u_en))

where L_rank is lira.losses.translation_ranking (bidirectional in-batch softmax, additive margin,
duplicate-free batches, optionally a FIFO of past English targets as extra negatives). Early
stopping scores epoch 0 too, on a selection signal from tuning data only.

Data it may tune on (and the only data it reads for choosing): the sample's train (training) and
dev (selection) splits, and FLORES-SIB200 *train* folds (general-domain checks: a query fold and a
corpus fold, both disjoint from anything trained on). FLORES dev is read only with
``--report-flores-dev`` and is never part of the selection score. The sample's test split is never
read.

Measures per system (frozen, each recipe config, st_distill):
  (a) sample dev in-language retrieval nDCG@10 (dev queries -> all items of the language);
  (b) sample dev cross-lingual retrieval (LRL query -> the items' English references);
  (c) English -> English retrieval (query references -> item references) and STS (dev pairs'
      English references, Pearson/Spearman x100): forgetting checks;
  (d) FLORES train fold topic retrieval nDCG@10 (relevant = same SIB-200 category), in-language and
      cross-lingual, and bitext accuracy (mean of both directions) on the query fold;
  and the fused system normalize(u_lr + u_en(reference translation)) for in-language retrieval.

Usage:
  python bench/recipe.py --systems frozen                      # the start
  python bench/recipe.py --systems lora --grid '[{"r": 4, "lr": 5e-4, "lam": 1.0}]'
  python bench/recipe.py --systems st_distill
Each invocation merges its systems into bench/results/recipe.json (machine info, commit, load).
LIRA_FLORES_DIR names the FLORES-SIB200 folder (skipped without it).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

C.set_threads(2)

import numpy as np
import torch
import torch.nn.functional as F

ROOT = C.ROOT
FLORES_CODES = {"vi": "vie_Latn", "th": "tha_Thai", "id": "ind_Latn", "ms": "zsm_Latn", "ur": "urd_Arab",
                "bn": "ben_Beng", "fil": "tgl_Latn"}
ENGLISH = "eng_Latn"
PREFIX = {"query": "query: ", "passage": "passage: "}
# The recommended recipe, chosen by selection_score (sample dev + FLORES train folds) over the configs
# in bench/results/recipe.json. E5 was trained at temperature 0.01: its cosines are compressed, so a
# scale of 20 barely ranks (the loss stays near log B) and a margin of 0.1 exceeds the typical gap.
DEFAULTS = {"r": 8, "alpha": 16.0, "dropout": 0.0, "targets": ["query", "value"], "lr": 2e-4, "epochs": 1,
            "batch": 32, "lam": 1.0, "anchor": 1.0, "scale": 50.0, "margin": 0.05, "symmetric": True,
            "queue": 256, "seed": 0, "bf16": False}


# ------------------------------------------------------------------------------------------ data
def load_sample(langs: list[str]) -> dict[str, Any]:
    """The shipped sample with build_dataset's own seeded splits (train and dev only are used)."""
    import yaml

    from lira.data.readers import read_sample
    from lira.stages.build_dataset import split

    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    s = params["build_dataset"]["split"]
    ns = SimpleNamespace(build_dataset=SimpleNamespace(split=SimpleNamespace(train=s["train"], dev=s["dev"], test=s["test"])),
                         shared=SimpleNamespace(seed=params["shared"]["seed"]))
    ds = read_sample(ROOT / "lira" / "sample" / "data", langs)
    split(ds, ns)
    texts = {t["text_id"]: t for t in ds.texts}
    kind = {t["text_id"]: ("passage" if t["role"] == "item" else "query") for t in ds.texts}
    train = [(texts[t]["text"], kind[t], texts[t]["en_ref"], texts[t]["lang"]) for t in texts
             if texts[t]["split"] == "train" and texts[t]["en_ref"]]
    train = list({(a, k, e): (a, k, e, lg) for a, k, e, lg in train}.values())  # same text twice = one pair
    qrels: dict[str, dict[str, int]] = {}
    for r in ds.qrels:
        qrels.setdefault(r["query_id"], {})[r["item_id"]] = int(r["relevance"])
    dev_q = [q for q in ds.queries if q["split"] == "dev"]
    sts_dev = [r for r in ds.sts if r["split"] == "dev"]
    return {"texts": texts, "train": train, "items": ds.items, "dev_queries": dev_q, "qrels": qrels,
            "sts_dev": sts_dev}


def _read_flores(folder: Path, code: str, split: str) -> list[dict[str, str]]:
    with (folder / code / f"{split}.tsv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def _fold(index_id: str, n_folds: int) -> int:
    return int(hashlib.sha256(f"lira-recipe\x00{index_id}".encode()).hexdigest(), 16) % n_folds


def load_flores(folder: Path, langs: list[str], n_folds: int, query_fold: int, corpus_fold: int,
                cap: int | None) -> dict[str, Any]:
    """Two disjoint folds of FLORES *train* (by a hash of index_id): queries and corpus, per language."""
    eng = {r["index_id"]: r for r in _read_flores(folder, ENGLISH, "train")}
    out: dict[str, Any] = {}
    for lg in langs:
        rows = [r for r in _read_flores(folder, FLORES_CODES[lg], "train") if r["index_id"] in eng and r["text"].strip()]
        q = [r for r in rows if _fold(r["index_id"], n_folds) == query_fold][:cap]
        c = [r for r in rows if _fold(r["index_id"], n_folds) == corpus_fold][:cap]
        out[lg] = {f: {"text": [r["text"].strip() for r in rs], "en": [eng[r["index_id"]]["text"].strip() for r in rs],
                       "cat": [r["category"] for r in rs]} for f, rs in (("q", q), ("c", c))}
    return out


def load_flores_dev(folder: Path, langs: list[str], corpus_cap: int | None = None) -> dict[str, Any]:
    """Reporting only (never selection): dev sentences as queries, train sentences as the corpus."""
    out: dict[str, Any] = {}
    for split_name, key in (("dev", "q"), ("train", "c")):
        eng = {r["index_id"]: r for r in _read_flores(folder, ENGLISH, split_name)}
        for lg in langs:
            rows = [r for r in _read_flores(folder, FLORES_CODES[lg], split_name) if r["index_id"] in eng and r["text"].strip()]
            if key == "c":
                rows = rows[:corpus_cap]
            out.setdefault(lg, {})[key] = {"text": [r["text"].strip() for r in rows],
                                           "en": [eng[r["index_id"]]["text"].strip() for r in rows],
                                           "cat": [r["category"] for r in rows]}
    return out


# ------------------------------------------------------------------------------------- metrics
def ndcg_per_query(q: np.ndarray, d: np.ndarray, qrels: list[dict[int, int]], k: int = 10) -> np.ndarray:
    from lira.eval.metrics import retrieval_metrics, scores_to_run

    scores = q @ d.T
    qids = [f"q{i:05d}" for i in range(len(q))]
    run = scores_to_run(qids, [f"d{j:05d}" for j in range(len(d))], scores, top_k=100)
    rels = {f"q{i:05d}": {f"d{j:05d}": r for j, r in rel.items()} for i, rel in enumerate(qrels)}
    return np.asarray(retrieval_metrics(run, rels, (f"ndcg@{k}",))[f"ndcg@{k}"])


def topic_rels(qcat: list[str], ccat: list[str]) -> list[dict[int, int]]:
    by: dict[str, list[int]] = {}
    for j, c in enumerate(ccat):
        by.setdefault(c, []).append(j)
    return [{j: 1 for j in by.get(c, [])} for c in qcat]


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


# ------------------------------------------------------------------------------------- systems
class Embedder:
    """``lrl(texts, kind)`` and ``en(texts, kind)`` -> unit rows [N, d] of one system."""

    def __init__(self, name: str, lrl, en):
        self.name, self.lrl, self.en = name, lrl, en


def evaluate(emb: Embedder, sample: dict[str, Any], flores: dict[str, Any] | None, langs: list[str],
             what: str = "all") -> dict[str, Any]:
    """Every measure of the module docstring; ``what="select"`` computes the selection signal only."""
    from lira.eval.metrics import bitext_accuracy, sts_metrics

    texts, items = sample["texts"], sample["items"]
    res: dict[str, Any] = {"per_lang": {}}
    pooled: dict[str, list[float]] = {}
    for lg in langs:
        its = [it for it in items if it["lang"] == lg]
        qs = [q for q in sample["dev_queries"] if q["lang"] == lg]
        pos = {it["item_id"]: j for j, it in enumerate(its)}
        rels = [{pos[i]: r for i, r in sample["qrels"].get(q["query_id"], {}).items() if i in pos} for q in qs]
        q_lr = emb.lrl([texts[q["text_id"]]["text"] for q in qs], "query")
        d_lr = emb.lrl([texts[it["text_id"]]["text"] for it in its], "passage")
        d_en = emb.en([texts[it["text_id"]]["en_ref"] for it in its], "passage")
        m: dict[str, Any] = {"dev_inlang_ndcg10": ndcg_per_query(q_lr, d_lr, rels),
                             "dev_cross_ndcg10": ndcg_per_query(q_lr, d_en, rels)}
        if what == "all":
            q_en = emb.en([texts[q["text_id"]]["en_ref"] for q in qs], "query")
            m["dev_en2en_ndcg10"] = ndcg_per_query(q_en, d_en, rels)
            # fused at its natural start: mean of the LRL path and the English path of the translation
            m["dev_fused_inlang_ndcg10"] = ndcg_per_query(unit(q_lr + q_en), unit(d_lr + d_en), rels)
        for k, v in m.items():
            pooled.setdefault(k, []).extend(v.tolist())
        res["per_lang"][lg] = {k: float(np.mean(v)) for k, v in m.items()}
        if flores is not None:
            fq, fc = flores[lg]["q"], flores[lg]["c"]
            fq_lr = emb.lrl(fq["text"], "query")
            fc_lr = emb.lrl(fc["text"], "query")
            fc_en = emb.en(fc["en"], "query")
            frel = topic_rels(fq["cat"], fc["cat"])
            fm = {"flores_inlang_ndcg10": ndcg_per_query(fq_lr, fc_lr, frel),
                  "flores_cross_ndcg10": ndcg_per_query(fq_lr, fc_en, frel)}
            fq_en = emb.en(fq["en"], "query")
            acc = bitext_accuracy(fq_lr, fq_en)
            for k, v in fm.items():
                pooled.setdefault(k, []).extend(v.tolist())
                res["per_lang"][lg][k] = float(np.mean(v))
            res["per_lang"][lg]["flores_bitext_acc"] = 0.5 * (acc["src2tgt"] + acc["tgt2src"])
            pooled.setdefault("flores_bitext_acc", []).append(res["per_lang"][lg]["flores_bitext_acc"])
            res["per_lang"][lg]["n_flores_q"], res["per_lang"][lg]["n_flores_c"] = len(fq["text"]), len(fc["text"])
        res["per_lang"][lg]["n_dev_queries"], res["per_lang"][lg]["n_items"] = len(qs), len(its)
    res["pooled"] = {k: float(np.mean(v)) for k, v in pooled.items()}
    res["per_query"] = {k: v for k, v in pooled.items()}  # for paired bootstrap CIs
    if what == "all" and sample["sts_dev"]:
        a = emb.en([texts[r["text_id_a"]]["en_ref"] for r in sample["sts_dev"]], "query")
        b = emb.en([texts[r["text_id_b"]]["en_ref"] for r in sample["sts_dev"]], "query")
        gold = np.asarray([r["score"] for r in sample["sts_dev"]], dtype=float)
        st = sts_metrics((a * b).sum(1), gold)
        a_l = emb.lrl([texts[r["text_id_a"]]["text"] for r in sample["sts_dev"]], "query")
        b_l = emb.lrl([texts[r["text_id_b"]]["text"] for r in sample["sts_dev"]], "query")
        st_l = sts_metrics((a_l * b_l).sum(1), gold)
        res["pooled"].update({"dev_sts_en_pearson": st["pearson"], "dev_sts_en_spearman": st["spearman"],
                              "dev_sts_lrl_pearson": st_l["pearson"], "dev_sts_lrl_spearman": st_l["spearman"],
                              "n_sts_dev": len(gold)})
    res["pooled"]["n_dev_queries"] = len(pooled["dev_inlang_ndcg10"])
    return res


def selection_score(pooled: dict[str, float]) -> float:
    """What early stopping and the grid choose by: general-domain retrieval counts as much as the sample.

    Mean of sample dev in-language and cross-lingual nDCG@10 and FLORES train-fold in-language and
    cross-lingual nDCG@10 (whichever are present). Never FLORES dev, never the sample's test split.
    """
    keys = ["dev_inlang_ndcg10", "dev_cross_ndcg10", "flores_inlang_ndcg10", "flores_cross_ndcg10"]
    return float(np.mean([pooled[k] for k in keys if k in pooled]))


class FrozenCache:
    """The untouched encoder's unit embeddings, computed once per (kind, text); kept on disk under
    ``path`` (keyed by the encoder's feature key), so later runs encode nothing twice."""

    def __init__(self, encoder, path: Path | None = None):
        self.encoder = encoder
        self.store: dict[tuple[str, str], np.ndarray] = {}
        self.path = path
        if path is not None and path.exists():
            with np.load(path) as z:
                for k, t, v in zip(z["kinds"], z["texts"], z["vecs"]):
                    self.store[(str(k), str(t))] = v

    def save(self) -> None:
        if self.path is None or not self.store:
            return
        keys = list(self.store)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, kinds=np.array([k for k, _ in keys]), texts=np.array([t for _, t in keys]),
                 vecs=np.stack([self.store[k] for k in keys]))
        os.replace(tmp, self.path)

    def __call__(self, texts: list[str], kind: str) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if (kind, t) not in self.store))
        if todo:
            vecs = self.encoder.embed(todo, kind=kind, batch_size=64)
            for t, v in zip(todo, vecs):
                self.store[(kind, t)] = v
            self.save()
        return np.stack([self.store[(kind, t)] for t in texts]) if texts else np.zeros((0, self.encoder.hidden_size))


def live_embed(encoder, texts: list[str], kind: str) -> np.ndarray:
    """Unit embeddings through the current (LoRA) encoder, eval mode, no grad."""
    if not texts:
        return np.zeros((0, encoder.hidden_size), np.float32)
    uniq = list(dict.fromkeys(texts))
    vecs = encoder.embed(uniq, kind=kind, batch_size=64)
    at = {t: i for i, t in enumerate(uniq)}
    return vecs[[at[t] for t in texts]]


# ------------------------------------------------------------------------------------- training
def train_lora(cfg: dict[str, Any], settings, cache_dir: Path, frozen: FrozenCache, sample: dict[str, Any],
               flores: dict[str, Any] | None, langs: list[str], log) -> dict[str, Any]:
    """One recipe config: LoRA on the LRL encoder, anchoring + lambda * translation ranking, early
    stopping on :func:`selection_score` with epoch 0 (the frozen encoder) scored too."""
    from lira.encoders import Encoder
    from lira.eval.st_distill import PeakRSS
    from lira.losses.translation_ranking import duplicate_free_batches, translation_ranking_loss
    from lira.train.live import LiveEncoderPath

    torch.manual_seed(cfg["seed"])
    pairs = sample["train"]
    enc = Encoder(settings, cache_dir)
    enc.add_lora(cfg["r"], cfg["alpha"], cfg["dropout"], cfg["targets"])
    path = LiveEncoderPath(enc, [p[0] for p in pairs], [p[1] for p in pairs], s_feat=1,
                           precision="bf16" if cfg["bf16"] else "fp32")
    # English targets: the frozen encoder's embedding of the reference, with the LRL side's prefix
    u_en_all = torch.as_tensor(np.stack([frozen([p[2]], p[1])[0] for p in pairs]), dtype=torch.float32)
    en_keys = [f"{p[1]}\x00{p[2]}" for p in pairs]
    group_of = {k: i for i, k in enumerate(dict.fromkeys(en_keys))}
    groups = torch.as_tensor([group_of[k] for k in en_keys])
    opt = torch.optim.AdamW(path.parameters(), lr=cfg["lr"], weight_decay=0.0)
    lora_embedder = Embedder("lora", lambda t, k: live_embed(enc, t, k), frozen)

    history = []
    sel0 = evaluate(lora_embedder, sample, flores, langs, what="select")["pooled"]
    best = {"epoch": 0, "score": selection_score(sel0), "state": path.state_dict()}
    history.append({"epoch": 0, "score": best["score"], **{k: v for k, v in sel0.items() if k.endswith("ndcg10")}})
    log(f"  epoch 0: selection {best['score']:.4f}  {_fmt(sel0)}")
    step_times: list[float] = []
    train_wall = 0.0
    with PeakRSS() as mem:
        for epoch in range(1, cfg["epochs"] + 1):
            path.train(True)
            t_ep = time.perf_counter()
            batches = duplicate_free_batches(en_keys, cfg["batch"], seed=cfg["seed"] * 1000 + epoch)
            q_vec, q_grp = torch.zeros(0, u_en_all.shape[1]), torch.zeros(0, dtype=torch.long)
            losses = []
            for b in batches:
                t0 = time.perf_counter()
                idx = torch.as_tensor(b)
                slots = path.slots(idx)
                u_lr = F.normalize(slots[:, 0].float(), dim=-1)
                u_en = u_en_all[idx]
                l_anchor = (1.0 - (u_lr * u_en).sum(-1)).mean()
                l_rank = translation_ranking_loss(u_lr, u_en, scale=cfg["scale"], margin=cfg["margin"],
                                                  symmetric=cfg["symmetric"], group=groups[idx],
                                                  extra_en=q_vec if len(q_vec) else None,
                                                  extra_group=q_grp if len(q_vec) else None)
                loss = cfg["anchor"] * l_anchor + cfg["lam"] * l_rank
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if cfg["queue"] > 0:  # enqueue after the loss: a batch is never its own negative
                    q_vec = torch.cat([u_en, q_vec])[: cfg["queue"]]
                    q_grp = torch.cat([groups[idx], q_grp])[: cfg["queue"]]
                losses.append((l_anchor.item(), l_rank.item()))
                step_times.append(time.perf_counter() - t0)
            train_wall += time.perf_counter() - t_ep
            path.train(False)
            sel = evaluate(lora_embedder, sample, flores, langs, what="select")["pooled"]
            score = selection_score(sel)
            la, lr_ = np.mean([x[0] for x in losses]), np.mean([x[1] for x in losses])
            history.append({"epoch": epoch, "score": score, "anchor_loss": float(la), "rank_loss": float(lr_),
                            "epoch_train_s": round(time.perf_counter() - t_ep, 1),
                            **{k: v for k, v in sel.items() if k.endswith("ndcg10")}})
            log(f"  epoch {epoch}: anchor {la:.4f} rank {lr_:.4f}  selection {score:.4f}  {_fmt(sel)}  "
                f"({history[-1]['epoch_train_s']} s)")
            if score > best["score"]:
                best = {"epoch": epoch, "score": score, "state": path.state_dict()}
    path.load_state_dict(best["state"])
    path.train(False)
    full = evaluate(lora_embedder, sample, flores, langs, what="all")
    return {"config": cfg, "best_epoch": best["epoch"], "best_score": best["score"], "history": history,
            "train_wall_s": round(train_wall, 1), "median_step_s": float(np.median(step_times)) if step_times else None,
            "peak_rss_mib": round(mem.peak_mib, 1), "n_pairs": len(pairs), "eval": full,
            "_encoder": enc}


def _fmt(p: dict[str, float]) -> str:
    short = {"dev_inlang_ndcg10": "dev-in", "dev_cross_ndcg10": "dev-x", "flores_inlang_ndcg10": "fl-in",
             "flores_cross_ndcg10": "fl-x", "flores_bitext_acc": "fl-bitext"}
    return " ".join(f"{s} {p[k]:.4f}" for k, s in short.items() if k in p)


# ------------------------------------------------------------------------------------- main
def merge(names: list[str], out: str) -> None:
    """Runs made in separate processes (e.g. the LoRA grid beside st_distill) as one result file."""
    systems: dict[str, Any] = {}
    runs: list[Any] = []
    sizes: dict[str, Any] = {}
    for n in names:
        doc = json.loads(C.result_path(n).read_text(encoding="utf-8"))
        systems.update(doc["systems"])
        runs.extend({**r, "machine": doc["machine"], "from": n} for r in doc["runs"])
        if sizes and doc["sizes"] != sizes:
            raise ValueError(f"{n}: measured on other data sizes than the files before it: {doc['sizes']} vs {sizes}")
        sizes = doc["sizes"]
    comparisons = compare(systems)
    C.write_result(out, {"systems": systems, "runs": runs, "sizes": sizes, "merged_from": names,
                         "comparisons": comparisons})
    print(table(systems, comparisons))
    print(f"wrote {C.result_path(out)}")


PER_QUERY = ("dev_inlang_ndcg10", "dev_cross_ndcg10", "dev_en2en_ndcg10", "dev_fused_inlang_ndcg10",
             "flores_inlang_ndcg10", "flores_cross_ndcg10")


def compare(systems: dict[str, Any], baselines: tuple[str, ...] = ("frozen", "st_distill")) -> dict[str, Any]:
    """Paired bootstrap 95% CIs (lira.eval.paired_bootstrap) of every system minus each baseline,
    per measure, on the same queries."""
    from lira.eval import paired_bootstrap

    out: dict[str, Any] = {}
    for name, s in systems.items():
        pq = s.get("eval", {}).get("per_query")
        for base in baselines:
            if name == base or base not in systems or pq is None:
                continue
            bq = systems[base]["eval"]["per_query"]
            for m in PER_QUERY:
                if m in pq and m in bq and len(pq[m]) == len(bq[m]):
                    r = paired_bootstrap(np.mean, np.asarray(pq[m]), np.asarray(bq[m]), n_resamples=2000, seed=0)
                    out.setdefault(name, {}).setdefault(f"minus_{base}", {})[m] = {
                        "diff": float(r.diff), "ci": [float(r.low), float(r.high)]}
    return out


def table(systems: dict[str, Any], comparisons: dict[str, Any]) -> str:
    cols = [*PER_QUERY, "flores_bitext_acc", "dev_sts_en_pearson", "dev_sts_lrl_pearson"]
    lines = ["| system | " + " | ".join(c.replace("_ndcg10", "") for c in cols) + " | train s | peak RSS MiB |",
             "|---" * (len(cols) + 3) + "|"]
    for name, s in systems.items():
        if "eval" not in s:
            continue
        p = s["eval"]["pooled"]
        cells = []
        for c in cols:
            v = p.get(c)
            cell = "-" if v is None else f"{100 * v:.1f}"
            d = comparisons.get(name, {}).get("minus_frozen", {}).get(c)
            if d is not None:
                cell += f" ({100 * d['diff']:+.1f} [{100 * d['ci'][0]:+.1f}, {100 * d['ci'][1]:+.1f}])"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {s.get('train_wall_s', '-')} | {s.get('peak_rss_mib', '-')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--systems", default="frozen", help="comma list of frozen, lora, st_distill")
    ap.add_argument("--grid", default="[{}]", help="JSON list of LoRA configs (overrides of DEFAULTS)")
    ap.add_argument("--langs", default=None, help="comma list (default: params.yaml shared.languages)")
    ap.add_argument("--flores-dir", default=os.environ.get("LIRA_FLORES_DIR"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--flores-cap", type=int, default=100, help="sentences per fold and language")
    ap.add_argument("--report-flores-dev", action="store_true", help="also score FLORES dev (reporting only)")
    ap.add_argument("--flores-dev-corpus", type=int, default=200, help="FLORES train sentences per language as the dev report's corpus")
    ap.add_argument("--st-epochs", type=int, default=1)
    ap.add_argument("--st-batch", type=int, default=64)
    ap.add_argument("--st-lr", type=float, default=2e-5)
    ap.add_argument("--tag", default="", help="suffix for the system names written")
    ap.add_argument("--out", default="recipe")
    ap.add_argument("--cache", default=str(ROOT / ".cache" / "lira"))
    ap.add_argument("--merge", default=None, help="comma list of result names to merge into --out (no runs)")
    args = ap.parse_args(argv)
    if args.merge:
        merge(args.merge.split(","), args.out)
        return

    import yaml

    from lira.encoders import Encoder, EncoderSettings

    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    langs = args.langs.split(",") if args.langs else list(params["shared"]["languages"])
    enc_p = params["shared"]["encoders"]["lrl"]
    settings = EncoderSettings(spec=enc_p["spec"], max_length=enc_p["max_length"], batch_size=64,
                               query_prefix=enc_p["query_prefix"], passage_prefix=enc_p["passage_prefix"])
    cache_dir = Path(args.cache)
    log = lambda s: print(s, flush=True)
    sample = load_sample(langs)
    flores = None
    if args.flores_dir and Path(args.flores_dir).is_dir():
        flores = load_flores(Path(args.flores_dir), langs, args.folds, 0, 1, args.flores_cap)
    else:
        log("FLORES not found (LIRA_FLORES_DIR): FLORES measures skipped")
    flores_dev = load_flores_dev(Path(args.flores_dir), langs, args.flores_dev_corpus) if args.report_flores_dev and flores is not None else None
    log(f"sample: {len(sample['train'])} train pairs, {len(sample['dev_queries'])} dev queries, "
        f"{len(sample['items'])} items, {len(sample['sts_dev'])} dev STS pairs; langs {langs}")

    base = Encoder(settings, cache_dir)
    base.freeze()
    frozen = FrozenCache(base, cache_dir / "recipe" / f"frozen-{base.settings.key}.npz")
    results: dict[str, Any] = {}
    load0 = C.loadavg()
    systems = args.systems.split(",")

    def report_dev(name: str, emb: Embedder) -> None:
        if flores_dev is not None:
            r = evaluate(emb, {**sample, "dev_queries": [], "sts_dev": []}, flores_dev, langs, what="select")
            results[name]["flores_dev_report"] = {k: v for k, v in r["pooled"].items() if k.startswith("flores")}
            results[name]["flores_dev_per_lang"] = {lg: {k: v for k, v in d.items() if k.startswith("flores")}
                                                    for lg, d in r["per_lang"].items()}

    if "frozen" in systems:
        t0 = time.perf_counter()
        emb = Embedder("frozen", frozen, frozen)
        results["frozen" + args.tag] = {"eval": evaluate(emb, sample, flores, langs), "eval_s": time.perf_counter() - t0}
        results["frozen" + args.tag]["selection_score"] = selection_score(results["frozen" + args.tag]["eval"]["pooled"])
        report_dev("frozen" + args.tag, emb)
        log(f"frozen: {_fmt(results['frozen' + args.tag]['eval']['pooled'])}")
    if "lora" in systems:
        for i, over in enumerate(json.loads(args.grid)):
            cfg = {**DEFAULTS, **over}
            name = f"lora{args.tag}[{','.join(f'{k}={v}' for k, v in over.items())}]"
            log(f"{name}: {cfg}")
            r = train_lora(cfg, settings, cache_dir, frozen, sample, flores, langs, log)
            enc = r.pop("_encoder")
            results[name] = r
            report_dev(name, Embedder(name, lambda t, k, e=enc: live_embed(e, t, k), frozen))
            log(f"{name}: best epoch {r['best_epoch']}  {_fmt(r['eval']['pooled'])}  train {r['train_wall_s']} s, "
                f"peak RSS {r['peak_rss_mib']} MiB")
            del enc
    if "st_distill" in systems:
        from lira.eval.st_distill import sentence_transformer, st_distill, st_embed

        folder = Path(base.model.name_or_path) if Path(str(base.model.name_or_path)).is_dir() else None
        if folder is None:
            from lira.encoders.base import resolve_spec

            folder = Path(resolve_spec(settings.spec, cache_dir))
        teacher = sentence_transformer(folder, settings.max_length)
        pairs = [(PREFIX[k] + a, PREFIX[k] + e) for a, k, e, _ in sample["train"]]
        dist = st_distill(teacher, pairs, epochs=args.st_epochs, batch_size=args.st_batch, lr=args.st_lr)
        student = dist.student

        def st_fn(texts: list[str], kind: str) -> np.ndarray:
            return unit(st_embed(student, [PREFIX[kind] + t for t in texts]).numpy())

        # sanity: the teacher through sentence-transformers = lira's frozen embedding
        probe = [p[0] for p in sample["train"][:16]]
        agree = float((unit(st_embed(teacher, [PREFIX["query"] + t for t in probe]).numpy()) * frozen(probe, "query")).sum(1).min())
        name = "st_distill" + args.tag
        results[name] = {"eval": evaluate(Embedder(name, st_fn, st_fn), sample, flores, langs),
                         "train_wall_s": round(dist.wall_s, 1), "peak_rss_mib": round(dist.peak_rss_mib, 1),
                         "steps": dist.steps, "settings": dist.settings, "teacher_vs_lira_cos_min": agree,
                         "loss_first_last": [dist.losses[0], dist.losses[-1]]}
        report_dev(name, Embedder(name, st_fn, st_fn))
        log(f"{name}: {_fmt(results[name]['eval']['pooled'])}  train {dist.wall_s:.0f} s, peak RSS {dist.peak_rss_mib:.0f} MiB")

    path = C.result_path(args.out)
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    runs = doc.get("runs", [])
    runs.append({"command": C.command(), "load_start": load0, "load_end": C.loadavg(), "date": C.machine_info()["date"],
                 "git": C.git_state()})
    systems_doc = doc.get("systems", {})
    systems_doc.update(results)
    C.write_result(args.out, {"systems": systems_doc, "runs": runs,
                              "sizes": {"train_pairs": len(sample["train"]), "dev_queries": len(sample["dev_queries"]),
                                        "items": len(sample["items"]), "sts_dev": len(sample["sts_dev"]),
                                        "flores_per_lang": {lg: (len(f["q"]["text"]), len(f["c"]["text"]))
                                                            for lg, f in (flores or {}).items()}}})
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
