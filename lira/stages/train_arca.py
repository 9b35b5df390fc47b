"""Stage 4, train_arca: the Actor picks a translation per text; the shared adaptor anchors to English.

Reads the prepared texts, the candidates and their critic scores, and cached frozen-encoder
features; writes ``<paths.arca>/`` (adaptors.safetensors, actor.safetensors, config.json,
selected.parquet, and with ``shared.encoders.lrl.lora.enabled`` the tuned LoRA adapter in
``lora_lrl/``), ``<paths.metrics>/arca.json`` and ``<paths.plots>/arca_curve.csv``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from lira import distributed
from lira.config import Params
from lira.io import write_json, write_parquet, write_text
from lira.train import arca_run
from lira.train.arca import build_modules, dev_report

METRICS = ["arca.json"]
PLOTS = ["arca_curve.csv"]


def run(params: Params, root: Path) -> dict:
    cfg, langs = params.train_arca, params.shared.languages
    inputs = arca_run.load_inputs(params.shared, root)
    data = arca_run.arca_data(inputs, cfg)
    untrained = dev_report(*build_modules(data, cfg, params.shared.seed), data, data.dev_idx, len(langs))
    result, data = arca_run.fit(params.shared, root, inputs, cfg)
    probs = arca_run.actor_probs(result, data)
    # models/arca is published whole (written beside it, then swapped in) or not at all; under
    # torchrun by rank 0 alone (every rank runs the block: re-encoding through the adapter is shared)
    with distributed.output_dir(root / params.shared.paths.arca) as out:
        adapter = arca_run.save_arca(out, result, data, params.shared, inputs)
        if adapter is not None:  # the trained report reads the LRL path through the tuned encoder
            data = replace(data, lr=torch.from_numpy(arca_run.with_lrl_adapter(params.shared, root, inputs, adapter).lr_slots))
        trained = dev_report(result.adaptors, result.actor, data, data.dev_idx, len(langs))
        sel = arca_run.selection_frame(inputs, probs)
        write_parquet(out / "selected.parquet", sel)
    if not distributed.is_main():
        return {"rank": distributed.rank(), "best_epoch": result.best_epoch}

    share = sel.groupby(["lang", "agent"]).size().unstack(fill_value=0)
    share = (share.T / share.sum(1)).T.round(4)
    per_lang = {}
    for li, lang in enumerate(langs):
        per_lang[lang] = {
            "dev_eps1_untrained": untrained["eps1"].get(li),
            "dev_eps1_trained": trained["eps1"].get(li),
            "dev_eps1_raw_untrained": untrained["eps1_raw"].get(li),
            "dev_eps1_raw_trained": trained["eps1_raw"].get(li),
            "dev_bitext_acc_untrained": untrained["bitext_acc"].get(li),
            "dev_bitext_acc_trained": trained["bitext_acc"].get(li),
            "selection_share": share.loc[lang].to_dict() if lang in share.index else {},
        }
    improved = [lang for lang, v in per_lang.items() if v["dev_eps1_trained"] is not None and v["dev_eps1_trained"] < v["dev_eps1_untrained"]]
    summary = {
        "best_epoch": result.best_epoch,
        "epochs_run": sum(r["epoch"] >= 0 for r in result.history),
        "stop_on": cfg.stop_on,
        "dev_eps1_untrained": untrained.get("eps1_mean"),
        "dev_eps1_trained": trained.get("eps1_mean"),
        "eps1_definition": "mean over slots of 1 - cos(E_lr, E_en), each path centred per language on the dev set",
        "eps1_lowered_in": f"{len(improved)}/{len(langs)}",
        "clean_preference": arca_run.clean_preference(inputs.ct, probs),
        "selection_share": sel["agent"].value_counts(normalize=True).round(4).to_dict(),
        "fallback_quarantined": int(sel["fallback_quarantined"].sum()),
        "per_language": per_lang,
    }
    write_json(root / params.shared.paths.metrics / "arca.json", summary)
    write_text(root / params.shared.paths.plots / "arca_curve.csv", pd.DataFrame(result.history).to_csv(index=False))
    return summary
