"""lira.api: load by name (encoder spec, LiRA folder, registry URI), embed, in-language search."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent / "tracking"))

from lira_testkit import build_lira_folder, fresh_store

from lira import api
from lira.model import LiraModel

ITEMS = [
    {"id": "vi-1", "text": "Điện thoại này có pin rất tốt.", "lang": "vi"},
    {"id": "vi-2", "text": "sạc dự phòng 20000 mAh", "lang": "vi"},
    {"id": "vi-3", "text": "ốp lưng iphone màu đen", "lang": "vi"},
    {"id": "th-1", "text": "โทรศัพท์เครื่องนี้แบตเตอรี่ดีมาก", "lang": "th"},
    {"id": "id-1", "text": "Ponsel ini baterainya sangat bagus.", "lang": "id"},
]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LIRA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("LIRA_MLFLOW_PARENT_RUN_ID", raising=False)


@pytest.fixture(scope="module")
def lira_dir(tmp_path_factory, tiny_bert_dir) -> Path:
    return build_lira_folder(
        tmp_path_factory.mktemp("api-model") / "full", tiny_bert_dir, languages=("vi", "th", "id")
    )


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_search_with_an_encoder_is_in_language_and_sorted(tmp_path, tiny_bert_dir):
    items = _jsonl(tmp_path / "items.jsonl", ITEMS)
    spec = f"hf:{tiny_bert_dir}"
    query = "pin điện thoại tốt"
    hits = api.search(
        query, model=spec, items_path=items, lang="vi", k=10, params_path=tmp_path / "none.yaml"
    )
    assert [h[0] for h in hits if not h[0].startswith("vi-")] == []
    assert len(hits) == 3
    scores = [h[1] for h in hits]
    assert scores == sorted(scores, reverse=True)
    # the scores are the cosines of the query (kind query) and items (kind passage)
    q = api.embed([query], spec, kind="query", params_path=tmp_path / "none.yaml")
    vi = [r for r in ITEMS if r["lang"] == "vi"]
    e = api.embed([r["text"] for r in vi], spec, kind="passage", params_path=tmp_path / "none.yaml")
    want = sorted(zip((r["id"] for r in vi), (e @ q[0]).tolist()), key=lambda t: -t[1])
    assert [h[0] for h in hits] == [w[0] for w in want]
    np.testing.assert_allclose([h[1] for h in hits], [w[1] for w in want], atol=1e-5)
    assert {h[0]: h[2] for h in hits}["vi-2"] == "sạc dự phòng 20000 mAh"
    top1 = api.search(query, model=spec, items_path=items, lang="vi", k=1, params_path=tmp_path / "none.yaml")
    assert top1 == hits[:1]


def test_search_with_a_lira_folder_reads_parquet_and_sample_files(tmp_path, lira_dir):
    pq = tmp_path / "items.parquet"
    pd.DataFrame(ITEMS).rename(columns={"id": "item_id"}).to_parquet(pq)
    # The sample's items file as it ships (lira/sample/data/<lang>/items.jsonl): extra fields are ignored.
    sample = tmp_path / "th" / "items.jsonl"
    sample.parent.mkdir()
    sample.write_text(
        "".join(json.dumps({"id": i, "lang": "th", "category": "phone", "text": t, "en": e}, ensure_ascii=False) + "\n"
                for i, t, e in [("t1", "แบตเตอรี่", "battery"), ("t2", "โทรศัพท์", "phone")]),
        encoding="utf-8",
    )
    hits = api.search(
        "แบตเตอรี่ดี", model=str(lira_dir), items_path=pq, lang="th", k=5, params_path=tmp_path / "none.yaml"
    )
    assert [h[0] for h in hits] == ["th-1"]
    hits = api.search(
        "แบตเตอรี่ดี", model=str(lira_dir), items_path=sample, lang="th", params_path=tmp_path / "none.yaml"
    )
    assert sorted(h[0] for h in hits) == ["t1", "t2"] and hits[0][1] >= hits[1][1]
    m = LiraModel.load(lira_dir)
    q, e = m.embed(["แบตเตอรี่ดี"], "th", kind="query"), m.embed(["แบตเตอรี่", "โทรศัพท์"], "th", kind="passage")
    np.testing.assert_allclose(
        sorted((h[1] for h in hits), reverse=True), sorted((e @ q[0]).tolist(), reverse=True), atol=1e-5
    )


def test_clear_errors(tmp_path, lira_dir, tiny_bert_dir):
    none = tmp_path / "none.yaml"
    with pytest.raises(FileNotFoundError, match="missing.jsonl: no such items file"):
        api.search(
            "q", model=str(lira_dir), items_path=tmp_path / "missing.jsonl", lang="vi", params_path=none
        )
    items = _jsonl(tmp_path / "items.jsonl", ITEMS)
    with pytest.raises(ValueError, match=r"no items in language 'ms'.*\['id', 'th', 'vi'\]"):
        api.search("q", model=str(lira_dir), items_path=items, lang="ms", params_path=none)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x", "lang": "vi"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl: line 2 is not valid JSON"):
        api.read_items(bad)
    old_sample = tmp_path / "th.json"
    old_sample.write_text('{"lang": "th", "items": []}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"th.json: items must be .parquet, .jsonl or .csv, got '.json'"):
        api.read_items(old_sample)
    nolang = _jsonl(tmp_path / "nolang.jsonl", [{"id": "a", "text": "x"}])
    with pytest.raises(ValueError, match=r"nolang.jsonl: .*missing \['lang'\]"):
        api.read_items(nolang)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not a parquet file")
    with pytest.raises(ValueError, match="broken.parquet: cannot read items"):
        api.read_items(broken)
    with pytest.raises(ValueError, match="needs the texts' language"):
        api.embed(["x"], model=str(lira_dir), params_path=none)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        api.load(str(tmp_path / "nowhere"), params_path=none)
    with pytest.raises(ValueError, match="not a lira model folder"):
        api.load(str(tiny_bert_dir), params_path=none)


def _register(tmp_path: Path, folder: Path, store: str) -> tuple[Path, str]:
    """A project whose params point at a fresh store ``store``, with ``folder`` registered in it
    (not yet promoted); returns (params.yaml, the version)."""
    from lira.config import load_params
    from lira.tracking import runs
    from lira.tracking.model import log_lira_model

    uri = fresh_store(tmp_path / store)
    params_path = tmp_path / "proj" / "params.yaml"
    params_path.parent.mkdir(exist_ok=True)
    params_path.write_text(
        yaml.safe_dump(
            {
                "shared": {"languages": ["vi", "th", "id"]},
                "tracking": {"tracking_uri": uri, "registered_model": "lira-api"},
                "evaluate": {"bootstrap_resamples": 200},
            }
        )
    )
    params, root = load_params(params_path), params_path.parent
    run_id = runs.log_stage(params.tracking, root, "evaluate", {}, config=params.resolved(), paths=params.shared.paths)
    qids = [f"q{i}" for i in range(10)]
    version = log_lira_model(
        params.tracking,
        root,
        folder,
        run_id,
        {
            "format": "lira-gate/2",
            "test_set_sha256": "cd" * 32,
            "query_ids": qids,
            "metrics": {"retrieval.ndcg@10": [0.8 + 0.01 * i for i in range(10)]},
            "baselines": {"frozen": {"retrieval.ndcg@10": [0.5] * 10}},
        },
    )
    return params_path, version


def _promote(params_path: Path) -> None:
    from lira.config import load_params
    from lira.tracking import registry

    p = load_params(params_path)
    assert registry.promote(p.tracking, params_path.parent, resamples=p.evaluate.bootstrap_resamples,
                            confidence=p.evaluate.confidence, seed=p.shared.seed).promoted


TEXTS = ["Điện thoại này có pin rất tốt.", "sạc dự phòng"]


def test_registry_uris_load_the_registered_lira_model(tmp_path, lira_dir):
    params_path, version = _register(tmp_path, lira_dir, "store")
    root = params_path.parent
    with pytest.raises(ValueError, match="models:/lira-api@champion.*not found"):
        api.load("models:/lira-api@champion", params_path=params_path)
    _promote(params_path)
    want = LiraModel.load(lira_dir).embed(TEXTS, "vi", kind="passage")
    for model in ("models:/lira-api@champion", f"models:/lira-api/{version}"):
        got = api.embed(TEXTS, model=model, lang="vi", kind="passage", params_path=params_path)
        np.testing.assert_allclose(got, want, atol=1e-5)
    # downloaded once into the project's cache (paths.cache), not the CWD
    cached = list((root / ".cache" / "lira" / "registry" / "lira-api").iterdir())
    assert len(cached) == 1 and cached[0].name.startswith(f"{version}-")


def test_a_recreated_store_s_version_is_not_served_from_the_old_download(tmp_path, lira_dir, tiny_bert_dir):
    """Reproduction: the download cache was keyed by name/version only, so after the store was
    recreated (a fresh ``mlruns.db``: the new model is v1 again) every load was refused by the
    manifest check against the old v1's files."""
    params_path, version = _register(tmp_path, lira_dir, "store")
    _promote(params_path)
    old = api.embed(TEXTS, model="models:/lira-api@champion", lang="vi", kind="passage", params_path=params_path)

    other = build_lira_folder(tmp_path / "other", tiny_bert_dir, languages=("vi", "th", "id"), seed=1)
    params_path2, version2 = _register(tmp_path, other, "store2")  # same project, a new store
    assert params_path2 == params_path and version2 == version
    _promote(params_path)
    got = api.embed(TEXTS, model="models:/lira-api@champion", lang="vi", kind="passage", params_path=params_path)
    np.testing.assert_allclose(got, LiraModel.load(other).embed(TEXTS, "vi", kind="passage"), atol=1e-5)
    assert not np.allclose(got, old, atol=1e-3)


def test_lira_embeds_english_into_the_space_of_its_lrl_embeddings(tmp_path, tiny_bert_dir):
    """Issue 13: `lang="en"` reads English on the English path alone; the untrained default LiRA
    (residual at full width, S_feat 1) gives exactly the frozen encoder's embeddings on both sides."""
    folder = build_lira_folder(tmp_path / "m" / "full", tiny_bert_dir, languages=("vi", "th"), s_feat=1, residual=True)
    none = tmp_path / "none.yaml"
    spec = f"hf:{tiny_bert_dir}"
    en_texts = ["a phone with a very good battery", "a black iphone case"]
    got_en = api.embed(en_texts, model=str(folder), lang="en", kind="passage", params_path=none)
    np.testing.assert_allclose(got_en, api.embed(en_texts, spec, kind="passage", params_path=none), atol=1e-5)
    th = ["โทรศัพท์เครื่องนี้แบตเตอรี่ดีมาก"]
    got_th = api.embed(th, model=str(folder), lang="th", params_path=none)
    np.testing.assert_allclose(got_th, api.embed(th, spec, params_path=none), atol=1e-5)
    # mixed languages in one call: each row as if embedded alone
    m = LiraModel.load(folder)
    mixed = m.embed([en_texts[0], th[0]], ["en", "th"], kind="passage")
    np.testing.assert_allclose(mixed[0], m.embed([en_texts[0]], "en", kind="passage")[0], atol=1e-6)
    np.testing.assert_allclose(mixed[1], m.embed(th, "th", kind="passage")[0], atol=1e-6)
    with pytest.raises(ValueError, match=r"\['fr'\] not in this model's languages \['vi', 'th', 'en'\]"):
        m.embed(["x"], "fr")


def test_cross_lingual_search_scores_lrl_queries_against_english_items(tmp_path, lira_dir):
    none = tmp_path / "none.yaml"
    rows = [*ITEMS, {"id": "en-1", "text": "This phone has a great battery.", "lang": "en"},
            {"id": "en-2", "text": "black iphone case", "lang": "en"}]
    items = _jsonl(tmp_path / "items.jsonl", rows)
    query = "โทรศัพท์เครื่องนี้แบตเตอรี่ดีมาก"
    hits = api.search(query, model=str(lira_dir), items_path=items, lang="th", items_lang="en", params_path=none)
    assert sorted(h[0] for h in hits) == ["en-1", "en-2"]
    q = api.embed([query], model=str(lira_dir), lang="th", kind="query", params_path=none)
    e = api.embed([r["text"] for r in rows[-2:]], model=str(lira_dir), lang="en", kind="passage", params_path=none)
    want = dict(zip(["en-1", "en-2"], (e @ q[0]).tolist()))
    np.testing.assert_allclose([h[1] for h in hits], [want[h[0]] for h in hits], atol=1e-5)
    # and the reverse: an English query against Vietnamese items
    rev = api.search("phone battery", model=str(lira_dir), items_path=items, lang="en", items_lang="vi", params_path=none)
    assert {h[0] for h in rev} == {"vi-1", "vi-2", "vi-3"}
    from typer.testing import CliRunner

    from lira.cli import app

    out = CliRunner().invoke(app, ["search", query, "-m", str(lira_dir), "--items", str(items), "--lang", "th",
                                   "--items-lang", "en", "--params", str(none)])
    assert out.exit_code == 0, out.output
    assert [ln.split()[2] for ln in out.output.strip().splitlines()] == [h[0] for h in hits]


def test_embed_with_translations_serves_the_fused_system(tmp_path, lira_dir):
    """`lira embed` served only the LRL path; the fused `lira` row needs a translation per text."""
    from typer.testing import CliRunner

    from lira.cli import app

    none = tmp_path / "none.yaml"
    texts, trans = ["pin điện thoại tốt", "ốp lưng màu đen"], ["a good phone battery", "a black phone case"]
    m = LiraModel.load(lira_dir)
    fused, lrl = m.embed(texts, "vi", translations=trans), m.embed(texts, "vi")
    assert not np.allclose(fused, lrl, atol=1e-4)  # two different systems
    np.testing.assert_allclose(api.embed(texts, str(lira_dir), "vi", params_path=none, translations=trans), fused, atol=1e-6)
    np.testing.assert_allclose(api.embed(texts, str(lira_dir), "vi", params_path=none), lrl, atol=1e-6)
    args = ["embed", "-m", str(lira_dir), "--lang", "vi", "--params", str(none)]
    for t in texts:
        args += ["--text", t]
    out = CliRunner().invoke(app, [*args, "--translation", trans[0], "--translation", trans[1]])
    assert out.exit_code == 0, out.output
    np.testing.assert_allclose(np.array(json.loads(out.output)["embeddings"]), fused, atol=1e-5)
    out = CliRunner().invoke(app, [*args, "--translation", trans[0]])
    assert out.exit_code == 2 and "1 translation(s) for 2 text(s)" in out.output
