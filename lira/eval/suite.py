"""The systems the evaluate stage compares, each scored on the test split.

* LiRA (the ``full`` model folder), the same model on its LRL path alone, and every ablation;
* the baselines (:mod:`lira.eval.systems`): the frozen encoder, translate-test, and an
  MSE-distilled student trained here on the same train texts;
* cross-lingual retrieval (LRL query -> the items' English references) for LiRA, its LRL path
  alone and the frozen encoder.

Reads the model folders and the feature cache; returns scores (:func:`lira.eval.scoring.score_all`).
Each function takes the ``shared`` section and the config sections it reads (``evaluate``, the
methods' configs for the ablations' variants); never the whole params.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lira.arca.config import ArcaConfig
from lira.config import EvaluateParams, SharedParams
from lira.encoders import features_for
from lira.eval.scoring import retrieval_scores, score_all
from lira.eval.systems import apply_student, train_distill
from lira.lasr.config import LasrConfig
from lira.lasr.net import LiraNet
from lira.model import load_net
from lira.train import arca_run
from lira.train.arca_run import ArcaInputs
from lira.train.lasr import LasrData, embed_rows
from lira.train.lasr_run import lasr_data, variant_choice, variant_configs
from lira.train.tables import text_features

SYSTEM_LIRA = "lira"


@dataclass
class Trained:
    """LiRA's scores and what the diagnostics and baselines read from it."""

    results: dict[str, dict]  # system name -> score_all
    net: LiraNet
    ld: LasrData
    choice: np.ndarray  # the full model's translation per text (-1: none)
    adapter: Path | None  # its LRL LoRA adapter, if any
    timings: dict[str, float] = field(default_factory=dict)
    z: dict[str, np.ndarray] = field(default_factory=dict)  # "lira" / "lira_lrl_only" -> z per text row


def model_inputs(shared: SharedParams, root: Path, inputs: ArcaInputs, folder: Path, meta: dict) -> ArcaInputs:
    """The stage inputs as this model reads them: LRL features through its LoRA adapter, if it has one."""
    adapter = meta["encoders"]["lrl"].get("adapter")
    return arca_run.with_lrl_adapter(shared, root, inputs, folder / adapter if adapter else None, progress=False)


def _variant(shared: SharedParams, arca: ArcaConfig, lasr: LasrConfig, root: Path, inputs: ArcaInputs, lasr_dir: Path,
             variant: str) -> tuple[LiraNet, LasrData, np.ndarray, dict]:
    folder = lasr_dir / variant
    if variant != "full" and not (folder / "lira_model.json").exists():
        raise FileNotFoundError(f"{folder}: ablation {variant!r} is enabled but was not trained; rerun train_lasr")
    net, actor, meta = load_net(folder)
    arca_cfg, _ = variant_configs(arca, lasr, variant)
    choice = variant_choice(inputs, actor, arca_cfg)
    return net, lasr_data(shared, root, model_inputs(shared, root, inputs, folder, meta), choice), choice, meta


def trained_systems(shared: SharedParams, arca: ArcaConfig, lasr: LasrConfig, root: Path, inputs: ArcaInputs,
                    ks: list[int]) -> Trained:
    """LiRA, LiRA on its LRL path alone, and each ablation of ``lasr.ablations`` (``train_lasr``)."""
    lasr_dir = root / shared.paths.lasr
    net, ld, choice, meta = _variant(shared, arca, lasr, root, inputs, lasr_dir, "full")
    adapter = meta["encoders"]["lrl"].get("adapter")
    all_rows = torch.arange(len(inputs.texts))
    t0 = time.perf_counter()
    z_lira = embed_rows(net, ld, all_rows, use_english=True).numpy()
    timings = {"lira_inference_s_per_1k_texts": (time.perf_counter() - t0) / len(all_rows) * 1000}
    results = {SYSTEM_LIRA: score_all(z_lira, ld, ks)}
    z_lrl = embed_rows(net, ld, all_rows, use_english=False).numpy()
    results["lira_lrl_only"] = score_all(z_lrl, ld, ks)
    for variant in lasr.ablations:
        vnet, vld, _, vmeta = _variant(shared, arca, lasr, root, inputs, lasr_dir, variant)
        z = embed_rows(vnet, vld, all_rows, use_english=vmeta["lasr"]["use_english"]).numpy()
        results[f"ablation:{variant}"] = score_all(z, vld, ks)
    return Trained(results, net, ld, choice, lasr_dir / "full" / adapter if adapter else None, timings,
                   {SYSTEM_LIRA: z_lira, "lira_lrl_only": z_lrl})


def crosslingual_systems(shared: SharedParams, root: Path, inputs: ArcaInputs, trained: Trained, ks: list[int]) -> dict[str, dict]:
    """LRL query -> English items: each test query against the English references (``en_ref``) of
    its language's items, embedded as anchor-language passages (LiRA: the English path alone, the
    head's anchor entry; frozen: the English encoder). Items without a reference leave the corpus.
    Returns system name -> :func:`lira.eval.scoring.retrieval_scores` ({} when no item has one)."""
    ld, net, texts = trained.ld, trained.net, inputs.texts
    if "en_ref" not in texts.columns:
        return {}
    refs = [texts["en_ref"].iloc[int(r)] for r in ld.item_text]
    ok = np.array([isinstance(t, str) and bool(t.strip()) for t in refs])
    if not ok.any():
        return {}
    f = features_for(shared, [refs[i] for i in np.flatnonzero(ok)], "en", "passage", root)
    zi_frozen = np.zeros((len(refs), f.mean.shape[1]), np.float32)
    zi_frozen[ok] = f.mean
    zi_lira = np.zeros((len(refs), net.head.d_in), np.float32)
    with torch.no_grad():
        net.eval()
        zi_lira[ok] = net.en_only(torch.from_numpy(f.slots)).numpy()
    _, lr_mean = text_features(shared, root, texts)
    out = {name: retrieval_scores(z, ld, ks, zi_lira, ok) for name, z in trained.z.items()}
    out["frozen"] = retrieval_scores(lr_mean, ld, ks, zi_frozen, ok)
    return out


def english_rows(shared: SharedParams, root: Path, inputs: ArcaInputs, net: LiraNet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every text row's English reference (``en_ref``) embedded by LiRA's English path (the head's
    anchor-language entry, as ``lira embed --lang en`` does) and by the frozen English encoder,
    with the row's own prefix kind. Returns (z_lira [N, d], z_frozen [N, H], has_ref [N] bool)."""
    from lira.train.inputs import kind_of

    texts = inputs.texts
    refs = texts["en_ref"].tolist() if "en_ref" in texts.columns else [None] * len(texts)
    ok = np.array([isinstance(t, str) and bool(t.strip()) for t in refs])
    kinds = texts["role"].map(kind_of).to_numpy(dtype=object)
    z_lira = np.zeros((len(texts), net.head.d_in), np.float32)
    z_frozen: np.ndarray | None = None
    for kind in dict.fromkeys(kinds[ok].tolist()):
        rows = np.flatnonzero(ok & (kinds == kind))
        f = features_for(shared, [refs[i] for i in rows], "en", kind, root)
        if z_frozen is None:
            z_frozen = np.zeros((len(texts), f.mean.shape[1]), np.float32)
        z_frozen[rows] = f.mean
        with torch.no_grad():
            net.eval()
            z_lira[rows] = net.en_only(torch.from_numpy(f.slots)).numpy()
    return z_lira, (z_frozen if z_frozen is not None else np.zeros((len(texts), 1), np.float32)), ok


def forgetting_systems(shared: SharedParams, root: Path, inputs: ArcaInputs, trained: Trained, ks: list[int]) -> dict[str, dict]:
    """English -> English on the sample's English references, LiRA's English path vs the frozen
    English encoder: whether training the shared space made LiRA forget English. Retrieval: each
    test query's reference against its language's items' references (items without one leave the
    corpus); STS: the test pairs whose both sides have a reference. Returns system name ->
    {"retrieval": :func:`lira.eval.scoring.retrieval_scores`, "sts": pred/gold/lang} ({} without references)."""
    ld = trained.ld
    z_lira, z_frozen, ok = english_rows(shared, root, inputs, trained.net)
    if not ok.any():
        return {}
    item_ok = ok[ld.item_text.numpy()]
    t = np.flatnonzero(ld.sts_split == "test")
    a, b = ld.sts_a[t].numpy(), ld.sts_b[t].numpy()
    pair = ok[a] & ok[b]
    out = {}
    for name, z in (("lira", z_lira), ("frozen", z_frozen)):
        u = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        out[name] = {"retrieval": retrieval_scores(z, ld, ks, z[ld.item_text.numpy()], item_ok, text_ok=ok),
                     "sts": {"pred": (u[a[pair]] * u[b[pair]]).sum(1), "gold": ld.sts_score[t].numpy()[pair],
                             "lang": ld.lang[ld.sts_a[t]].numpy()[pair]}}
    return out


def baseline_systems(shared: SharedParams, cfg: EvaluateParams, root: Path, inputs: ArcaInputs, trained: Trained, ks: list[int],
                     batch_size: int) -> tuple[dict[str, dict], dict[str, float]]:
    """The ``cfg.baselines`` systems (params' ``evaluate``), scored on LiRA's test rows; the distilled
    student trains in batches of ``batch_size`` (the stage passes ``train_arca.batch_size``) and is
    saved under ``paths.distill``. Returns (system name -> score_all, timings)."""
    ld, choice = trained.ld, trained.choice
    results: dict[str, dict] = {}
    timings: dict[str, float] = {}
    _, lr_mean = text_features(shared, root, inputs.texts)
    if "frozen" in cfg.baselines:
        results["frozen"] = score_all(lr_mean, ld, ks)
    en_mean = None
    if {"translate_test", "mse_distill"} & set(cfg.baselines):
        has = choice >= 0
        trans = pd.DataFrame({"text": [inputs.ct.text[i, c] if c >= 0 else "" for i, c in enumerate(choice)], "role": inputs.texts["role"]})
        en_mean = np.zeros_like(lr_mean) if lr_mean.shape[1] == inputs.cand_slots.shape[-1] else np.zeros((len(trans), inputs.cand_slots.shape[-1]), np.float32)
        sub = trans[has].reset_index(drop=True)
        en_mean[has] = text_features(shared, root, sub, column="text", path="en")[1]
    if "translate_test" in cfg.baselines:
        # Without a translation the English path has nothing to read: fall back to the frozen LRL embedding.
        z_tt = np.where((choice >= 0)[:, None], en_mean, lr_mean) if en_mean.shape == lr_mean.shape else en_mean
        results["translate_test"] = score_all(z_tt, ld, ks)
    if "mse_distill" in cfg.baselines:
        train = np.flatnonzero((inputs.texts["split"] == "train").to_numpy() & (choice >= 0))
        t0 = time.perf_counter()
        student = train_distill(lr_mean[train], en_mean[train], cfg.distill_epochs, cfg.distill_lr, batch_size, shared.seed)
        timings["mse_distill_train_s"] = time.perf_counter() - t0
        out = root / shared.paths.distill
        out.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save_file

        # safetensors, not torch.save: nothing lira writes is a pickle
        save_file({k: v.contiguous() for k, v in student.state_dict().items()}, str(out / "student.safetensors"))
        results["mse_distill"] = score_all(apply_student(student, lr_mean), ld, ks)
    if "st_distill" in cfg.baselines:
        z, info = st_distill_system(shared, cfg, root, inputs, choice)
        results["st_distill"] = score_all(z, ld, ks)
        timings.update(info)
    return results, timings


def st_distill_system(shared: SharedParams, cfg: EvaluateParams, root: Path, inputs: ArcaInputs,
                      choice: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """The st_distill peer (:func:`lira.eval.st_distill.st_distill`) trained on the same train pairs
    as LiRA - each train text with the Actor's chosen translation, both with the text's prefix - and
    every text row embedded by the student. Returns (z [N, d], its train time and peak RSS)."""
    from lira.encoders import EncoderSettings, cache_dir
    from lira.encoders.base import resolve_spec
    from lira.eval.st_distill import sentence_transformer, st_distill, st_embed
    from lira.train.inputs import kind_of

    enc = EncoderSettings.of(shared.encoder("lrl"))
    texts = inputs.texts
    prefix = [enc.prefix(kind_of(r)) for r in texts["role"]]
    train = np.flatnonzero((texts["split"] == "train").to_numpy() & (choice >= 0))
    pairs = [(prefix[i] + texts["text"].iloc[i], prefix[i] + inputs.ct.text[i, choice[i]]) for i in train]
    folder = Path(resolve_spec(enc.spec, cache_dir(shared, root) / "models"))
    teacher = sentence_transformer(folder, enc.max_length)
    res = st_distill(teacher, pairs, epochs=cfg.st_distill_epochs, batch_size=cfg.st_distill_batch_size,
                     lr=cfg.st_distill_lr, seed=shared.seed, max_length=enc.max_length)
    z = st_embed(res.student, [p + t for p, t in zip(prefix, texts["text"].tolist())]).numpy()
    return z, {"st_distill_train_s": res.wall_s, "st_distill_peak_rss_mib": res.peak_rss_mib}


def external_systems(shared: SharedParams, root: Path, net: LiraNet, adapter: Path | None = None) -> dict[str, Any]:
    """Embedding functions for the external benchmarks: the trained LiRA model on its LRL path (an
    external benchmark brings no translations; through ``adapter`` when it has one) and the frozen
    encoder. The first is the reference the others are compared with."""

    def lira(texts: list[str], lang: str, kind: str, english: bool) -> np.ndarray:
        if lang not in shared.languages:
            raise ValueError(f"evaluate.external: language {lang!r} is not one of the model's {shared.languages}")
        li = torch.full((len(texts),), shared.languages.index(lang), dtype=torch.long)
        path = "en" if english else "lrl"
        feats = torch.from_numpy(features_for(shared, texts, path, kind, root, adapter=None if english else adapter).slots)
        with torch.no_grad():
            # English text takes the head's anchor-language entry, as `lira embed --lang en` does
            en_lang = None if net.head.anchor_index is not None else li
            return (net.en_only(feats, en_lang) if english else net.lrl_only(feats, li)).numpy()

    def frozen(texts: list[str], lang: str, kind: str, english: bool) -> np.ndarray:
        return features_for(shared, texts, "en" if english else "lrl", kind, root).mean

    return {"lira_lrl_only": lira, "frozen": frozen}


def gate_record_for(results: dict[str, dict], ld: LasrData, text: list[str]) -> dict:
    """The promotion gate's record: per-query values of every retrieval metric for LiRA and the frozen
    baseline, and the content hash of the test queries (their text) and qrels (the judged items' text),
    so that versions are compared only on the same test set."""
    from lira.tracking.model import gate_record, test_set_sha256

    q = np.flatnonzero(ld.query_split == "test")
    qids = results[SYSTEM_LIRA]["retrieval"]["qids"]
    queries = [(qid, text[int(ld.query_text[j])]) for qid, j in zip(qids, q)]
    qrels = {qid: {text[int(ld.item_text[i])]: r for i, r in ld.qrels[j].items()} for qid, j in zip(qids, q)}

    def per(name: str) -> dict[str, list[float]]:
        return {f"retrieval.{m}": v.tolist() for m, v in results[name]["retrieval"]["per_query"].items()}

    return gate_record(qids, per(SYSTEM_LIRA), {k: per(k) for k in ("frozen",) if k in results}, test_set_sha256(queries, qrels))
