"""README's benchmark table, regenerated from ``bench/results/*.json`` (never typed by hand).

Each row: what was measured, the command that measured it, the commit and the machine load it ran
at (1-minute load average at start -> end; the machine has 2 cores, so load > 2 means contended),
the figure, the target and whether it is met. The table replaces what lies between
``<!-- bench-table:start -->`` and ``<!-- bench-table:end -->`` in README.md.

Usage: ``python bench/readme_table.py [--check]`` (``--check``: exit 1 if README is not current)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"


def _met(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "**no**")


def _load(doc: dict[str, Any], *parts: dict[str, Any]) -> str:
    # the CPU too: sessions run on different machines (an AMD EPYC with AVX-512 BF16, an Intel
    # Xeon with AMX), and the same code's figures differ between them
    cpu = next((d["machine"].get("cpu_model") for d in (doc, *parts) if isinstance(d.get("machine"), dict)), None)
    where = f", {cpu}" if cpu else ""
    for d in (doc, *parts):
        if "load_start" in d:
            return f"{d['load_start']} -> {d.get('load_end', '?')}{where}"
    return "not recorded" + where


def _commit(doc: dict[str, Any]) -> str:
    # e2e measures a clone's HEAD ("commit"); the others measure the checkout they run in ("git").
    c = doc.get("commit") or (doc.get("git") or {}).get("commit") or ""
    dirty = (doc.get("git") or {}).get("modified_tracked_files")
    return f"`{c[:7]}`" + (" + uncommitted" if dirty and not doc.get("commit") else "") if c else "?"


def rows_e2e(d: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    import e2e  # the targets as they are now (issue 15), whatever the result file was run against

    cold, rerun, t = d.get("cold") or {}, d.get("rerun") or {}, e2e.TARGETS
    peak = max(cold.get("peak_tree_rss_mib", 0), (cold.get("time_v") or {}).get("max_rss_mib", 0))
    ok = cold.get("returncode") == 0 and rerun.get("returncode") == 0
    met = {"cold": ok and cold["wall_s"] <= t["cold_s"], "rerun": ok and rerun["wall_s"] <= t["rerun_s"],
           "peak_rss": ok and peak / 1024 <= t["peak_rss_gib"]}
    stages = d.get("stage_breakdown_cold") or {}
    br = "; ".join(f"{k} {v['wall_s']:.0f} s (start-up {v.get('startup_s', '?')} s), tree {v['peak_tree_rss_mib']:.0f} MiB"
                   for k, v in stages.items())
    if not br:
        br = "; ".join(f"{k} {v.get('seconds')} s" for k, v in (d.get("stage_costs_cold") or {}).items())
    return [(f"`make run` cold, fresh clone (load {_load(cold)})", f"{cold.get('wall_s')} s; {br}",
             f"<= {t.get('cold_s')} s", _met(met.get("cold"))),
            (f"no-change rerun in that clone (load {_load(rerun)})", f"{rerun.get('wall_s')} s",
             f"<= {t.get('rerun_s')} s", _met(met.get("rerun"))),
            ("peak RSS of the cold run's process tree (sum over processes)",
             f"{peak / 1024:.2f} GiB (largest process {cold.get('peak_process_rss_mib', 0) / 1024:.2f} GiB)",
             f"<= {t.get('peak_rss_gib')} GiB", _met(met.get("peak_rss")))]


def rows_e2e_quick(d: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    cold, probes = d.get("cold") or {}, d.get("import_probes") or {}
    br = "; ".join(f"{k} wall {v['wall_s']:.1f} s = run {v.get('run_s')} s + start-up {v.get('startup_s')} s "
                   f"({100 * (v.get('startup_share') or 0):.0f}%)" for k, v in (d.get("stage_breakdown_cold") or {}).items())
    pr = ", ".join(f"{k} {v} s" for k, v in probes.items() if k not in ("repeats", "load"))
    return [(f"per-stage start-up, `lira run translate` cold in a fresh clone (harness check; load {_load(cold)})",
             br, "-", "-"),
            (f"import probes, fresh interpreter, median of {probes.get('repeats')} (load {probes.get('load')})", pr, "-", "-")]


def rows_rerun(d: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    loads = [t["load"] for v in d["trials"].values() for t in v]
    m = d["median_s"]
    peer = f"; peer (code at `{d['peer_commit'][:7]}`, same workspace, interleaved) {m['peer']:.2f} s = x{d['peer_over_this']}" \
        if "peer" in m else ""
    return [(f"no-change `lira run` in a run workspace, median of {d['rounds']} (load {min(loads)}-{max(loads)})",
             f"{m['this']:.2f} s{peer}", f"<= {d['target_s']} s", _met(d["met"]))]


def rows_encoder(d: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    sps, pr = d["sentences_per_s"], d.get("paired_ratio_vs_st_fp32") or {}
    cos = d["cosine_min_over_languages"]
    figs = ", ".join(f"{k} {v}" + (f" (x{pr[k]['median']:.2f} [{pr[k]['min']:.2f}, {pr[k]['max']:.2f}])" if k in pr else "")
                     + ("" if cos.get(k, 1) >= 0.995 else f" cos min {cos[k]:.3f}: fails parity")
                     for k, v in sps.items())
    tok = ", ".join(f"{k} {100 * v:.1f}%" for k, v in (d.get("tokenise_share") or {}).items())
    t = d.get("targets") or {}
    load = f"load {d['load_start']} -> {d['load_end']}" if "load_start" in d else "load ?"
    rows = [((f"encoder sentences/s, {d['n']} sample texts, {d['threads']} threads, {load} (paired ratio to st:fp32 "
             f"[min, max over rounds])"), figs, "-", "-"),
            ("share of time in tokenisation", tok, "-", "-")]
    if t:
        de = t["default_engine"]
        paired = f" (paired x{pr[de]['median']:.2f} [{pr[de]['min']:.2f}, {pr[de]['max']:.2f}])" if de in pr else ""
        resolved = f" -> {d['auto_engine']}" if d.get("auto_engine") and de.endswith("auto") else ""
        rows.append((f"lira's default ({de}{resolved}) vs sentence-transformers fp32 / its best ({d.get('st_best')}), median passes",
                     f"x{d['ratio_vs_st_fp32'][de]:.2f} / x{d['ratio_vs_st_best'][de]:.2f}{paired}", ">= 2.0 / >= 1.0",
                     _met(t["met_vs_st_fp32"] and t["met_vs_st_best"])))
    proc = d.get("encoder_process") or {}
    if "peak_rss_mib" in proc:
        what = (f"peak RSS of a process that loads the default encoder (frozen, {proc.get('precision')}) and embeds "
                f"the {d['n']} texts ({proc.get('source')})")
        rows.append((what, f"{proc['peak_rss_mib']:.1f} MiB",
                     f"<= {t.get('peak_rss_mib', 1024)} MiB", _met(proc["peak_rss_mib"] <= t.get("peak_rss_mib", 1024))))
    return rows


def rows_queue(d: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    inside = d.get("ops_plus_corr_loss_forward_share")
    inner = (f"; inside the same steps, queue calls + corr-loss forward {100 * inside['median']:.1f}% "
             f"[{100 * inside['min']:.1f}, {100 * inside['max']:.1f}]") if inside else ""
    loads = [r[k]["load"] for r in d["rounds"] for k in ("no_queue", "capacity") if k in r]
    return [((f"queues' share of a LaSR step at capacity {d['capacity']} (batch {d['batch_size']}; "
             f"{len(d['rounds'])} paired rounds, load {min(loads, default='?')}-{max(loads, default='?')})"),
             f"step difference {100 * d['share_median']:.1f}% [{100 * d['share_min']:.1f}, {100 * d['share_max']:.1f}]"
             + inner, "<= 10%", _met(d["met"]))]


def rows_training(d: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    mem = d["lasr"]["memory"]
    return [("Arca epoch vs MSE-distillation epoch (same texts)",
             (f"{d['arca']['epoch_s_train_only']['median']:.2f} s vs {d['mse_distill']['epoch_s_train_only']['median']:.2f} s "
             f"(x{d['arca_vs_distill_epoch_ratio']:.1f}; load {_load(d['arca'])})"), "-", "-"),
            (f"memory over {mem['steps']} LaSR steps, queues {mem['queues']} full from step 1",
             f"RSS {mem['rss_growth_mib']:+.1f} MiB, live tensors {mem['tensor_growth_mib']:+.2f} MiB", "flat",
             _met(mem.get("flat_rss_16mib")))]


def rows_ranx(d: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(f"metrics vs ranx, {d['queries']} queries x {d['items_per_query']} items",
             f"max abs diff {d['no_ties']['max_abs_diff']}; time x{d['ratio_lira_over_ranx']:.2f} of ranx",
             "identical, <= 1.0x", _met(d["met"] and d["no_ties"]["identical"]))]


def rows_corr(d: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(f"correlation loss over batch ++ CorrQueue at {d['capacity']}",
             (f"{1000 * d['concat_s']['median']:.0f} ms (old O(N^2)) vs {1000 * d['split_s']['median']:.1f} ms = x{d['speedup']:.0f}; "
             f"loss diff {d['max_abs_loss_diff']:.1e}"), "-", "-")]


def rows_audit(d: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [("texts encoded more than once across stages (feature-cache audit)",
             (f"{d['texts_encoded_more_than_once']} of {d['distinct_texts_encoded']} texts, "
             f"{d['extra_encodings']} extra encodings = {100 * d['extra_share_of_all_encodings']:.1f}% of all "
             f"({d['same_encoder_two_prefixes']} under both E5 prefixes, {d['two_encoders']} by two encoders)"),
             "0 (none needless)", "-")]


def rows_index(d: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, st in d.get("sets", {}).items():
        libs = st["libraries"]
        cells = "; ".join(f"{lib} build {v['build_s']:.2f} s, query {v['query_ms_median']:.3f} ms, recall@10 {v['recall@10']:.4f}"
                          for lib, v in libs.items())
        rows.append((f"vector index, {name} ({st['n']} x {st['dim']}, {st['n_queries']} queries; load {_load(st)})",
                     cells, "pick by measurement", "-"))
    q = d.get("lira_search")
    if q:
        rows.append((f"`lira search --index` on the sample, model loaded (load {_load(q)})",
                     f"median {q['query_s']['median']:.2f} s, p95 {q['query_s_p95']:.2f} s over {q['query_s']['n']} queries",
                     "well under 1 s", _met(q["query_s"]["median"] < 1.0)))
    return rows


def rows_distributed(d: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    cmp, head = d["compare"], d["headline"]
    worst = max(v["max_abs_diff"] for v in cmp.values())
    cells = "; ".join(f"{k}: {v['fields']} numbers, max abs diff {v['max_abs_diff']:.1e}" for k, v in cmp.items())
    lines = ", ".join(f"{k} {v['1proc']:.6f} vs {v['2proc']:.6f}" for k, v in head.items())
    runs = d["runs"]
    load = ", ".join(f"{r} {_load(runs[r].get('train_lasr', {}))}" for r in runs if isinstance(runs[r], dict) and "train_lasr" in runs[r])
    what = (f"train_arca + train_lasr on the sample, 1 process vs torchrun {d['nproc']} ranks (gloo, CPU; "
            f"overrides {', '.join(d['overrides']) or 'none'}; load {load})")
    rows = [(what, f"{lines}; {cells}", f"same metrics within {d.get('tolerance_abs', 1e-4):.0e} abs",
             _met(worst <= d.get("tolerance_abs", 1e-4)))]
    if "seed_tolerance" in d:
        st = d["seed_tolerance"]
        spread = ", ".join(f"{k} diff {v['ranks_diff']:.4f} vs seed range {v['seed_range']:.4f} (seeds {'/'.join(v['seeds'])})"
                           for k, v in head.items())
        rows.append((f"the same, judged against the 1-process seed spread ({len(st['seeds'])} seeds)", spread,
                     f"diff <= {st['share_of_seed_range']} x seed range", _met(st["met"])))
    return rows


def rows_seed_spread(d: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    seeds = "/".join(str(x) for x in d["seeds"])
    by = {(r["code"], r["seed"]): r for r in d["runs"]}
    cells = []
    for k in ("ndcg@10", "xl_ndcg@10", "sts_pearson", "mc_accuracy"):
        vals = "; ".join(f"{c} " + "/".join(f"{100 * by[(c, s)][k]:.1f}" for s in d["seeds"]) for c in ("this", "peer"))
        cells.append(f"{k} {vals}")
    return [(f"LiRA's test headline (x100) per seed {seeds}, this code vs peer `{d['peer_commit'][:7]}`, same inputs "
             f"(load {d['load_start']} -> {d['load_end']}, {d['machine'].get('cpu_model')})", "; ".join(cells), "-", "-")]


ROWS = {"e2e": rows_e2e, "e2e.quick": rows_e2e_quick, "rerun": rows_rerun, "feature_audit": rows_audit, "encoder_throughput": rows_encoder,
        "queue_share": rows_queue, "corr_queue": rows_corr, "training": rows_training, "metrics_vs_ranx": rows_ranx,
        "index": rows_index, "distributed_sample_nodrop": rows_distributed, "distributed_sample_frozen": rows_distributed,
        "distributed_sample_default_custom": rows_distributed, "distributed_sample_default": rows_distributed,
        "seed_spread": rows_seed_spread}


def table(results: Path = C.RESULTS) -> str:
    lines = ["| what (load: 1-min average, start -> end) | command | commit | measured | target | met? |",
             "|---|---|---|---|---|---|"]
    for name, fn in ROWS.items():
        path = results / f"{name}.json"
        if not path.exists():
            continue
        doc = json.loads(path.read_text())
        for what, measured, target, met in fn(doc):
            lines.append(f"| {what} | `{doc.get('command', '?')}` | {_commit(doc)} | {measured} | {target} | {met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    readme = C.ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"README.md has no {START} ... {END} block", file=sys.stderr)
        return 2
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{table()}\n{END}{tail}"
    if args.check:
        return 0 if new == text else 1
    readme.write_text(new, encoding="utf-8")
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
