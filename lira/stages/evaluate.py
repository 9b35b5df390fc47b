"""Stage 6, evaluate: LiRA vs baselines and ablations on the test split, with paired bootstrap CIs.

Per language and averaged: retrieval nDCG@10 / recall@k / MRR@10 (ranx), STS Pearson and
Spearman (scipy), multiple-choice accuracy; the paper's bound made measurable (eps1, an eps2
proxy, L_emp at P95 over delta in [3, 5], the bound beside the observed deviation); cost per
stage; cross-lingual retrieval (LRL query -> the items' English references). Writes ``<paths.metrics>/evaluate.json``, ``gate.json`` and the headline folder ``headline/`` (what
``dvc metrics show`` prints), ``<paths.plots>/per_language.{csv,png}`` and ``systems.csv``,
the MSE-distillation student under ``<paths.distill>``, and (tracking on) registers the model and
runs the promotion gate. The systems are built in :mod:`lira.eval.suite`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lira.config import Params
from lira.eval.bootstrap import paired_bootstrap
from lira.eval.bound import lipschitz_diagnostics
from lira.eval.external import evaluate_external, external_by_name
from lira.eval.headline import headline
from lira.eval.plots import write_plots
from lira.eval.scoring import compare, crosslingual_summary, forgetting_summary, summarise
from lira.eval.suite import (
    SYSTEM_LIRA,
    baseline_systems,
    crosslingual_systems,
    external_systems,
    forgetting_systems,
    gate_record_for,
    trained_systems,
)
from lira.io import publish_dir, write_json
from lira.train.arca_run import load_inputs

METRICS = ["evaluate.json", "gate.json", "headline"]
PLOTS = ["per_language.csv", "systems.csv", "per_language.png"]
# evaluate logs its own MLflow run: the model is logged and registered under it.
LOGS_ITSELF = True


def write_headline(folder: Path, summary: dict) -> None:
    """The headline files (:func:`lira.eval.headline.headline`), published as one folder: a system
    that is gone from the summary leaves no stale file behind."""
    with publish_dir(folder) as out:
        for rel, row in headline(summary).items():
            write_json(out / rel, row)


def run(params: Params, root: Path) -> dict:
    cfg, langs, seed = params.evaluate, params.shared.languages, params.shared.seed
    metrics_dir = root / params.shared.paths.metrics
    inputs = load_inputs(params.shared, root)
    ks = sorted(set(cfg.retrieval_k) | {10})
    trained = trained_systems(params.shared, params.train_arca, params.train_lasr, root, inputs, ks)
    baselines, baseline_timings = baseline_systems(params.shared, cfg, root, inputs, trained, ks,
                                                    params.train_arca.batch_size)
    results = {**trained.results, **baselines}

    systems = {name: summarise(res, langs) for name, res in results.items()}
    comparisons = {
        name: compare(results[SYSTEM_LIRA], res, cfg.bootstrap_resamples, cfg.confidence, seed)
        for name, res in results.items() if name != SYSTEM_LIRA
    }
    xl = crosslingual_systems(params.shared, root, inputs, trained, ks)
    crosslingual = {name: crosslingual_summary(res, langs) for name, res in xl.items()}
    xl_minus = {
        name: {"retrieval.ndcg@10": paired_bootstrap(
            np.mean, xl[SYSTEM_LIRA]["per_query"]["ndcg@10"], res["per_query"]["ndcg@10"],
            n_resamples=cfg.bootstrap_resamples, confidence=cfg.confidence, seed=seed).as_dict()}
        for name, res in xl.items() if name != SYSTEM_LIRA and len(res["qids"])
    }
    forgetting = forgetting_summary(forgetting_systems(params.shared, root, inputs, trained, ks), langs, cfg.bootstrap_resamples,
                                    cfg.confidence, seed)
    diagnostics = lipschitz_diagnostics(trained.net, trained.ld, inputs, params.shared, root, trained.choice,
                                        cfg.lipschitz_deltas)
    systems_ext = external_systems(params.shared, root, trained.net, trained.adapter)
    external = external_by_name(evaluate_external(src, root, systems_ext, cfg.bootstrap_resamples, cfg.confidence, seed)
                                for src in cfg.external)
    cost = {f.stem: json.loads(f.read_text()) for f in sorted((metrics_dir / "cost").glob("*.json"))}
    cost["evaluate_timings"] = {**trained.timings, **baseline_timings}
    lira = results[SYSTEM_LIRA]
    summary = {"systems": systems, "lira_minus": comparisons,
               "crosslingual": {"definition": "test LRL queries -> the English references (en_ref) of their language's items",
                                "systems": crosslingual, "lira_minus": xl_minus},
               "forgetting": forgetting,
               "diagnostics": diagnostics, "external": external, "cost": cost,
               "n_test": {"queries": len(lira["retrieval"]["qids"]), "sts_pairs": len(lira["sts"]["pred"]),
                          "mc_items": len(lira["mc"]["correct"])}}
    write_json(metrics_dir / "evaluate.json", summary)
    write_headline(metrics_dir / "headline", summary)
    write_plots(root / params.shared.paths.plots, systems, langs)
    gate = gate_record_for(results, trained.ld, inputs.texts["text"].tolist())
    write_json(metrics_dir / "gate.json", gate)
    if params.tracking.enabled:
        from lira.stages import stage_artifacts
        from lira.tracking.publish import track_and_register

        summary_for_log = {k: v for k, v in summary.items() if k != "cost"}
        registry = track_and_register(params.tracking, root, summary_for_log, gate, stage_artifacts("evaluate", params, root),
                                      config=params.resolved(), paths=params.shared.paths,
                                      resamples=cfg.bootstrap_resamples, confidence=cfg.confidence, seed=seed)
    else:
        registry = {"tracking": "disabled"}
        write_json(metrics_dir / "mlflow_run.json", registry)
    write_json(metrics_dir / "registry.json", registry)
    return summary
