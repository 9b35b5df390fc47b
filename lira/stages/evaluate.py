"""Stage 6, evaluate: LiRA vs baselines and ablations on the test split, with paired bootstrap CIs.

Per language and averaged: retrieval nDCG@10 / recall@k / MRR@10 (ranx), STS Pearson and
Spearman (scipy), multiple-choice accuracy; the paper's bound made measurable (eps1, an eps2
proxy, L_emp at P95 over delta in [3, 5], the bound beside the observed deviation); cost per
stage. Writes ``<paths.metrics>/evaluate.json``, ``<paths.plots>/per_language.{csv,png}``, the
MSE-distillation student under ``models/distill``, and (tracking on) registers the model and
runs the promotion gate.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lira.config import Params
from lira.eval import empirical_lipschitz, error_bound, paired_bootstrap, retrieval_metrics, scores_to_run, sts_metrics, translation_distortion
from lira.eval.external import evaluate_external
from lira.eval.systems import apply_student, train_distill, unit
from lira.io import write_json, write_text
from lira.lasr.net import LiraNet
from lira.stages import train_arca as arca_stage
from lira.stages.common import features_for, text_features
from lira.stages.train_lasr import VARIANTS, lasr_data
from lira.train.inputs import actor_inputs, selection
from lira.train.lasr import LasrData, embed_rows

SYSTEM_LIRA = "lira"
# evaluate logs its own MLflow run: the model is logged and registered under it.
LOGS_ITSELF = True


# ------------------------------------------------------------------------------------ task scores
def retrieval_scores(z: np.ndarray, ld: LasrData, ks: list[int]) -> dict[str, Any]:
    q = np.flatnonzero(ld.query_split == "test")
    zq, zi = z[ld.query_text[q].numpy()], z[ld.item_text.numpy()]
    scores = zq @ zi.T
    mask = ld.query_lang[q].numpy()[:, None] == ld.item_lang.numpy()[None, :]
    qids = [f"q{j:06d}" for j in q]
    run = scores_to_run(qids, [f"i{j:06d}" for j in range(len(zi))], scores, top_k=100, candidate_mask=mask)
    qrels = {f"q{j:06d}": {f"i{i:06d}": r for i, r in ld.qrels[j].items()} for j in q}
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


def score_all(z: np.ndarray, ld: LasrData, ks: list[int]) -> dict[str, Any]:
    return {"retrieval": retrieval_scores(z, ld, ks), "sts": sts_scores(z, ld), "mc": mc_scores(z, ld)}


# --------------------------------------------------------------------------------------- systems
def load_net(folder: Path) -> tuple[LiraNet, torch.nn.Module | None, dict]:
    """The trained net (and Actor) of a model folder; unlike LiraModel.load, no encoders: the stage has features."""
    from safetensors.torch import load_file

    from lira.arca import Actor
    from lira.model import verify_manifest

    verify_manifest(folder)  # the files train_lasr wrote, unchanged since
    meta = json.loads((folder / "lira_model.json").read_text())
    net = LiraNet.from_meta(meta)
    net.load_state_dict(load_file(str(folder / "net.safetensors")))
    net.eval()
    actor = None
    if meta.get("actor"):
        actor = Actor(meta["actor"]["features"], meta["actor"]["hidden"])
        actor.load_state_dict(load_file(str(folder / "actor.safetensors")))
        actor.eval()
    return net, actor, meta


def model_inputs(params: Params, root: Path, inputs: arca_stage.ArcaInputs, folder: Path, meta: dict) -> arca_stage.ArcaInputs:
    """The stage inputs as this model reads them: LRL features through its LoRA adapter, if it has one."""
    adapter = meta["encoders"]["lrl"].get("adapter")
    return arca_stage.with_lrl_adapter(params, root, inputs, folder / adapter if adapter else None, progress=False)


def variant_choice(params: Params, inputs: arca_stage.ArcaInputs, actor, variant: str) -> np.ndarray:  # noqa: ANN001
    sw, _ = VARIANTS[variant]
    feats, mask, _ = actor_inputs(inputs.ct, params, sw.get("use_llm"), sw.get("use_emb"))
    with torch.no_grad():
        probs = actor.log_probs(feats, mask).exp().numpy()
    return selection(inputs.ct, probs)[0]


def lipschitz_diagnostics(net: LiraNet, ld: LasrData, inputs: arca_stage.ArcaInputs, params: Params, root: Path, choice: np.ndarray) -> dict:
    """Per language: eps1, eps2 proxy, L_emp (P95, delta in [3,5]), the bound, the observed gap."""
    texts = inputs.texts
    rows = np.flatnonzero((texts["split"] == "test").to_numpy() & (choice >= 0) & texts["en_ref"].notna().to_numpy())
    if len(rows) == 0:
        return {}
    ref = text_features(params, root, texts.iloc[rows], column="en_ref", path="en")[1]
    chosen = np.stack([inputs.ct.text[r, choice[r]] for r in rows])
    chosen_mean = np.zeros_like(ref)
    for kind in ("query", "passage"):
        sel = np.flatnonzero(texts.iloc[rows]["role"].map(lambda r: "passage" if r == "item" else "query").to_numpy() == kind)
        if len(sel):
            chosen_mean[sel] = features_for(params, chosen[sel].tolist(), "en", kind, root).mean
    r = torch.as_tensor(rows)
    with torch.no_grad():
        e_lr, e_en = net.anchored(ld.lr[r], ld.en[r])
    s, d = e_lr.shape[1], e_lr.shape[2]
    lang = ld.lang[r]

    def f_for(li: int):
        def f(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                xt = torch.as_tensor(x, dtype=torch.float32).reshape(-1, s, d)
                return net.head.lrl_only(xt, torch.full((len(xt),), li, dtype=torch.long)).numpy()
        return f

    out = {}
    for li, lang_code in enumerate(params.shared.languages):
        sel = (lang == li).numpy()
        if sel.sum() < 2:
            continue
        x_lr = e_lr[sel].reshape(int(sel.sum()), -1).numpy()
        x_en = e_en[sel].reshape(int(sel.sum()), -1).numpy()
        f = f_for(li)
        eps1 = float(np.linalg.norm(x_lr - x_en, axis=1).mean())
        eps2 = translation_distortion(chosen_mean[sel], ref[sel])
        lip = empirical_lipschitz(f, x_lr, deltas=tuple(params.evaluate.lipschitz_deltas), seed=params.shared.seed)
        observed = float(np.linalg.norm(f(x_lr) - f(x_en), axis=1).mean())
        out[lang_code] = {"eps1": eps1, "eps2": eps2, "l_emp_p95": lip["l_emp"], "bound": error_bound(lip["l_emp"], eps1, eps2, 1.0),
                          "observed": observed}
    return out


def external_systems(params: Params, root: Path, net: LiraNet, adapter: Path | None = None) -> dict:
    """Embedding functions for the external benchmarks: the trained LiRA model (its LRL path through
    ``adapter`` when it has one) and the frozen encoder."""

    def lira(texts: list[str], lang: str, kind: str, english: bool) -> np.ndarray:
        if lang not in params.shared.languages:
            raise ValueError(f"evaluate.external: language {lang!r} is not one of the model's {params.shared.languages}")
        li = torch.full((len(texts),), params.shared.languages.index(lang), dtype=torch.long)
        path = "en" if english else "lrl"
        feats = torch.from_numpy(features_for(params, texts, path, kind, root, adapter=None if english else adapter).slots)
        with torch.no_grad():
            return (net.en_only(feats, li) if english else net.lrl_only(feats, li)).numpy()

    def frozen(texts: list[str], lang: str, kind: str, english: bool) -> np.ndarray:
        return features_for(params, texts, "en" if english else "lrl", kind, root).mean

    return {"lira": lira, "frozen": frozen}


def run(params: Params, root: Path) -> dict:
    cfg = params.evaluate
    langs = params.shared.languages
    inputs = arca_stage.prepare(params, root)
    lasr_dir = root / params.shared.paths.lasr
    ks = sorted(set(cfg.retrieval_k) | {10})
    results: dict[str, dict] = {}
    timings: dict[str, float] = {}

    net, actor, meta = load_net(lasr_dir / "full")
    choice = variant_choice(params, inputs, actor, "full")
    ld = lasr_data(params, root, model_inputs(params, root, inputs, lasr_dir / "full", meta), choice)
    adapter = meta["encoders"]["lrl"].get("adapter")
    all_rows = torch.arange(len(inputs.texts))
    t0 = time.perf_counter()
    z_lira = embed_rows(net, ld, all_rows, use_english=True).numpy()
    timings["lira_inference_s_per_1k_texts"] = (time.perf_counter() - t0) / len(all_rows) * 1000
    results[SYSTEM_LIRA] = score_all(z_lira, ld, ks)
    results["lira_lrl_only"] = score_all(embed_rows(net, ld, all_rows, use_english=False).numpy(), ld, ks)
    for variant in params.train_lasr.ablations:
        folder = lasr_dir / variant
        if not (folder / "lira_model.json").exists():
            raise FileNotFoundError(f"{folder}: ablation {variant!r} is enabled but was not trained; rerun train_lasr")
        vnet, vactor, vmeta = load_net(folder)
        vld = lasr_data(params, root, model_inputs(params, root, inputs, folder, vmeta), variant_choice(params, inputs, vactor, variant))
        z = embed_rows(vnet, vld, all_rows, use_english=vmeta["lasr"]["use_english"]).numpy()
        results[f"ablation:{variant}"] = score_all(z, vld, ks)

    _, lr_mean = text_features(params, root, inputs.texts)
    if "frozen" in cfg.baselines:
        results["frozen"] = score_all(lr_mean, ld, ks)
    en_mean = None
    if {"translate_test", "mse_distill"} & set(cfg.baselines):
        has = choice >= 0
        trans = pd.DataFrame({"text": [inputs.ct.text[i, c] if c >= 0 else "" for i, c in enumerate(choice)], "role": inputs.texts["role"]})
        en_mean = np.zeros_like(lr_mean) if lr_mean.shape[1] == inputs.cand_slots.shape[-1] else np.zeros((len(trans), inputs.cand_slots.shape[-1]), np.float32)
        sub = trans[has].reset_index(drop=True)
        en_mean[has] = text_features(params, root, sub, column="text", path="en")[1]
    if "translate_test" in cfg.baselines:
        # Without a translation the English path has nothing to read: fall back to the frozen LRL embedding.
        z_tt = np.where((choice >= 0)[:, None], en_mean, lr_mean) if en_mean.shape == lr_mean.shape else en_mean
        results["translate_test"] = score_all(z_tt, ld, ks)
    if "mse_distill" in cfg.baselines:
        train = np.flatnonzero((inputs.texts["split"] == "train").to_numpy() & (choice >= 0))
        t0 = time.perf_counter()
        student = train_distill(lr_mean[train], en_mean[train], cfg.distill_epochs, cfg.distill_lr, params.train_arca.batch_size, params.shared.seed)
        timings["mse_distill_train_s"] = time.perf_counter() - t0
        out = root / "models" / "distill"
        out.mkdir(parents=True, exist_ok=True)
        torch.save(student.state_dict(), out / "student.pt")
        results["mse_distill"] = score_all(apply_student(student, lr_mean), ld, ks)

    systems = {name: summarise(res, langs) for name, res in results.items()}
    comparisons = {
        name: compare(results[SYSTEM_LIRA], res, cfg.bootstrap_resamples, cfg.confidence, params.shared.seed)
        for name, res in results.items() if name != SYSTEM_LIRA
    }
    diagnostics = lipschitz_diagnostics(net, ld, inputs, params, root, choice)
    systems_ext = external_systems(params, root, net, lasr_dir / "full" / adapter if adapter else None)
    external = [evaluate_external(src, root, systems_ext) for src in cfg.external]
    cost = {}
    for f in sorted((root / params.shared.paths.metrics / "cost").glob("*.json")):
        cost[f.stem] = json.loads(f.read_text())
    cost["evaluate_timings"] = timings
    summary = {"systems": systems, "lira_minus": comparisons, "diagnostics": diagnostics, "external": external, "cost": cost,
               "n_test": {"queries": int(len(results[SYSTEM_LIRA]["retrieval"]["qids"])), "sts_pairs": int(len(results[SYSTEM_LIRA]["sts"]["pred"])),
                          "mc_items": int(len(results[SYSTEM_LIRA]["mc"]["correct"]))}}
    write_json(root / params.shared.paths.metrics / "evaluate.json", summary)
    write_plots(root / params.shared.paths.plots, systems, langs)
    gate = gate_for(results, ld, inputs)
    write_json(root / params.shared.paths.metrics / "gate.json", gate)
    if params.tracking.enabled:
        summary_for_log = {k: v for k, v in summary.items() if k != "cost"}
        registry = track_and_register(params, root, summary_for_log, gate)
    else:
        registry = {"tracking": "disabled"}
        write_json(root / params.shared.paths.metrics / "mlflow_run.json", registry)
    write_json(root / params.shared.paths.metrics / "registry.json", registry)
    return summary


def gate_for(results: dict[str, dict], ld: LasrData, inputs: arca_stage.ArcaInputs) -> dict:
    """The gate record: per-query values of every retrieval metric for LiRA and the frozen baseline,
    and the content hash of the test queries (their text) and qrels (the judged items' text)."""
    from lira.tracking.model import gate_record, test_set_sha256

    text = inputs.texts["text"].tolist()
    q = np.flatnonzero(ld.query_split == "test")
    qids = results[SYSTEM_LIRA]["retrieval"]["qids"]
    queries = [(qid, text[int(ld.query_text[j])]) for qid, j in zip(qids, q)]
    qrels = {qid: {text[int(ld.item_text[i])]: r for i, r in ld.qrels[j].items()} for qid, j in zip(qids, q)}

    def per(name: str) -> dict[str, list[float]]:
        return {f"retrieval.{m}": v.tolist() for m, v in results[name]["retrieval"]["per_query"].items()}

    return gate_record(qids, per(SYSTEM_LIRA), {k: per(k) for k in ("frozen",) if k in results},
                       test_set_sha256(queries, qrels))


def track_and_register(params: Params, root: Path, summary: dict, gate: dict) -> dict:
    """Log the evaluate run, register the trained LiRA model, and run the promotion gate."""
    from lira.encoders import release_encoders
    from lira.stages import stage_artifacts
    from lira.tracking.model import log_lira_model
    from lira.tracking.registry import promote
    from lira.tracking.runs import client, experiment_id, log_stage, tracking_uri

    run_id = log_stage(params, root, "evaluate", summary, artifacts=stage_artifacts("evaluate", params, root))
    # Every feature is computed by now, and logging loads the model (with its encoder) once more
    # to check its input example: do not hold a second copy of the encoder across that.
    release_encoders()
    version = log_lira_model(params, root, root / params.shared.paths.lasr / "full", run_id, gate)
    decision = promote(params, root=root, version=version)
    c = client(params, root)
    run = c.get_run(run_id)
    info = {"run_id": run_id, "tracking_uri": tracking_uri(params, root), "experiment_id": experiment_id(params, root, c),
            "parent_run_id": run.data.tags.get("mlflow.parentRunId")}
    write_json(root / params.shared.paths.metrics / "mlflow_run.json", info)
    return {"registered_model": params.tracking.registered_model, "version": version, "promoted": decision.promoted,
            "decision": decision.message, "champion_alias": params.tracking.champion_alias, "gate": decision.as_dict(), **info}


def write_plots(folder: Path, systems: dict[str, dict], langs: list[str]) -> None:
    rows = []
    for name, s in systems.items():
        for lang in langs:
            pl = s["per_language"].get(lang, {})
            rows.append({"system": name, "lang": lang, "system_lang": f"{name}/{lang}", "ndcg10": pl.get("ndcg@10"),
                         "sts_pearson": pl.get("sts_pearson"), "mc_accuracy": pl.get("mc_accuracy")})
    df = pd.DataFrame(rows)
    write_text(folder / "per_language.csv", df.to_csv(index=False))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lira.io import atomic_path

    metrics = [("ndcg10", "retrieval nDCG@10"), ("sts_pearson", "STS Pearson"), ("mc_accuracy", "MC accuracy")]
    fig, axes = plt.subplots(1, 3, figsize=(18, 5))
    names = list(systems)
    width = 0.8 / max(len(names), 1)
    for ax, (col, title) in zip(axes, metrics):
        for k, name in enumerate(names):
            vals = [df[(df.system == name) & (df.lang == lang)][col].astype(float).fillna(0).iloc[0] for lang in langs]
            ax.bar(np.arange(len(langs)) + k * width, vals, width, label=name)
        ax.set_xticks(np.arange(len(langs)) + 0.4 - width / 2, langs)
        ax.set_title(title)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    with atomic_path(folder / "per_language.png") as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
