"""Run every bench script in order (``--quick`` passed through), then print one table of the figures.

Each script writes ``bench/results/<name>.json``; this runner only launches them and reads those
files back, so the table shows exactly what the scripts measured in this run (a script that fails
leaves its previous JSON alone, and its row says FAILED).

quality_flores needs the FLORES-SIB200 data (``--flores DIR`` or ``$LIRA_FLORES_DIR``, passed through);
with neither it is skipped, and its row says so.

Usage: ``.venv/bin/python bench/run_all.py [--quick] [--only e2e,training] [--flores DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

ORDER = ("e2e", "training", "metrics_vs_ranx", "quality_flores", "encoder_throughput")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _met(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "NO")


def table_rows(name: str, doc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, value, target, met) rows for one result document."""
    if doc.get("skipped"):
        return [("skipped", str(doc["skipped"]), "-", "-")]
    if name == "e2e":
        cold, rerun, met = doc.get("cold") or {}, doc.get("rerun") or {}, doc.get("met") or {}
        peak = max(cold.get("peak_tree_rss_mib", 0), (cold.get("time_v") or {}).get("max_rss_mib", 0)) / 1024
        t = doc.get("targets") or {}
        return [("cold run (s)", f"{cold.get('wall_s', '-')}" + ("" if cold.get("returncode") == 0 else " (FAILED)"),
                 f"<= {t.get('cold_s')}", _met(met.get("cold"))),
                ("no-change rerun (s)", f"{rerun.get('wall_s', '-')}", f"<= {t.get('rerun_s')}", _met(met.get("rerun"))),
                ("peak RSS, process tree (GiB)", f"{peak:.2f}", f"<= {t.get('peak_rss_gib')}", _met(met.get("peak_rss")))]
    if name == "training":
        lasr, share = doc["lasr"], doc["lasr"]["queue_share_at_capacity"]
        mem = lasr["memory"]
        at_cap = lasr["runs"][f"capacity_{share['capacity']}"]
        return [("Arca step / epoch", (f"{C.fmt_s(doc['arca']['step_s']['median'])} / "
                 f"{C.fmt_s(doc['arca']['epoch_s_train_only']['median'])}"), "-", "-"),
                ("MSE distill step / epoch", (f"{C.fmt_s(doc['mse_distill']['step_s']['median'])} / "
                 f"{C.fmt_s(doc['mse_distill']['epoch_s_train_only']['median'])}"), "-", "-"),
                ("LaSR step, no queue / queues at capacity", (f"{C.fmt_s(lasr['runs']['no_queue']['step_s']['median'])} / "
                 f"{C.fmt_s(at_cap['step_s']['median'])}"), "-", "-"),
                (f"queue share of a LaSR step @{share['capacity']}", _pct(share["differential"]), "<= 10%",
                 _met(share["met"])),
                (f"RSS growth over {mem['steps']} LaSR steps (MiB)", f"{mem['rss_growth_mib']:.1f}", "flat",
                 _met(mem.get("flat_rss_16mib")))]
    if name == "metrics_vs_ranx":
        return [("max |lira - ranx|", f"{doc['no_ties']['max_abs_diff']}", "0", _met(doc["no_ties"]["identical"])),
                (f"time ratio lira/ranx ({doc['queries']} q)", f"x{doc['ratio_lira_over_ranx']:.2f}", "<= 1.0",
                 _met(doc["met"]))]
    if name == "quality_flores":
        o, rows = doc["overall"], []
        peer = "st_distill" if "st_distill" in o["lira_minus"] else "mse_distill"  # the real peer when it ran
        for m in ("bitext_lrl2en", "bitext_en2lrl", "topic_ndcg10_in_language", "topic_ndcg10_cross_lingual"):
            s = o["systems"]
            if m not in s["frozen"]:
                continue
            d = o["lira_minus"][peer][m]
            rows.append((m, (f"frozen {s['frozen'][m]:.3f} / {peer} {s[peer][m]:.3f} / "
                         f"lira {s['lira_arca'][m]:.3f}"), f"lira > {peer}",
                         f"{d['diff']:+.3f} [{d['low']:+.3f},{d['high']:+.3f}]"))
        return rows
    if name == "encoder_throughput":
        r = doc["sentences_per_s"]
        rows = [("sentences/s " + " / ".join(r), " / ".join(str(v) for v in r.values()), "-", "-")]
        if "ratio_vs_st_fp32" in doc:
            t = doc["targets"]
            de = t.get("default_engine", "lira:auto")
            rows.append((f"lira default ({de}) / s-t fp32", f"x{doc['ratio_vs_st_fp32'][de]:.2f}",
                         ">= 2.0", _met(t["met_vs_st_fp32"])))
            rows.append((f"lira default / s-t best ({doc['st_best']})", f"x{doc['ratio_vs_st_best'][de]:.2f}",
                         ">= 1.0", _met(t["met_vs_st_best"])))
        return rows
    return []


def print_table(rows: list[tuple[str, str, str, str, str]]) -> None:
    head = ("bench", "figure", "value", "target", "met")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(5)]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(ORDER)}")
    ap.add_argument("--flores", default=None, metavar="DIR", help="FLORES-SIB200 folder for quality_flores "
                    "(default: $LIRA_FLORES_DIR; with neither, quality_flores is skipped)")
    args = ap.parse_args(argv)
    names = [n for n in ORDER if args.only is None or n in args.only.split(",")]
    flores = args.flores or os.environ.get("LIRA_FLORES_DIR")
    status: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in names:
        extra = []
        if name == "quality_flores":
            if not flores:
                skipped[name] = "no FLORES data: pass --flores DIR or set LIRA_FLORES_DIR"
                print(f"\n=== {name}: skipped ({skipped[name]})", flush=True)
                continue
            extra = ["--flores", flores]
        cmd = [sys.executable, str(C.ROOT / "bench" / f"{name}.py"), *(["--quick"] if args.quick else []), *extra]
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=C.ROOT)
        status[name] = {"returncode": rc, "wall_s": round(time.perf_counter() - t0, 1)}
    rows = []
    for name in names:
        if name in skipped:
            rows.append((name, "skipped", skipped[name], "-", "-"))
            continue
        path = C.result_path(name, args.quick)
        if status[name]["returncode"] != 0 or not path.exists():
            rows.append((name, "FAILED", f"exit {status[name]['returncode']}", "-", "-"))
            continue
        try:
            rows += [(name, *r) for r in table_rows(name, json.loads(path.read_text()))]
        except (KeyError, TypeError, ValueError) as e:
            rows.append((name, "unreadable result", repr(e), "-", "-"))
    print()
    print_table(rows)
    C.write_result("run_all", {"quick": args.quick, "scripts": status, "skipped": skipped})
    return 0 if all(s["returncode"] == 0 for s in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
