"""LaSR on the pipeline's tables: its data, the variants (LiRA and its ablations), their training
and saved model folders. What train_lasr and evaluate share.

Each function takes the ``shared`` section and, to train, the two methods' configs (``train_arca``,
``train_lasr``); never the whole params."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from lira.arca import Actor, AnchorAdaptors
from lira.arca.config import ArcaConfig
from lira.config import SharedParams
from lira.encoders.lora import adapter_sha256
from lira.lasr.config import LasrConfig
from lira.lasr.head import LaSRHead
from lira.lasr.net import LiraNet
from lira.model import save_lira_model
from lira.train import arca_run
from lira.train.arca_run import ArcaInputs
from lira.train.common import Checkpointer, run_key
from lira.train.inputs import actor_inputs, selection
from lira.train.lasr import LasrData, LasrResult, retrieval_eval, train_lasr
from lira.train.tables import lang_index, prepared

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name -> (train_arca changes, train_lasr changes)
    "full": ({}, {}),
    "no_queue": ({}, {"corr_queue": 0, "doc_queue": 0}),
    "no_llm_critic": ({"use_llm_critic": False}, {}),
    "no_embedding_critic": ({"use_embedding_critic": False}, {}),
    "separate_adaptors": ({"shared_adaptor": False}, {}),
    "drop_english": ({}, {"use_english": False}),
}


def variant_configs(arca: ArcaConfig, lasr: LasrConfig, variant: str) -> tuple[ArcaConfig, LasrConfig]:
    """The two configs of a variant, built by validation (a change naming no field fails)."""
    arca_changes, lasr_changes = VARIANTS[variant]
    return arca.replaced(**arca_changes), lasr.replaced(**lasr_changes)


def lasr_data(shared: SharedParams, root: Path, inputs: ArcaInputs, choice: np.ndarray) -> LasrData:
    """Task tables -> index tensors over the text rows of ``inputs`` (English slots of the chosen translation)."""
    texts = inputs.texts
    row = {t: i for i, t in enumerate(texts["text_id"])}
    en = np.zeros_like(inputs.cand_slots[:, 0])
    has = choice >= 0
    en[has] = inputs.cand_slots[np.flatnonzero(has), choice[has]]
    items = prepared(shared, root, "items")
    queries = prepared(shared, root, "queries")
    qrels = prepared(shared, root, "qrels")
    item_row = {iid: j for j, iid in enumerate(items["item_id"])}
    per_query: dict[str, dict[int, int]] = {}
    for q, i, r in qrels[["query_id", "item_id", "relevance"]].itertuples(index=False):
        if i in item_row:
            per_query.setdefault(q, {})[item_row[i]] = int(r)
    queries = queries[queries["query_id"].isin(per_query)].reset_index(drop=True)
    lidx = lang_index(shared, texts)
    sts = prepared(shared, root, "sts")
    mc = prepared(shared, root, "mc")
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


def build_net(adaptors: AnchorAdaptors, cfg: LasrConfig, n_langs: int, s_feat: int, seed: int) -> LiraNet:
    torch.manual_seed(seed)
    head = LaSRHead(cfg.d_model, n_langs, s_feat, n_layers=cfg.n_layers, n_heads=cfg.n_heads, dropout=cfg.dropout,
                    path_dropout=cfg.path_dropout if cfg.use_english else 0.0, d_in=adaptors.d, residual=cfg.residual,
                    anchor_lang=True)
    return LiraNet(adaptors, head)


def model_meta(shared: SharedParams, variant: str, agents: list[str], adapter_sha: str | None = None) -> dict:
    """What a model folder records beside its parts' own configs (see :func:`lira.model.save_lira_model`)."""
    encoders = shared.resolved_encoders()
    if adapter_sha is not None:  # LiraModel.load merges it into the LRL encoder
        encoders["lrl"] = {**encoders["lrl"], "adapter": arca_run.LORA_DIR, "adapter_sha256": adapter_sha}
    return {"variant": variant, "languages": shared.languages, "anchor_language": shared.anchor_language,
            "s_feat": shared.s_feat,
            "encoders": encoders, "agents": agents}


def variant_choice(inputs: ArcaInputs, actor: Actor, arca_cfg: ArcaConfig) -> np.ndarray:
    """The translation an Actor picks per text (-1 where none is valid), with its variant's critic switches."""
    feats, mask, _ = actor_inputs(inputs.ct, arca_cfg)
    with torch.no_grad():
        probs = actor.log_probs(feats, mask).exp().numpy()
    return selection(inputs.ct, probs)[0]


def train_variant(
    shared: SharedParams, arca: ArcaConfig, lasr: LasrConfig, root: Path, inputs: ArcaInputs, variant: str, out: Path,
    progress: bool = True,
) -> tuple[LasrResult, dict]:
    """Train one variant of the configs ``arca`` / ``lasr`` and write its model folder ``out / variant``."""
    arca_cfg, cfg = variant_configs(arca, lasr, variant)
    seed = shared.seed
    result, data = arca_run.fit(shared, root, inputs, arca_cfg, progress=False)
    choice, _ = selection(inputs.ct, arca_run.actor_probs(result, data))
    folder = out / variant
    adapter = arca_run.save_lora(folder, result)
    adapter_sha = adapter_sha256(adapter) if adapter else None
    ld = lasr_data(shared, root, arca_run.with_lrl_adapter(shared, root, inputs, adapter, progress=progress), choice)
    net = build_net(result.adaptors, cfg, len(shared.languages), shared.s_feat, seed)
    key = run_key("lasr", variant, cfg.model_dump(mode="json"), seed, arca_cfg.model_dump(mode="json"),
                  shared.resolved_encoders(), shared.s_feat, adapter_sha, inputs.fingerprint(), choice.tolist())
    ck = Checkpointer(root / shared.paths.cache / "checkpoints" / "lasr", key)
    res = train_lasr(ld, net, cfg, seed, checkpointer=ck, progress=progress)
    save_lira_model(folder, res.net, model_meta(shared, variant, inputs.ct.agents, adapter_sha), result.actor,
                    use_english=cfg.use_english)
    dev = retrieval_eval(res.net, ld, "dev", use_english=cfg.use_english)
    return res, {"best_epoch": res.best_epoch, "epochs_run": sum(r["epoch"] >= 0 for r in res.history), "dev_ndcg10": dev["ndcg"],
                 "dev_ndcg10_lrl_only": retrieval_eval(res.net, ld, "dev", use_english=False)["ndcg"]}


def _variant_job(shared: SharedParams, arca: ArcaConfig, lasr: LasrConfig, root: Path, variant: str, out: Path,
                 threads: int) -> tuple[list, dict]:
    """One variant in a worker process (spawned: a clean torch, no forked OpenMP state). The worker
    reads its own inputs (cached features, no encoder): cheaper than pickling them from the parent,
    which then holds none of them."""
    from lira.runtime import seed_everything

    torch.set_num_threads(threads)
    seed_everything(shared.seed)
    inputs = arca_run.load_inputs(shared, root, progress=False)
    res, info = train_variant(shared, arca, lasr, root, inputs, variant, out, progress=False)
    return res.history, info


def train_variants(shared: SharedParams, arca: ArcaConfig, lasr: LasrConfig, root: Path, variants: list[str],
                   out: Path) -> dict[str, tuple[list, dict]]:
    """variant -> (LaSR history, info); ``train_lasr.workers`` of them at once, each writing its model
    folder under ``out``.

    Every variant seeds itself, so the set of results does not depend on the schedule; a variant's
    numbers can differ in the last float bits from a run with another thread count.
    """
    for v in variants:  # every variant's configs are valid before any training starts
        variant_configs(arca, lasr, v)
    from lira.distributed import world_size

    # Under torchrun the ranks already share each variant's work: the variants then run one by one.
    workers = min(lasr.workers, len(variants)) if world_size() == 1 else 1
    if workers <= 1:
        inputs = arca_run.load_inputs(shared, root)
        results = {}
        for v in variants:
            res, info = train_variant(shared, arca, lasr, root, inputs, v, out)
            results[v] = (res.history, info)
        return results
    # The features every worker reads must exist first, or each would compute them (and load the
    # encoder) on its own.
    arca_run.load_inputs(shared, root)
    from lira.encoders import release_encoders

    release_encoders()
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    threads = max(1, shared.threads // workers)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_variant_job, shared, arca, lasr, root, v, out, threads): v for v in variants}
        done = {}
        for f in tqdm(as_completed(futures), total=len(futures), desc=f"train_lasr ({workers} workers)", unit="variant"):
            done[futures[f]] = f.result()
    return {v: done[v] for v in variants}
