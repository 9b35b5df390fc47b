"""The metrics table `lira run` prints at the end (read from the evaluate stage's outputs)."""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = [
    ("retrieval", "ndcg@10", "nDCG@10"),
    ("retrieval", "recall@10", "R@10"),
    ("retrieval", "mrr@10", "MRR@10"),
    ("sts", "pearson", "STS r"),
    ("sts", "spearman", "STS rho"),
    ("mc", "accuracy", "MC acc"),
]


def _fmt(x: float | None) -> str:
    return "   -  " if x is None else f"{100 * x:6.2f}"


def summary_table(metrics_dir: str | Path) -> str:
    metrics_dir = Path(metrics_dir)
    ev = json.loads((metrics_dir / "evaluate.json").read_text())
    lines = ["", "Test split, all languages (x100).  LiRA minus system: diff [95% CI] on nDCG@10"]
    head = f"{'system':<34}" + "".join(f"{h:>9}" for _, _, h in COLUMNS) + "   LiRA - system (nDCG@10)"
    lines += [head, "-" * len(head)]
    for name, s in ev["systems"].items():
        cells = "".join(f"{_fmt(s.get(task, {}).get(key)):>9}" for task, key, _ in COLUMNS)
        cmp = ev.get("lira_minus", {}).get(name, {}).get("retrieval.ndcg@10")
        ci = f"   {100 * cmp['diff']:+6.2f} [{100 * cmp['low']:+.2f}, {100 * cmp['high']:+.2f}]" if cmp else ""
        lines.append(f"{name:<34}{cells}{ci}")
    xl = ev.get("crosslingual", {})
    if xl.get("systems"):
        lines += ["", "Cross-lingual retrieval: LRL query -> English items (their en_ref), x100"]
        lines.append(f"{'system':<34}{'nDCG@10':>9}{'R@10':>9}{'MRR@10':>9}   LiRA - system (nDCG@10)")
        for name, s in xl["systems"].items():
            cells = "".join(f"{_fmt(s.get(k)):>9}" for k in ("ndcg@10", "recall@10", "mrr@10"))
            cmp = xl.get("lira_minus", {}).get(name, {}).get("retrieval.ndcg@10")
            ci = f"   {100 * cmp['diff']:+6.2f} [{100 * cmp['low']:+.2f}, {100 * cmp['high']:+.2f}]" if cmp else ""
            lines.append(f"{name:<34}{cells}{ci}")
    fg = ev.get("forgetting", {})
    if fg.get("retrieval"):
        ok = "yes" if fg.get("within_tolerance") else "NO"
        lines += ["", (f"Forgetting check: English -> English on the English references, x100 (LiRA's English path "
                       f"within {fg.get('tolerance_points', 1.0):g} point of frozen: {ok})")]
        lines.append(f"{'system':<34}{'nDCG@10':>9}{'STS r':>9}{'STS rho':>9}")
        for name, r in fg["retrieval"].items():
            st = fg.get("sts", {}).get(name, {})
            lines.append(f"{name:<34}{_fmt(r.get('ndcg@10')):>9}{_fmt(st.get('pearson')):>9}{_fmt(st.get('spearman')):>9}")
    lines += external_table(ev.get("external") or [])
    reg = metrics_dir / "registry.json"
    if reg.exists():
        r = json.loads(reg.read_text())
        if "version" in r:
            lines += ["", f"registered {r['registered_model']} v{r['version']}: {r['decision']}"]
    lines.append(f"per language: dvc metrics show   |   plots: plots/per_language.png   |   {metrics_dir}/evaluate.json")
    return "\n".join(lines)


def _ci(cmp: dict | None) -> str:
    return f"   {100 * cmp['diff']:+6.2f} [{100 * cmp['low']:+.2f}, {100 * cmp['high']:+.2f}]" if cmp else ""


def external_table(external: dict[str, dict] | list[dict]) -> list[str]:
    """Lines for the external benchmarks (``evaluate.external`` by name, or ``lira eval``'s one): each
    system's mean metrics and the reference (the trained model, first) minus it with its paired-bootstrap CI."""
    lines: list[str] = []
    for b in external.values() if isinstance(external, dict) else external:
        ref = b.get("reference")
        bitext = b["kind"] == "parallel_tsv"
        keys = [("src2tgt", "LRL->EN"), ("tgt2src", "EN->LRL")] if bitext else [
            ("ndcg@10", "nDCG@10"), ("recall@10", "R@10"), ("mrr@10", "MRR@10")]
        what = "bitext accuracy" if bitext else "retrieval"
        title = (f"External benchmark {b.get('name') or b['path']} ({b['kind']}, {b['language']}, "
                 f"{b['n']} {'pairs' if bitext else 'queries'}): {what}, x100, no translations; "
                 f"{ref} - system: diff [{b.get('confidence', 0.95):.0%} CI]")
        lines += ["", title]
        lines.append(f"{'system':<34}" + "".join(f"{h:>9}" for _, h in keys) + f"   {ref} - system ({keys[0][1]})")
        for name, s in b["systems"].items():
            cells = "".join(f"{_fmt(s.get(k)):>9}" for k, _ in keys)
            lines.append(f"{name:<34}{cells}{_ci((b.get('lira_minus') or {}).get(name, {}).get(keys[0][0]))}")
    return lines
