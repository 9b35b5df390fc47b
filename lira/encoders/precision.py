"""Encoder precision: ``fp32 | bf16 | int8 | auto``, and the parity check that lets ``auto`` choose.

Engines (all real, all torch):

* ``fp32``: the weights as loaded; the reference every other engine is measured against.
* ``bf16``: bfloat16 **weights** (:func:`to_bf16`: every weight cast to bf16 but the word-embedding
  table, whose looked-up rows are cast instead; no autocast): every op of the inference forward
  runs in bf16 (oneDNN's AVX-512 BF16 / AMX kernels where the CPU has them); the pooled output is
  cast back to fp32. Training forwards (autograd on, something
  trainable) never use them: they run the fp32 model. Why weights, not autocast: :data:`BF16_MODE`.
  The encoder makes them on its first inference forward (:class:`~lira.encoders.base.Encoder`):
  in place when nothing in it trains (one set of weights in memory), else as a copy.
* ``int8``: torch's dynamic quantisation of every ``nn.Linear`` (int8 weights per tensor, int8
  activations quantised per batch). Deprecated in torch and, on mE5-small, below the parity
  budget (cosine min ~0.96): it is offered for explicit use, and ``auto`` only ever picks it where
  the parity check passes.
* ``auto``: a choice that depends only on (model weights, CPU, torch), never on machine load
  (:func:`choose`): the candidates are the engines this CPU runs natively (:func:`native_engines`:
  bf16 only with the ``avx512_bf16`` or ``amx_bf16`` flag, int8 only with ``avx512_vnni`` or
  ``avx_vnni``; fp32 always), those that pass the parity check - per language of a fixed probe set
  (the shipped sample's texts, :func:`probe_set`), minimum cosine to fp32 >= :data:`MIN_COSINE` and
  mean >= :data:`MEAN_COSINE`; cosines are deterministic - and of those the first in the fixed
  order :data:`PREFERENCE` that the benchmark established (bf16, int8, fp32); the check tries them in
  that order and stops at the first that passes (the later ones are not measured). The parity run
  times each engine it measures; the seconds are logged (with a warning when the choice measured slower than
  fp32) but decide nothing, so a loaded machine picks what an idle one does. The check runs once
  per (model weights hash, candidate engines, machine = CPU model + flags + torch version) and is
  cached as a small JSON under ``<cache dir>/precision/``; the choice and every measured cosine
  are logged each time (``logging`` and ``tqdm.write``), read from the cache or not. No silent
  fallback: an engine that fails parity is reported as failing and never chosen; fp32 is the
  reference, so it always passes.

Pure helpers (cosines per language, the pass rule, the choice rule, cache keys) are separate from
the measuring, which the caller injects (``measure(engine) -> (embeddings, seconds)``), so the
rule is testable with given flags and cosines.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lira.runtime import trim_heap

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8", "auto")
ENGINES = ("fp32", "bf16", "int8")
MIN_COSINE = 0.995
MEAN_COSINE = 0.999
# bf16 as weights rather than autocast: autocast re-casts every fp32 weight to bf16 on every
# forward and keeps softmax/LayerNorm in fp32, which costs what the bf16 matmuls save. Measured on
# mE5-small (2-core AMD EPYC, AVX-512 BF16, 128 sample texts, max_length 512, idle machine at load
# ~1, paired passes, median of 5): throughput vs sentence-transformers fp32 x2.04 with bf16 weights,
# x1.85 with autocast (lira fp32 x1.10, sentence-transformers' own bf16 autocast x1.99); cosine to
# lira fp32 min 0.999969 / lowest language mean 0.999976 (weights) vs 0.999986 / 0.999992
# (autocast), both well inside the parity budget. Training forwards keep the fp32 model (see
# lira.encoders.base.Encoder), which was autocast's one advantage.
BF16_MODE = "weights"
# auto's order among the engines that run natively and pass parity: the benchmark's order (bf16
# fastest at parity; int8 faster than fp32 where it passes, which it does not on mE5-small).
PREFERENCE = ("bf16", "int8", "fp32")
# The CPU flags (/proc/cpuinfo) under which an engine has native kernels; without them torch
# emulates bf16 / runs int8 without VNNI, slower than fp32, so auto does not consider them.
NATIVE_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16"), "int8": ("avx512_vnni", "avx_vnni")}
PARITY_VERSION = 2  # bump when the probe set or the measurement changes (2: bf16 is bf16 weights)


# ------------------------------------------------------------------------------ pure helpers
def check_precision(value: str) -> str:
    if value not in PRECISIONS:
        raise ValueError(f"encoder precision {value!r}: expected one of {list(PRECISIONS)}")
    return value


def cosines_by_language(ref: np.ndarray, emb: np.ndarray, langs: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{lang: {"min": .., "mean": ..}}`` of the row-wise cosine between ``emb`` and ``ref`` [N, H]."""
    ref, emb = np.asarray(ref, np.float64), np.asarray(emb, np.float64)
    if ref.shape != emb.shape or ref.ndim != 2 or len(langs) != len(ref):
        raise ValueError(f"embeddings {emb.shape} vs reference {ref.shape} vs {len(langs)} languages")
    norm = np.linalg.norm(ref, axis=1) * np.linalg.norm(emb, axis=1)
    cos = np.sum(ref * emb, axis=1) / np.maximum(norm, 1e-12)
    langs_a = np.asarray(langs)
    return {str(lang): {"min": float(cos[langs_a == lang].min()), "mean": float(cos[langs_a == lang].mean())}
            for lang in sorted(set(langs))}


def passes(per_lang: Mapping[str, Mapping[str, float]], min_cos: float = MIN_COSINE, mean_cos: float = MEAN_COSINE) -> bool:
    """The parity rule: in every language, min cosine >= ``min_cos`` and mean >= ``mean_cos``."""
    return bool(per_lang) and all(v["min"] >= min_cos and v["mean"] >= mean_cos for v in per_lang.values())


def native_engines(flags: set[str] | frozenset[str]) -> tuple[str, ...]:
    """The engines this CPU runs with native kernels (:data:`NATIVE_FLAGS`), fp32 first."""
    return ("fp32", *[e for e in ENGINES if e in NATIVE_FLAGS and any(f in flags for f in NATIVE_FLAGS[e])])


def choose(flags: set[str] | frozenset[str], results: Mapping[str, Mapping[str, Any]]) -> str:
    """``auto``'s choice: the first engine of :data:`PREFERENCE` that this CPU runs natively
    (``flags``) and that ``passed`` the parity check in ``results``. Timings play no part.
    Raises if fp32 (the reference, which always passes) is missing from ``results``."""
    native = native_engines(flags)
    for engine in PREFERENCE:
        if engine in native and engine in results and results[engine]["passed"]:
            return engine
    raise ValueError(f"no encoder precision passed the parity check: {dict(results)}")


def cpu_info() -> tuple[str, set[str]]:
    """The CPU model name and its instruction-set flags (``/proc/cpuinfo``; empty where absent)."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":", 1)[0].strip()
            if key == "model name" and model in ("unknown", "", platform.processor()):
                model = line.split(":", 1)[1].strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, flags


def cpu_fingerprint() -> dict[str, str]:
    """What the parity of an engine depends on: CPU model and instruction-set flags, torch version."""
    import torch

    model, flags = cpu_info()
    return {"cpu": model, "machine": platform.machine(),
            "flags_sha256": hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:16], "torch": torch.__version__}


def parity_key(model_sha256: str, candidates: Sequence[str], machine: Mapping[str, str] | None = None) -> str:
    """Cache key of one parity check: model weights, candidate engines, machine, rule, probe set."""
    raw = json.dumps({"model": model_sha256, "candidates": list(candidates), "machine": dict(machine or cpu_fingerprint()),
                      "min": MIN_COSINE, "mean": MEAN_COSINE, "version": PARITY_VERSION}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def probe_set(per_kind: int = 6) -> tuple[list[str], list[str]]:
    """The fixed probe texts and their languages: from each language of the shipped sample
    (``lira/sample/data/<lang>/*.jsonl``) the first ``per_kind`` items, queries, STS ``text_a`` and MC
    questions, plus their English references as language ``en``."""
    from lira.sample import sample_docs

    texts, langs = [], []
    for lang, doc in sample_docs().items():
        rows = [(r["text"], r.get("en")) for r in doc["items"][:per_kind]]
        rows += [(r["text"], r.get("en")) for r in doc["queries"][:per_kind]]
        rows += [(r["text_a"], r.get("en_a")) for r in doc["sts"][:per_kind]]
        rows += [(r["question"], r.get("question_en")) for r in doc["mc"][:per_kind]]
        for text, en in rows:
            texts.append(text)
            langs.append(lang)
            if en:
                texts.append(en)
                langs.append("en")
    return texts, langs


# ------------------------------------------------------------------------------ engines
def prepare(model: Any, engine: str) -> tuple[Any, Callable[[], contextlib.AbstractContextManager]]:
    """``(model to run, context to run its inference forward in)`` for one engine.

    fp32 returns ``model`` itself; bf16 a bfloat16 copy, int8 a dynamically quantised copy
    (``model`` is left as it is). All run in a plain context (no autocast).
    """
    import copy

    import torch

    if engine == "fp32":
        return model, contextlib.nullcontext
    if engine == "bf16":
        return to_bf16(model, inplace=False), contextlib.nullcontext
    if engine == "int8":
        import warnings

        with warnings.catch_warnings():
            # Deprecated in torch in favour of torchao (not a dependency here); still a real engine.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*deprecated")
            # The copy shares the word-embedding table (quantisation only replaces nn.Linear): copying it
            # would page in and duplicate ~370 MB of mE5-small's table.
            # (inplace: on that copy; quantize_dynamic's own copy would duplicate the table after all)
            q = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model, memo=_shared_table(model)), {torch.nn.Linear},
                                                       dtype=torch.qint8, inplace=True)
        return q, contextlib.nullcontext
    raise ValueError(f"encoder engine {engine!r}: expected one of {list(ENGINES)}")


def to_bf16(model: Any, inplace: bool) -> Any:
    """The bf16 engine's model: every floating-point weight and buffer cast to bfloat16, except the
    input word-embedding table, which stays as loaded and whose lookups are cast to bf16 instead
    (the same values a bf16 table gives). Why: transformers memory-maps the fp32 table and only
    the rows of tokens actually seen are paged in (mE5-small's is 250k x 384, ~370 MB fp32);
    casting the table would page in all of it and hold ~185 MB more. ``inplace``: convert
    ``model`` itself (the fp32 weights are gone afterwards), else a copy that shares the table."""
    import copy

    import torch

    emb = _input_table(model)
    if not inplace:
        model = copy.deepcopy(model, memo=_shared_table(model))
    for module in model.modules():
        if module is emb:
            continue
        for t in [*module.parameters(recurse=False), *module.buffers(recurse=False)]:
            if t.is_floating_point() and t.dtype != torch.bfloat16:
                t.data = t.data.to(torch.bfloat16)  # per tensor: the fp32 one is freed as it goes (in place)
    if emb is not None:
        model.set_input_embeddings(_bf16_lookup(emb))
    return model


def _input_table(model: Any) -> Any:
    """The model's input word-embedding module, or None if it has no plain ``nn.Embedding`` one."""
    import torch

    get = getattr(model, "get_input_embeddings", None)
    emb = get() if get is not None else None
    return emb if isinstance(emb, torch.nn.Embedding) else None


def _shared_table(model: Any) -> dict[int, Any] | None:
    """A ``copy.deepcopy`` memo under which the copy shares the input embedding table with ``model``."""
    emb = _input_table(model)
    return {id(emb): emb} if emb is not None else None


def _bf16_lookup(emb: Any) -> Any:
    import torch

    class Bf16Lookup(torch.nn.Module):
        """An embedding table looked up as is, its rows cast to bf16."""

        def __init__(self, inner: torch.nn.Embedding):
            super().__init__()
            self.inner = inner

        @property
        def weight(self) -> torch.Tensor:  # what callers of get_input_embeddings() read
            return self.inner.weight

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.inner(ids).to(torch.bfloat16)

    return Bf16Lookup(emb)


# ------------------------------------------------------------------------------ the parity check
def run_parity(measure: Callable[[str], tuple[np.ndarray, float]], langs: Sequence[str],
               candidates: Sequence[str] = ENGINES, rounds: int = 1, until_pass: bool = False) -> dict[str, dict[str, Any]]:
    """``{engine: {"passed", "seconds", "cosine": {lang: {min, mean}}}}``; fp32 is the reference.

    ``measure(engine)`` returns the probe set's embeddings and the seconds one pass took. The
    engines are measured in ``rounds`` interleaved rounds (fp32, bf16, int8, fp32, ...) so that
    a change in machine load hits all of them alike; ``seconds`` is each engine's fastest pass.

    ``until_pass``: the candidates are tried in :data:`PREFERENCE` order and the first that passes
    ends the check (``auto`` would never pick one after it): the engines after it are left out of
    the result, unmeasured. Why: each measured engine is a copy of the model and a pass over the
    probe set; int8's copy was a cold critic_score's peak (2.37 GiB of RSS, the rest of the stage
    under 1.8 GiB) while bf16 had already passed.
    """
    engines = ["fp32", *[e for e in PREFERENCE if e in candidates and e != "fp32"]]
    embs: dict[str, np.ndarray] = {}
    best: dict[str, float] = {}
    ref: np.ndarray | None = None
    for r in range(max(1, rounds)):
        for engine in engines if r == 0 else list(embs):
            emb, seconds = measure(engine)
            embs[engine] = emb
            best[engine] = min(best.get(engine, float("inf")), float(seconds))
            ref = embs["fp32"]
            if r == 0 and until_pass and engine != "fp32" and passes(cosines_by_language(ref, emb, langs)):
                break
    out: dict[str, dict[str, Any]] = {}
    for engine in embs:
        cos = cosines_by_language(ref, embs[engine], langs)
        out[engine] = {"passed": True if engine == "fp32" else passes(cos), "seconds": best[engine], "cosine": cos}
    return out


def describe(choice: str, results: Mapping[str, Mapping[str, Any]], source: str,
             candidates: Sequence[str] = ()) -> str:
    parts = []
    for engine, r in results.items():
        worst = min(r["cosine"].items(), key=lambda kv: kv[1]["min"])
        mean = min(v["mean"] for v in r["cosine"].values())
        parts.append(f"{engine}: {'pass' if r['passed'] else 'FAIL'} {r['seconds']:.2f}s, cosine min {worst[1]['min']:.5f} "
                     f"({worst[0]}), lowest language mean {mean:.5f}")
    parts += [f"{e}: not measured ({choice} passed before it)" for e in candidates if e not in results]
    return (f"encoder precision auto -> {choice} ({source}; the first of {', '.join(PREFERENCE)} that this CPU runs "
            f"natively and that passes parity: per language min cosine >= {MIN_COSINE}, mean >= {MEAN_COSINE}): "
            + "; ".join(parts))


def parity_path(model_sha256: str, cache_dir: str | Path, flags: set[str] | frozenset[str] | None = None) -> Path:
    """Where the parity check of (model, this CPU's native engines, machine) is cached."""
    candidates = native_engines(cpu_info()[1] if flags is None else flags)
    return Path(cache_dir) / "precision" / f"{parity_key(model_sha256, candidates)}.json"


def cached_choice(model_sha256: str, cache_dir: str | Path, flags: set[str] | frozenset[str] | None = None) -> str | None:
    """``auto``'s engine from the cached parity check, or None if there is none (nothing is
    measured, no model is needed: what a feature cache key is resolved with)."""
    flags = cpu_info()[1] if flags is None else flags
    doc = _read_cached(parity_path(model_sha256, cache_dir, flags))
    return None if doc is None else choose(flags, doc["results"])


def resolve(requested: str, model_sha256: str, cache_dir: str | Path,
            measure: Callable[[str], tuple[np.ndarray, float]] | None, langs: Sequence[str] | None = None,
            flags: set[str] | frozenset[str] | None = None, emit: Callable[[str], None] | None = None,
            rounds: int = 1) -> str:
    """The engine to run: ``requested`` itself unless it is ``auto``; for ``auto`` :func:`choose`
    over the cached parity check of (model, native engines, machine), run now (``measure``,
    ``langs``; in :data:`PREFERENCE` order, until an engine passes) if absent. ``flags``: the CPU's (default: this one's). The choice and its cosines
    are logged on every call, with a warning if the choice measured slower than fp32."""
    check_precision(requested)
    if requested != "auto":
        return requested
    flags = cpu_info()[1] if flags is None else flags
    candidates = native_engines(flags)
    path = parity_path(model_sha256, cache_dir, flags)
    doc = _read_cached(path)
    if doc is not None:
        results, source = doc["results"], f"cached {path.name}"
    else:
        if measure is None or langs is None:
            raise ValueError("encoder precision auto: no cached parity check and nothing to measure with")
        results, source = run_parity(measure, langs, candidates, rounds, until_pass=True), "measured now"
        _write_json(path, {"model_sha256": model_sha256, "machine": cpu_fingerprint(), "candidates": list(candidates),
                           "min_cosine": MIN_COSINE, "mean_cosine": MEAN_COSINE, "results": results,
                           "choice": choose(flags, results)})
    choice = choose(flags, results)
    _emit(describe(choice, results, source, candidates), emit)
    if results[choice]["seconds"] > results["fp32"]["seconds"]:
        msg = (f"encoder precision auto -> {choice}: it measured slower than fp32 in the parity run "
               f"({results[choice]['seconds']:.2f}s vs {results['fp32']['seconds']:.2f}s); the choice follows the "
               "fixed order, not timings (a loaded machine times noisily). Set precision: fp32 if this machine "
               "really runs fp32 faster")
        log.warning("%s", msg)
        if emit is not None:
            emit(msg)
    return choice


def _read_cached(path: Path) -> dict | None:
    """A cached parity check, or None if absent or unreadable (then it is measured again)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        results = doc["results"]
        if not all(isinstance(r["passed"], bool) and float(r["seconds"]) >= 0 and r["cosine"] for r in results.values()):
            return None
        return doc
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _emit(msg: str, emit: Callable[[str], None] | None) -> None:
    log.info("%s", msg)
    if emit is not None:
        emit(msg)
        return
    if os.environ.get("LIRA_QUIET") != "1":
        from tqdm.auto import tqdm

        tqdm.write(msg)


# ------------------------------------------------------------------------------ the encoder's side
class Engine:
    """What an :class:`~lira.encoders.base.Encoder` runs its inference forward with: ``name`` (the
    resolved precision), ``model`` (None: the encoder's own model - fp32, or bf16 before its weights
    are made; else the model to run, e.g. the int8 copy or the bf16 weights) and ``context``
    (entered around the forward)."""

    def __init__(self, name: str, model: Any | None = None, context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext):
        self.name, self.model, self.context = name, model, context

    def __repr__(self) -> str:
        return f"Engine({self.name!r})"


def model_id(backbone_sha256: str, adapter_sha256: str | None = None) -> str:
    """What the parity cache keys a model on: the backbone's content hash
    (:func:`lira.encoders.base.backbone_sha256`, known without loading it) plus the hash of a
    LoRA adapter merged into it."""
    return hashlib.sha256(f"{backbone_sha256}|lora:{adapter_sha256 or ''}".encode()).hexdigest()


def engine_for(encoder: Any, requested: str, cache_dir: str | Path, model_sha256: str | None = None,
               emit: Callable[[str], None] | None = None, per_kind: int = 3, device: str = "cpu", rounds: int = 1,
               flags: set[str] | frozenset[str] | None = None) -> Engine:
    """Resolve ``requested`` for this encoder (``auto``: the cached or a fresh parity check on the
    probe set, see :func:`resolve`) and build its engine. The engines are CPU engines: on another
    device ``auto`` is fp32 (said so in the log) and ``bf16``/``int8`` are refused. A bf16 engine
    comes without its weights (``model`` None): the encoder makes them on its first inference
    forward, when it knows whether anything in it trains.

    One round by default: the timings only go to the log (the rule never reads them), and every
    extra round is a pass of each candidate over the probe set in a cold run's first encoder load.

    ``model_sha256`` names the weights the encoder runs (see :func:`model_id`); without it the
    loaded tensors are hashed (which pages in every weight: prefer the files' hash)."""
    check_precision(requested)
    if requested == "fp32":
        return Engine("fp32")
    if device != "cpu":
        if requested != "auto":
            raise ValueError(f"encoder precision {requested!r} is a CPU engine; on device {device!r} use fp32 or auto")
        _emit(f"encoder precision auto -> fp32 (device {device}: the bf16/int8 engines here are CPU engines)", emit)
        return Engine("fp32")
    name = requested
    if requested == "auto":
        texts, langs = probe_set(per_kind)
        sha = model_sha256 or model_fingerprint(encoder.model)
        prepared: dict[str, tuple[Any, Callable[[], contextlib.AbstractContextManager]]] = {}

        def measure(engine: str) -> tuple[np.ndarray, float]:
            prep = prepared.get(engine)
            if prep is None:
                prep = prepare(encoder.model, engine)
                measure_engine(encoder, prep, texts[:8])  # warm-up: allocations, kernel choice
            if rounds > 1:  # kept for the next round; with one round each copy is dropped at once,
                prepared[engine] = prep  # so the check holds the fp32 model plus one candidate, not all
            result = measure_engine(encoder, prep, texts)
            del prep
            trim_heap()  # a dropped copy's pages go back to the OS now (lira.runtime.trim_heap)
            return result

        name = resolve("auto", sha, cache_dir, measure, langs, flags=flags, emit=emit, rounds=rounds)
        prepared.clear()  # drop the measured copies: the engine is built below as the encoder needs it
    if name == "bf16":
        return Engine("bf16")
    model, ctx = prepare(encoder.model, name)
    return Engine(name, None if model is encoder.model else model, ctx)


def measure_engine(encoder: Any, engine: str | tuple[Any, Callable[[], contextlib.AbstractContextManager]],
                   texts: Sequence[str], batch_size: int = 32) -> tuple[np.ndarray, float]:
    """Embeddings of ``texts`` (masked mean, L2-normalised, length-sorted batches) through one
    engine (a name, or what :func:`prepare` returned), and the seconds the pass took."""
    import time

    import torch

    model, ctx = prepare(encoder.model, engine) if isinstance(engine, str) else engine
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), int(encoder.hidden_size)), np.float32)
    start = time.perf_counter()
    with torch.inference_mode():
        for j in range(0, len(order), batch_size):
            idx = order[j : j + batch_size]
            batch = encoder.tokenize([texts[i] for i in idx], "passage")
            with ctx():
                hidden = model(**batch).last_hidden_state
            hidden = hidden.float()
            m = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp_min(1.0), dim=-1)
            out[idx] = pooled.cpu().numpy()
    return out, time.perf_counter() - start


def model_fingerprint(model: Any) -> str:
    """sha256 over a model's parameters and buffers (names, dtypes, shapes, bytes): the weights
    the encoder actually runs, LoRA merges included."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted({**dict(model.named_parameters()), **dict(model.named_buffers())}.items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\0".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())  # the tensor's own buffer: no copy
    return h.hexdigest()
