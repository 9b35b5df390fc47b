"""The evaluate stage's plots: CSVs that ``dvc plots`` draws with lira's templates, and a PNG.

* ``per_language.csv``: one row per system x language (nDCG@10, STS Pearson, MC accuracy) and its
  ``group``: ``main`` (LiRA and the baselines) or ``ablation``. The DVC template
  (``.dvc/plots/grouped_bar.json``) draws languages on x, one bar per system beside each other,
  one panel per group, so no chart has more than a handful of series.
* ``systems.csv``: one row per system x task on the whole test split: systems on x, one bar per task.
* ``per_language.png``: the same views drawn with matplotlib. It needs no network, unlike DVC's
  HTML (its vega scripts come from a CDN), and ``dvc plots show`` embeds it as an image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lira.io import write_text

TASKS = [("ndcg10", "ndcg@10", "retrieval", "ndcg@10", "retrieval nDCG@10"),
         ("sts_pearson", "sts_pearson", "sts", "pearson", "STS Pearson"),
         ("mc_accuracy", "mc_accuracy", "mc", "accuracy", "MC accuracy")]
ABLATION_PREFIX = "ablation:"


def group_of(system: str) -> str:
    return "ablation" if system.startswith(ABLATION_PREFIX) else "main"


def per_language_frame(systems: dict[str, dict], langs: list[str]) -> pd.DataFrame:
    rows = []
    for name, s in systems.items():
        for lang in langs:
            pl = s["per_language"].get(lang, {})
            rows.append({"system": name, "group": group_of(name), "lang": lang, "system_lang": f"{name}/{lang}",
                         **{col: pl.get(key) for col, key, *_ in TASKS}})
    return pd.DataFrame(rows)


def systems_frame(systems: dict[str, dict]) -> pd.DataFrame:
    rows = [{"system": name, "group": group_of(name), "task": title, "value": (s.get(task) or {}).get(key)}
            for name, s in systems.items() for _, _, task, key, title in TASKS]
    return pd.DataFrame(rows)


def write_plots(folder: Path, systems: dict[str, dict], langs: list[str]) -> None:
    df = per_language_frame(systems, langs)
    write_text(folder / "per_language.csv", df.to_csv(index=False))
    overall = systems_frame(systems)
    write_text(folder / "systems.csv", overall.to_csv(index=False))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lira.io import atomic_path

    names = list(systems)
    main = [n for n in names if group_of(n) == "main"]
    fig, axes = plt.subplots(2, 2, figsize=(16, 9))
    ax = axes[0, 0]
    titles = [t[-1] for t in TASKS]
    width = 0.8 / len(titles)
    for k, title in enumerate(titles):
        vals = [overall[(overall.system == n) & (overall.task == title)]["value"].astype(float).fillna(0).iloc[0]
                for n in names]
        ax.bar(np.arange(len(names)) + k * width, vals, width, label=title)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=30, ha="right", fontsize=8)
    ax.set_title("all systems, whole test split")
    ax.set_ylim(0, 1.15)  # room above the bars for the legend
    ax.legend(fontsize=8, loc="upper center", ncol=len(titles))
    width = 0.8 / max(len(main), 1)
    for ax, (col, _, _, _, title) in zip([axes[0, 1], axes[1, 0], axes[1, 1]], TASKS):
        for k, name in enumerate(main):
            vals = [df[(df.system == name) & (df.lang == lang)][col].astype(float).fillna(0).iloc[0] for lang in langs]
            ax.bar(np.arange(len(langs)) + k * width, vals, width, label=name)
        ax.set_xticks(np.arange(len(langs)) + 0.4 - width / 2, langs)
        ax.set_title(f"{title} per language (LiRA and baselines)")
        ax.set_ylim(0, 1.15)
    axes[0, 1].legend(fontsize=8, loc="upper center", ncol=len(main))
    fig.tight_layout()
    with atomic_path(folder / "per_language.png") as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
