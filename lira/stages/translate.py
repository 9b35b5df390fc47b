"""Stage ``translate``: K translator agents each produce an English candidate for every LRL text.

Input ``<prepared>/texts.parquet`` (the languages of ``shared.languages``; every split). Output
``<translations>/candidates.parquet`` - one row per (agent, text):

    text_id, lang, agent, backend, model, prompt_version,
    candidate       cleaned English text, <NA> when there is none
    raw             the backend's raw output
    parse_flags     comma-joined: preamble, closing, untagged, unclosed, multiple, empty,
                    no_reference (simulated, no en_ref), backend_error (failed for good)
    distortion      simulated: the planted distortion or "clean"; <NA> for real backends
    cache_key

and ``<metrics>/translate.json`` (per agent its ``failed_share``). An agent failing on more than
``translate.max_failed_share`` of its rows fails the stage (:class:`StageFailed`, metrics written,
no candidates table). Raw outputs go through the append-only cache under
``<cache>/translations`` one batch at a time, so an interrupted run resumes where it stopped and a
rerun with nothing new makes no backend call at all (the backend isn't even built).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from lira.config import AgentParams, Params
from lira.errors import StageFailed
from lira.io import write_json, write_parquet
from lira.translate.agents import (
    ChatBackend,
    TranslationRequest,
    TranslatorBackend,
    backend_class,
    build_backend,
    sha256,
)
from lira.translate.cache import TranslationCache, cache_key
from lira.translate.parsing import join_flags, parse_translation
from lira.translate.prompts import PROMPT_VERSIONS

log = logging.getLogger(__name__)

METRICS = ["translate.json"]  # under paths.metrics; dvc.yaml declares the same (tests/stages/test_outputs.py)
PLOTS: list[str] = []
COLUMNS = ["text_id", "lang", "agent", "backend", "model", "prompt_version", "candidate", "raw",
           "parse_flags", "distortion", "cache_key"]


def load_requests(texts: pd.DataFrame, languages: list[str]) -> list[TranslationRequest]:
    texts = texts[texts["lang"].isin(languages)]
    return [
        TranslationRequest(
            text_id=str(r.text_id), lang=str(r.lang), text=str(r.text),
            en_ref=None if pd.isna(r.en_ref) or not str(r.en_ref).strip() else str(r.en_ref),
        )
        for r in texts.itertuples(index=False)
    ]


def foreign_pool(requests: list[TranslationRequest]) -> dict[str, list[str]]:
    """lang -> its source texts sorted by text_id (the simulated ``wrong_language`` distortion)."""
    pool: dict[str, list[tuple[str, str]]] = {}
    for r in requests:
        pool.setdefault(r.lang, []).append((r.text_id, r.text))
    return {k: [t for _, t in sorted(v)] for k, v in pool.items()}


def request_key(cls: type[TranslatorBackend], agent: AgentParams, req: TranslationRequest,
                prompt_version: str, seed: int) -> str:
    settings = {**cls.output_settings(agent, seed), **cls.request_settings(req)}
    return cache_key(req.text, agent=agent.name, backend=agent.backend, model=cls.model_name(agent),
                     prompt_version=prompt_version, settings=settings)


def translate_agent(agent: AgentParams, requests: list[TranslationRequest], cache: TranslationCache,
                    stored: dict[str, dict[str, Any]], *, prompt_version: str, seed: int, device: str,
                    pool: dict[str, list[str]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Translate what the cache lacks (batch by batch, a shard per batch); rows for every request."""
    from tqdm.auto import tqdm

    cls = backend_class(agent.backend)
    if issubclass(cls, ChatBackend) and prompt_version not in PROMPT_VERSIONS:
        raise ValueError(f"translate.prompt_version={prompt_version!r} is unknown; known: {list(PROMPT_VERSIONS)}")
    keys = [request_key(cls, agent, r, prompt_version, seed) for r in requests]
    skip = [cls.requires_reference and r.en_ref is None for r in requests]
    cached_before = {k for k in keys if k in stored}

    todo: dict[str, TranslationRequest] = {}  # unique missing keys, first occurrence
    for k, r, s in zip(keys, requests, skip):
        if not s and k not in stored and k not in todo:
            todo[k] = r
    failed: set[str] = set()
    calls = 0
    if todo:
        backend = build_backend(agent, prompt_version=prompt_version, seed=seed, device=device,
                                foreign_pool=pool)
        items = list(todo.items())
        batches = [items[i : i + agent.batch_size] for i in range(0, len(items), agent.batch_size)]
        try:
            for batch in tqdm(batches, desc=f"translate {agent.name}", unit="batch", disable=None):
                outs = backend.translate([r for _, r in batch])
                calls += 1
                if len(outs) != len(batch):
                    raise RuntimeError(f"backend {agent.backend!r} returned {len(outs)} outputs for "
                                       f"{len(batch)} requests")
                shard = []
                for (k, req), o in zip(batch, outs):
                    if o.error is not None or o.raw is None:
                        failed.add(k)
                        continue
                    row = {"cache_key": k, "text_sha": sha256(req.text), "agent": agent.name, "backend": agent.backend,
                           "model": cls.model_name(agent), "prompt_version": prompt_version, "raw": o.raw,
                           "distortion": o.distortion}
                    shard.append(row)
                    stored[k] = row
                cache.append(shard)  # this batch is safe from here on
        finally:
            backend.close()

    rows: list[dict[str, Any]] = []
    count = Counter()
    flag_counts: Counter[str] = Counter()
    distortions: Counter[str] = Counter()
    per_lang: dict[str, Counter[str]] = {}
    for k, r, s in zip(keys, requests, skip):
        base = {"text_id": r.text_id, "lang": r.lang, "agent": agent.name, "backend": agent.backend,
                "model": cls.model_name(agent), "prompt_version": prompt_version, "cache_key": k}
        lang_count = per_lang.setdefault(r.lang, Counter())
        lang_count["rows"] += 1
        if s:
            rows.append({**base, "candidate": None, "raw": None, "parse_flags": "no_reference",
                         "distortion": None})
            count["no_reference"] += 1
            flag_counts["no_reference"] += 1
            continue
        if k not in stored:
            rows.append({**base, "candidate": None, "raw": None, "parse_flags": "backend_error",
                         "distortion": None})
            count["failed"] += 1
            flag_counts["backend_error"] += 1
            continue
        entry = stored[k]
        cand, flags = parse_translation(_str_or_none(entry.get("raw")))
        distortion = _str_or_none(entry.get("distortion"))
        rows.append({**base, "candidate": cand, "raw": _str_or_none(entry.get("raw")),
                     "parse_flags": join_flags(flags), "distortion": distortion})
        count["cached" if k in cached_before else "new"] += 1
        flag_counts.update(flags)
        if distortion is not None:
            distortions[distortion] += 1
        if cand is not None:
            lang_count["candidates"] += 1
    asked = len(requests) - count["no_reference"]
    summary = {
        "backend": agent.backend, "model": cls.model_name(agent), "rows": len(requests),
        "failed_share": count["failed"] / asked if asked else 0.0,
        "cached": count["cached"], "new": count["new"], "failed": count["failed"],
        "no_reference": count["no_reference"], "backend_calls": calls,
        "unique_translated": len(todo) - len(failed),
        "per_lang": {lang: {"rows": c["rows"], "candidates": c["candidates"]} for lang, c in sorted(per_lang.items())},
        "parse_flags": dict(sorted(flag_counts.items())),
    }
    if distortions:
        summary["distortions"] = dict(sorted(distortions.items()))
    return rows, summary


def _str_or_none(v: Any) -> str | None:
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


def fill_agent(params: Params, root: Path, name: str) -> dict[str, Any]:
    """One agent's translations into the shared cache (shards of its own, each batch atomic) and
    nothing else: what one Prefect task per agent runs, concurrently with the other agents
    (flows/pipeline.py, ``parallel_agents``); the translate stage then finds them all cached. A
    killed fill resumes as the stage does: what reached the cache is kept, only the rest is asked."""
    agent = next((a for a in params.translate.agents if a.name == name), None)
    if agent is None:
        raise ValueError(f"translate.agents has no agent {name!r}; agents: {[a.name for a in params.translate.agents]}")
    paths = params.shared.paths
    texts = pd.read_parquet(Path(root) / paths.prepared / "texts.parquet")
    requests = load_requests(texts, params.shared.languages)
    cache = TranslationCache(Path(root) / paths.cache / "translations")
    _, summary = translate_agent(agent, requests, cache, cache.load(compact=False),
                                 prompt_version=params.translate.prompt_version, seed=params.shared.seed,
                                 device=params.shared.device, pool=foreign_pool(requests))
    return summary


def run(params: Params, root: Path) -> dict:
    t0 = time.perf_counter()
    root = Path(root)
    paths = params.shared.paths
    texts = pd.read_parquet(root / paths.prepared / "texts.parquet")
    requests = load_requests(texts, params.shared.languages)
    if not requests:
        raise ValueError(f"{paths.prepared}/texts.parquet holds no text in languages {params.shared.languages}")
    pool = foreign_pool(requests)
    cache = TranslationCache(root / paths.cache / "translations")
    stored = cache.load()

    rows: list[dict[str, Any]] = []
    agents: dict[str, Any] = {}
    for agent in params.translate.agents:
        agent_rows, agents[agent.name] = translate_agent(
            agent, requests, cache, stored, prompt_version=params.translate.prompt_version,
            seed=params.shared.seed, device=params.shared.device, pool=pool,
        )
        rows.extend(agent_rows)
        log.info("translate %s: %s", agent.name, {k: agents[agent.name][k] for k in ("cached", "new", "failed")})

    out = pd.DataFrame(rows, columns=COLUMNS).astype("string")
    max_failed = params.translate.max_failed_share
    failed_agents = [name for name, a in agents.items() if a["failed_share"] > max_failed]
    summary = {
        "texts": len(requests),
        "rows": len(out),
        "agents_k": len(params.translate.agents),
        "prompt_version": params.translate.prompt_version,
        "cache_hits": sum(a["cached"] for a in agents.values()),
        "new": sum(a["new"] for a in agents.values()),
        "failed": sum(a["failed"] for a in agents.values()),
        "no_reference": sum(a["no_reference"] for a in agents.values()),
        "backend_calls": sum(a["backend_calls"] for a in agents.values()),
        "candidates": int(out["candidate"].notna().sum()),
        "max_failed_share": max_failed,
        "failed_agents": failed_agents,
        "passed": not failed_agents,
        "agents": agents,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_json(root / paths.metrics / "translate.json", summary)
    table = root / paths.translations / "candidates.parquet"
    if failed_agents:
        table.unlink(missing_ok=True)  # never leave an old table that looks like this run's
        detail = "; ".join(f"{n}: {agents[n]['failed']}/{agents[n]['rows'] - agents[n]['no_reference']} rows failed"
                           for n in failed_agents)
        raise StageFailed(f"translate: agent(s) over translate.max_failed_share = {max_failed:.1%}: {detail}. "
                          "Successful outputs are cached; fix the backend and rerun (only the failures are retried)")
    write_parquet(table, out)
    return summary
