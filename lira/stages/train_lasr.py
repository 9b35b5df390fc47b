"""Stage 5, train_lasr: LaSR (+ fine-tuned adaptors) and its ablations.

Writes one model folder per variant under ``<paths.lasr>/<variant>/`` (the
format :class:`lira.model.LiraModel` loads), ``<paths.metrics>/lasr.json`` and the training curve
``<paths.plots>/lasr_curve.csv``. Ablations that change Arca (no LLM critic, no embedding critic,
separate adaptors) retrain Arca in-process with the switch flipped; all else is equal. With LoRA on
the LRL encoder, each model folder carries its Arca's adapter (``lora_lrl/``) and LaSR trains on
the LRL path read through it. The variants are :data:`lira.train.lasr_run.VARIANTS`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lira import distributed
from lira.config import Params
from lira.io import write_json, write_text
from lira.train.lasr_run import train_variants

METRICS = ["lasr.json"]
PLOTS = ["lasr_curve.csv"]


def run(params: Params, root: Path) -> dict:
    variants = ["full", *params.train_lasr.ablations]
    # models/lasr is published whole (every variant written beside it, then swapped in) or not at all;
    # under torchrun by rank 0, the other ranks writing theirs into a throwaway folder
    with distributed.output_dir(root / params.shared.paths.lasr) as out:
        trained = train_variants(params.shared, params.train_arca, params.train_lasr, root, variants, out)
    if not distributed.is_main():
        return {"rank": distributed.rank()}
    summary: dict = {"variants": {v: info for v, (_, info) in trained.items()}}
    curve = pd.DataFrame(trained["full"][0])
    summary["dev_ndcg10"] = summary["variants"]["full"]["dev_ndcg10"]
    write_json(root / params.shared.paths.metrics / "lasr.json", summary)
    write_text(root / params.shared.paths.plots / "lasr_curve.csv", curve.to_csv(index=False))
    return summary
