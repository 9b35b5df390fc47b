"""Stage 5, train_lasr: the LaSR fusion head on Arca's anchored paths, plus every enabled ablation.

Writes one self-contained LiRA model folder per system under ``<paths.lasr>/<variant>/`` (the
format :class:`lira.model.LiraModel` loads), ``<paths.metrics>/lasr.json`` and the training curve
``<paths.plots>/lasr_curve.csv``. Ablations that change Arca (no LLM critic, no embedding critic,
separate adaptors) retrain Arca in-process with the switch flipped; all else is equal. With LoRA on
the LRL encoder, each model folder carries its Arca's adapter (``lora_lrl/``) and LaSR trains on
the LRL path read through it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lira.arca import Actor, AnchorAdaptors
from lira.config import Params
from lira.encoders.lora import adapter_sha256
from lira.io import write_json, write_text
from lira.lasr.head import LaSRHead
from lira.lasr.net import LiraNet
from lira.model import save_lira_model
from lira.stages import train_arca as arca_stage
from lira.stages.common import lang_index, prepared
from lira.train.arca import adaptor_width
from lira.train.common import Checkpointer, run_key
from lira.train.inputs import selection
from lira.train.lasr import LasrConfig, LasrData, LasrResult, retrieval_eval, train_lasr

def lasr_config(params: Params, **override) -> LasrConfig:
    c = params.train_lasr
    cfg = LasrConfig(**{k: getattr(c, k) for k in LasrConfig.__dataclass_fields__ if hasattr(c, k)}, seed=params.shared.seed)
    for k, v in override.items():
        setattr(cfg, k, v)
    return cfg


def lasr_data(params: Params, root: Path, inputs: arca_stage.ArcaInputs, choice: np.ndarray) -> LasrData:
    """Task tables -> index tensors over the text rows of ``inputs`` (English slots of the chosen translation)."""
    texts = inputs.texts
    row = {t: i for i, t in enumerate(texts["text_id"])}
    en = np.zeros_like(inputs.cand_slots[:, 0])
    has = choice >= 0
    en[has] = inputs.cand_slots[np.flatnonzero(has), choice[has]]
    items = prepared(params, root, "items")
    queries = prepared(params, root, "queries")
    qrels = prepared(params, root, "qrels")
    item_row = {iid: j for j, iid in enumerate(items["item_id"])}
    per_query: dict[str, dict[int, int]] = {}
    for q, i, r in qrels[["query_id", "item_id", "relevance"]].itertuples(index=False):
        if i in item_row:
            per_query.setdefault(q, {})[item_row[i]] = int(r)
    queries = queries[queries["query_id"].isin(per_query)].reset_index(drop=True)
    lidx = lang_index(params, texts)
    sts = prepared(params, root, "sts")
    mc = prepared(params, root, "mc")
    width = int(mc["choice_ids"].map(len).max()) if len(mc) else 0
    choices = torch.full((len(mc), width), -1, dtype=torch.long)
    for k, ids in enumerate(mc["choice_ids"]):
        choices[k, : len(ids)] = torch.tensor([row[t] for t in ids])
    t = lambda a: torch.as_tensor(np.array(a), dtype=torch.long)  # noqa: E731  (a copy: pandas arrays are read-only)
    return LasrData(
        lr=torch.from_numpy(inputs.lr_slots), en=torch.from_numpy(en), has_en=torch.from_numpy(has),
        lang=t(lidx),
        item_text=t([row[x] for x in items["text_id"]]), item_lang=t(lidx[[row[x] for x in items["text_id"]]]),
        query_text=t([row[x] for x in queries["text_id"]]), query_lang=t(lidx[[row[x] for x in queries["text_id"]]]),
        query_split=queries["split"].to_numpy(dtype=object), qrels=[per_query[q] for q in queries["query_id"]],
        sts_a=t([row[x] for x in sts["text_id_a"]]), sts_b=t([row[x] for x in sts["text_id_b"]]),
        sts_score=torch.tensor(sts["score"].to_numpy(), dtype=torch.float32), sts_split=sts["split"].to_numpy(dtype=object),
        mc_q=t([row[x] for x in mc["question_id"]]), mc_choices=choices, mc_answer=t(mc["answer"]),
        mc_split=mc["split"].to_numpy(dtype=object),
    )


def build_net(params: Params, adaptors: AnchorAdaptors, cfg: LasrConfig) -> LiraNet:
    torch.manual_seed(cfg.seed)
    d_in = adaptors.adaptor.d if adaptors.shared else adaptors.adaptor_lr.d
    head = LaSRHead(cfg.d_model, len(params.shared.languages), params.shared.s_feat, n_layers=cfg.n_layers,
                    n_heads=cfg.n_heads, dropout=cfg.dropout, path_dropout=cfg.path_dropout if cfg.use_english else 0.0,
                    d_in=d_in, residual=cfg.residual)
    return LiraNet(adaptors, head)


def model_meta(
    params: Params, arca_cfg: dict, cfg: LasrConfig, variant: str, agents: list[str], actor: Actor | None,
    adapter_sha: str | None = None,
) -> dict:
    encoders = params.resolved()["shared"]["encoders"]
    if adapter_sha is not None:  # LiraModel.load merges it into the LRL encoder
        encoders["lrl"] = {**encoders["lrl"], "adapter": arca_stage.LORA_DIR, "adapter_sha256": adapter_sha}
    return {
        "variant": variant, "languages": params.shared.languages, "s_feat": params.shared.s_feat,
        "encoders": encoders, "arca": arca_cfg, "agents": agents,
        "lasr": {"d_model": cfg.d_model, "residual": cfg.residual, "n_layers": cfg.n_layers, "n_heads": cfg.n_heads,
                 "dropout": cfg.dropout, "use_english": cfg.use_english},
        "actor": {"features": int(actor.n_features), "hidden": params.train_arca.actor_hidden} if actor is not None else None,
    }


VARIANTS = {
    # name -> (arca switches, lasr overrides)
    "full": ({}, {}),
    "no_queue": ({}, {"corr_queue": 0, "doc_queue": 0}),
    "no_llm_critic": ({"use_llm": False}, {}),
    "no_embedding_critic": ({"use_emb": False}, {}),
    "separate_adaptors": ({"shared": False}, {}),
    "drop_english": ({}, {"use_english": False}),
}


def train_variant(params: Params, root: Path, inputs: arca_stage.ArcaInputs, variant: str, progress: bool = True) -> tuple[LasrResult, dict]:
    arca_sw, lasr_over = VARIANTS[variant]
    use_llm, use_emb = arca_sw.get("use_llm"), arca_sw.get("use_emb")
    cfg_over = {"shared": arca_sw["shared"]} if "shared" in arca_sw else {}
    result, data = arca_stage.fit(params, root, inputs, use_llm=use_llm, use_emb=use_emb, progress=False, **cfg_over)
    probs = arca_stage.actor_probs(result, data)
    choice, _ = selection(inputs.ct, probs)
    folder = root / params.shared.paths.lasr / variant
    adapter = arca_stage.save_lora(folder, result)
    adapter_sha = adapter_sha256(adapter) if adapter else None
    ld = lasr_data(params, root, arca_stage.with_lrl_adapter(params, root, inputs, adapter, progress=progress), choice)
    cfg = lasr_config(params, **lasr_over)
    net = build_net(params, result.adaptors, cfg)
    key = run_key("lasr", variant, cfg.__dict__, params.train_arca.model_dump(), params.resolved()["shared"]["encoders"],
                  params.shared.s_feat, adapter_sha, inputs.fingerprint(), choice.tolist())
    ck = Checkpointer(root / params.shared.paths.cache / "checkpoints" / "lasr", key)
    res = train_lasr(ld, net, cfg, checkpointer=ck, progress=progress)
    in_lr, in_en = int(inputs.lr_slots.shape[-1]), int(inputs.cand_slots.shape[-1])
    arca_cfg = {"in_dim_lr": in_lr, "in_dim_en": in_en, "d": adaptor_width(in_lr, in_en, params.train_arca.d),
                "residual": params.train_arca.residual, "hidden": params.train_arca.adaptor_hidden,
                "shared": cfg_over.get("shared", params.train_arca.shared_adaptor), "dropout": params.train_arca.dropout}
    meta = model_meta(params, arca_cfg, cfg, variant, inputs.ct.agents, result.actor, adapter_sha)
    save_lira_model(folder, res.net, meta, result.actor)
    dev = retrieval_eval(res.net, ld, "dev", use_english=cfg.use_english)
    return res, {"best_epoch": res.best_epoch, "epochs_run": len(res.history), "dev_ndcg10": dev["ndcg"]}


def _variant_job(params: Params, root: Path, variant: str, threads: int) -> tuple[list, dict]:
    """One variant in a worker process (spawned: a clean torch, no forked OpenMP state). The worker
    reads its own inputs (cached features, no encoder): cheaper than pickling them from the parent,
    which then holds none of them."""
    from lira.runtime import seed_everything

    torch.set_num_threads(threads)
    seed_everything(params.shared.seed)
    inputs = arca_stage.prepare(params, root, progress=False)
    res, info = train_variant(params, root, inputs, variant, progress=False)
    return res.history, info


def train_variants(params: Params, root: Path, variants: list[str]) -> dict[str, tuple[list, dict]]:
    """variant -> (LaSR history, info); ``train_lasr.workers`` of them at once.

    Every variant seeds itself, so the set of results does not depend on the schedule; a variant's
    numbers can differ in the last float bits from a run with another thread count.
    """
    workers = min(params.train_lasr.workers, len(variants))
    if workers <= 1:
        inputs = arca_stage.prepare(params, root)
        out = {}
        for v in variants:
            res, info = train_variant(params, root, inputs, v)
            out[v] = (res.history, info)
        return out
    # The features every worker reads must exist first, or each would compute them (and load the
    # encoder) on its own.
    arca_stage.prepare(params, root)
    from lira.encoders import release_encoders

    release_encoders()
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    threads = max(1, params.shared.threads // workers)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_variant_job, params, root, v, threads): v for v in variants}
        done = {}
        for f in tqdm(as_completed(futures), total=len(futures), desc=f"train_lasr ({workers} workers)", unit="variant"):
            done[futures[f]] = f.result()
    return {v: done[v] for v in variants}


def run(params: Params, root: Path) -> dict:
    variants = ["full", *params.train_lasr.ablations]
    trained = train_variants(params, root, variants)
    summary: dict = {"variants": {v: info for v, (_, info) in trained.items()}}
    curve = pd.DataFrame(trained["full"][0])
    summary["dev_ndcg10"] = summary["variants"]["full"]["dev_ndcg10"]
    write_json(root / params.shared.paths.metrics / "lasr.json", summary)
    write_text(root / params.shared.paths.plots / "lasr_curve.csv", curve.to_csv(index=False))
    return summary
