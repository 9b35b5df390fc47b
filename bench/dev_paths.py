"""LiRA's paths on the sample's DEV split: what the design decisions of the default are chosen by.

Reads the trained pipeline outputs of this checkout (``models/lasr/full``, the feature cache) and
scores, on the dev queries only (never the test split), in-language retrieval nDCG@10 of:

* ``lira`` (fused: LRL path + the Actor's translation), ``lira_lrl_only`` (no translation);
* ``frozen`` (the untouched encoder's mean-pooled embedding), ``translate_test`` (the English
  encoder on the Actor's translation; the frozen LRL embedding where a text has none);
* ``fused_frozen_start``: normalize(frozen LRL unit + translation unit), i.e. what LaSR's residual
  start would be if its LRL input were the frozen encoder instead of the LoRA-tuned one;
* ``fused_tuned_start``: the same with the tuned LRL features (LaSR's actual start, before the head).

Paired bootstrap 95% CIs of lira and lira_lrl_only minus each other system. Run after ``lira run``:
``python bench/dev_paths.py`` -> bench/results/dev_paths.json.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

C.set_threads(2)

import numpy as np
import torch


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def main() -> dict:
    from lira.config import load_params
    from lira.eval import paired_bootstrap
    from lira.eval.scoring import retrieval_scores
    from lira.eval.suite import _variant
    from lira.train import arca_run
    from lira.train.lasr import embed_rows
    from lira.train.tables import text_features

    root = C.ROOT
    params = load_params(root / "params.yaml")
    inputs = arca_run.load_inputs(params.shared, root, progress=False)
    net, ld, choice, meta = _variant(params.shared, params.train_arca, params.train_lasr, root, inputs,
                                     root / params.shared.paths.lasr, "full")
    # retrieval_scores scores the "test" queries: relabel so that it scores dev and nothing else
    split = np.where(ld.query_split == "dev", "test", "other").astype(object)
    dev = replace(ld, query_split=split)
    rows = torch.arange(len(inputs.texts))
    z = {"lira": embed_rows(net, dev, rows, use_english=True).numpy(),
         "lira_lrl_only": embed_rows(net, dev, rows, use_english=False).numpy()}
    _, lr_mean = text_features(params.shared, root, inputs.texts)
    tuned = unit(ld.lr.mean(1).numpy())
    has = choice >= 0
    en = unit(ld.en.mean(1).numpy())
    z["frozen"] = lr_mean
    z["translate_test"] = np.where(has[:, None], en, lr_mean)
    z["fused_frozen_start"] = np.where(has[:, None], unit(unit(lr_mean) + en), lr_mean)
    z["fused_tuned_start"] = np.where(has[:, None], unit(tuned + en), tuned)
    scores = {k: retrieval_scores(v, dev, [10])["per_query"]["ndcg@10"] for k, v in z.items()}
    out = {"split": "dev", "n_queries": len(scores["lira"]), "ndcg@10": {k: float(v.mean()) for k, v in scores.items()},
           "lora_adapter": meta["encoders"]["lrl"].get("adapter"), "minus": {}}
    for a in ("lira", "lira_lrl_only", "fused_tuned_start"):
        for b in scores:
            if a != b:
                r = paired_bootstrap(np.mean, scores[a], scores[b], n_resamples=2000, seed=0).as_dict()
                out["minus"][f"{a} - {b}"] = {k: r[k] for k in ("diff", "low", "high")}
    out["command"], out["git"], out["load"] = C.command(), C.git_state(), C.loadavg()
    for k, v in out["ndcg@10"].items():
        print(f"{k:22s} {100 * v:6.2f}")
    for k, v in out["minus"].items():
        print(f"{k:40s} {100 * v['diff']:+6.2f} [{100 * v['low']:+.2f}, {100 * v['high']:+.2f}]")
    print(f"wrote {C.write_result('dev_paths', out)}")
    return out


if __name__ == "__main__":
    main()
