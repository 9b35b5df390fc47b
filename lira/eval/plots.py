"""The per-language plot of the evaluate stage: a CSV (what ``dvc plots`` reads) and a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lira.io import write_text


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
