"""lira index build / lira search --index: the catalogue embedded once, verified on load, the same
hits as the re-embedding search; items from the pipeline's prepared tables, CSV and JSONL."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "tracking"))

from lira_testkit import build_lira_folder

from lira import api
from lira.cli import app
from lira.integrity import IntegrityError
from lira.items import read_items
from lira.search_index import QueryScriptWarning, build_index, load_index, search_index

ITEMS = [
    {"id": "vi-1", "text": "Điện thoại này có pin rất tốt.", "lang": "vi"},
    {"id": "vi-2", "text": "sạc dự phòng 20000 mAh", "lang": "vi"},
    {"id": "vi-3", "text": "ốp lưng iphone màu đen", "lang": "vi"},
    {"id": "vi-4", "text": "tai nghe không dây chống ồn", "lang": "vi"},
    {"id": "th-1", "text": "โทรศัพท์เครื่องนี้แบตเตอรี่ดีมาก", "lang": "th"},
    {"id": "th-2", "text": "หม้อหุงข้าวไฟฟ้า ความจุ 1 ลิตร", "lang": "th"},
]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LIRA_CACHE", str(tmp_path / "cache"))
    import lira.search_index

    monkeypatch.setattr(lira.search_index, "_CHECKED", {})


@pytest.fixture(scope="module")
def lira_dir(tmp_path_factory, tiny_bert_dir) -> Path:
    return build_lira_folder(tmp_path_factory.mktemp("index-model") / "full", tiny_bert_dir, languages=("vi", "th"))


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_items_from_prepared_tables_csv_and_jsonl(tmp_path):
    # the pipeline's prepared tables: items name a text_id, the text is in texts.parquet beside them
    prep = tmp_path / "prepared"
    prep.mkdir()
    pd.DataFrame({"item_id": [r["id"] for r in ITEMS], "lang": [r["lang"] for r in ITEMS],
                  "text_id": [f"t-{i}" for i in range(len(ITEMS))], "category": "x", "split": "test"}
                 ).to_parquet(prep / "items.parquet")
    texts = pd.DataFrame({"text_id": [f"t-{i}" for i in range(len(ITEMS))], "lang": [r["lang"] for r in ITEMS],
                          "text": [r["text"] for r in ITEMS], "role": "item"})
    texts.to_parquet(prep / "texts.parquet")
    want = pd.DataFrame(ITEMS)
    pd.testing.assert_frame_equal(read_items(prep / "items.parquet"), want)
    csv = tmp_path / "items.csv"
    pd.DataFrame(ITEMS).assign(id=["007", "vi-2", "vi-3", "vi-4", "th-1", "th-2"]).to_csv(csv, index=False)
    got = read_items(csv)
    assert got["id"].tolist()[0] == "007" and got["text"].tolist() == want["text"].tolist()  # ids stay strings
    nolang = _jsonl(tmp_path / "vi.jsonl", [{"id": r["id"], "text": r["text"]} for r in ITEMS[:4]])
    assert read_items(nolang, lang="vi")["lang"].tolist() == ["vi"] * 4
    with pytest.raises(ValueError, match=r"missing \['lang'\].*--lang"):
        read_items(nolang)
    # a prepared table whose texts file is missing, or lacks a text: the file and the id are named
    texts.iloc[1:].to_parquet(prep / "texts.parquet")
    with pytest.raises(ValueError, match=r"items.parquet: text_id 't-0'.*not in texts.parquet"):
        read_items(prep / "items.parquet")
    (prep / "texts.parquet").unlink()
    with pytest.raises(ValueError, match="no text column.*texts.parquet"):
        read_items(prep / "items.parquet")
    dup = _jsonl(tmp_path / "dup.jsonl", [ITEMS[0], ITEMS[0]])
    with pytest.raises(ValueError, match="'vi-1' appears more than once"):
        read_items(dup)


@pytest.mark.parametrize("backend", ["exact", "hnsw"])
def test_index_search_equals_the_re_embedding_search(tmp_path, lira_dir, backend):
    items = _jsonl(tmp_path / "items.jsonl", ITEMS)
    none = tmp_path / "none.yaml"
    meta = build_index(str(lira_dir), items, tmp_path / "idx", params_path=none, backend=backend)
    assert meta["n"] == 6 and meta["languages"]["vi"] == {"start": 2, "count": 4, "backend": backend}
    assert (tmp_path / "idx" / "hnsw-vi.faiss").exists() == (backend == "hnsw")
    idx = load_index(tmp_path / "idx")
    for query, lang, items_lang in (("pin điện thoại tốt", "vi", None), ("sạc dự phòng", "vi", "th"),
                                    ("หม้อหุงข้าว", "th", None)):
        got = search_index(query, idx, lang, k=10, items_lang=items_lang, params_path=none)
        want = api.search(query, model=str(lira_dir), items_path=items, lang=lang, k=10, params_path=none,
                          items_lang=items_lang)
        assert [h[0] for h in got] == [h[0] for h in want]
        np.testing.assert_allclose([h[1] for h in got], [h[1] for h in want], atol=1e-5)
        assert [h[2] for h in got] == [h[2] for h in want]
    assert len(search_index("pin", idx, "vi", k=2, params_path=none)) == 2


def test_a_changed_index_or_model_is_refused(tmp_path, lira_dir, tiny_bert_dir):
    items = _jsonl(tmp_path / "items.jsonl", ITEMS)
    none = tmp_path / "none.yaml"
    build_index(str(lira_dir), items, tmp_path / "idx", params_path=none)
    vec = tmp_path / "idx" / "vectors.npy"
    good = vec.read_bytes()
    v = np.load(vec)
    v[0] = -v[0]
    np.save(vec, v)
    with pytest.raises(IntegrityError, match="vectors.npy: content differs"):
        load_index(tmp_path / "idx")
    vec.write_bytes(good)
    load_index(tmp_path / "idx")
    # the model the index was built with was retrained in place: its vectors are from another space
    other = build_lira_folder(tmp_path / "moved", tiny_bert_dir, languages=("vi", "th"), seed=1)
    build_index(str(other), items, tmp_path / "idx2", params_path=none)
    import shutil

    shutil.rmtree(other)
    build_lira_folder(other, tiny_bert_dir, languages=("vi", "th"), seed=2)
    with pytest.raises(ValueError, match="rebuild the index"):
        search_index("pin", tmp_path / "idx2", "vi", params_path=none)


def test_cli_build_and_search_with_a_script_warning(tmp_path, tiny_bert_dir):
    runner = CliRunner()
    items = _jsonl(tmp_path / "items.jsonl", ITEMS)
    none = str(tmp_path / "none.yaml")
    spec = f"hf:{tiny_bert_dir}"
    res = runner.invoke(app, ["index", "build", str(tmp_path / "idx"), "--model", spec, "--items", str(items),
                              "--params", none])
    assert res.exit_code == 0, res.output
    assert "6 items of dim 32" in res.stdout and "vi 4 (exact)" in res.stdout
    res = runner.invoke(app, ["search", "--index", str(tmp_path / "idx"), "--lang", "vi", "pin điện thoại", "-k", "2",
                              "--params", none])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("1. ") and "warning" not in res.stderr
    want = api.search("pin điện thoại", model=spec, items_path=items, lang="vi", k=2, params_path=none)
    assert [ln.split()[2] for ln in lines] == [h[0] for h in want]
    # Thai-script query given as Vietnamese: still answered, with a warning naming the mismatch
    res = runner.invoke(app, ["search", "--index", str(tmp_path / "idx"), "--lang", "vi", "หม้อหุงข้าว", "--params", none])
    assert res.exit_code == 0 and "warning: the query does not look like 'vi' text" in res.stderr
    with pytest.warns(QueryScriptWarning):
        search_index("หม้อหุงข้าว", tmp_path / "idx", "vi", params_path=none)
    res = runner.invoke(app, ["search", "--index", str(tmp_path / "idx"), "--model", spec, "--lang", "vi", "x"])
    assert res.exit_code == 2 and "drop --model/--items" in res.stderr
    res = runner.invoke(app, ["search", "--index", str(tmp_path / "idx"), "--lang", "ms", "x", "--params", none])
    assert res.exit_code == 1 and "no items in language 'ms'" in res.stderr
