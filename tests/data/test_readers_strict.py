"""#17 items 10 and 11: the BEIR reader loses nothing silently; wrong-script texts and invalid UTF-8
are errors naming file, line and field, or rejects with their reason."""

from __future__ import annotations

import pytest

from lira.data.readers import DataError, read_beir, read_mc_jsonl, read_parallel_tsv, read_sts

CORPUS = '{"_id": "d1", "title": "ชา", "text": "ชาเขียว 100 กรัม"}\n{"_id": "d2", "text": "ชาดำ 100 กรัม"}\n'
QUERIES = '{"_id": "q1", "text": "ชาเขียว"}\n{"_id": "q2", "text": "ชาดำ"}\n'
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n"


def beir(tmp_path, corpus=CORPUS, queries=QUERIES, qrels=QRELS, extra=None):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    for name, text in (("corpus.jsonl", corpus), ("queries.jsonl", queries), ("qrels/test.tsv", qrels),
                       *((extra or {}).items())):
        (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return folder


def test_the_clean_folder_reads(tmp_path):
    ds = read_beir(beir(tmp_path), "th", name="toy")
    assert len(ds.items) == 2 and len(ds.queries) == 2 and len(ds.qrels) == 2 and ds.rejects == []


CASES = [
    # duplicate query id: the second used to overwrite the first
    ({'queries': QUERIES + '{"_id": "q1", "text": "ชาอื่น"}\n'}, "queries.jsonl", "line 3", "_id", "duplicate"),
    # the same (query, document) pair with two relevances: both used to be kept
    ({'qrels': QRELS + "q1\td1\t0\n"}, "qrels/test.tsv", "line 4", "score", "conflicting"),
    # a query without qrels used to be dropped without a word
    ({'queries': QUERIES + '{"_id": "q3", "text": "ชาเย็น"}\n'}, "queries.jsonl", "line 3", "_id", "no qrels"),
    # a non-string title used to be dropped
    ({'corpus': CORPUS + '{"_id": "d3", "title": 7, "text": "ชาเย็น"}\n'}, "corpus.jsonl", "line 3", "title",
     "expected a string"),
    # English and Vietnamese accepted as Thai
    ({'corpus': CORPUS + '{"_id": "d3", "text": "Green tea, 100 g"}\n'}, "corpus.jsonl", "line 3", "text",
     "script"),
    ({'queries': QUERIES + '{"_id": "q3", "text": "trà xanh"}\n', 'qrels': QRELS + "q3\td1\t1\n"},
     "queries.jsonl", "line 3", "text", "script"),
    # one query in two splits' qrels
    ({'extra': {"qrels/train.tsv": "query-id\tcorpus-id\tscore\nq1\td2\t1\n"}}, "qrels/train.tsv", "line 2",
     "query-id", "split"),
]


@pytest.mark.parametrize("kw, file, where, field, reason", CASES)
def test_each_problem_is_an_error_naming_file_line_and_field(tmp_path, kw, file, where, field, reason):
    folder = beir(tmp_path, **kw)
    with pytest.raises(DataError) as e:
        read_beir(folder, "th")
    assert (e.value.file, e.value.where, e.value.field) == (str(folder / file), where, field)
    assert reason in e.value.reason


@pytest.mark.parametrize("kw, file, where, field, reason", CASES)
def test_or_a_reject_with_its_reason(tmp_path, kw, file, where, field, reason):
    folder = beir(tmp_path, **kw)
    ds = read_beir(folder, "th", on_bad_row="reject")
    assert (ds.rejects[0]["file"], ds.rejects[0]["where"], ds.rejects[0]["field"]) == (str(folder / file), where, field)
    assert reason in ds.rejects[0]["reason"]
    # a qrel of a rejected query is rejected too, saying why (not dropped silently)
    assert all("was rejected" in r["reason"] for r in ds.rejects[1:])
    assert len(ds.rejects) == (2 if "q3\td1" in kw.get("qrels", "") else 1)
    # nothing that was rejected is used, nothing else is lost
    qrels = {(q["query_id"], q["item_id"]) for q in ds.qrels}
    assert len(qrels) == len(ds.qrels)
    assert {q["query_id"] for q in ds.qrels} == {q["query_id"] for q in ds.queries}
    texts = {t["text_id"]: t["text"] for t in ds.texts}
    assert "Green tea, 100 g" not in texts.values() and "trà xanh" not in texts.values()
    assert texts["beir:q:q1"] == "ชาเขียว"  # the first of a duplicate id stays


BAD = b"\xff\xfe"  # never valid UTF-8


@pytest.mark.parametrize("reader, name, good, bad_line", [
    (read_parallel_tsv, "par.tsv", "text\ten\nชาเขียว\tGreen tea\n", "ชา".encode() + BAD + b"\tTea\n"),
    (read_sts, "sts.tsv", "text_a\ttext_b\tscore\nฝนตก\tฝนกำลังตก\t4\n", b"a" + BAD + b"\tb\t3\n"),
    (read_mc_jsonl, "mc.jsonl", '{"id": "1", "question": "ถาม", "choices": ["ก", "ข"], "answer": 1}\n',
     b'{"id": "2", "question": "' + BAD + b'", "choices": ["a", "b"], "answer": 0}\n'),
])
def test_invalid_utf8_names_file_line_and_byte_or_is_rejected(tmp_path, reader, name, good, bad_line):
    f = tmp_path / name
    f.write_bytes(good.encode("utf-8") + bad_line)
    offset = len(good.encode("utf-8")) + bad_line.index(BAD)
    line = good.count("\n") + 1
    with pytest.raises(DataError) as e:
        reader(f, "th")
    assert e.value.file == str(f) and e.value.where == f"line {line}, byte {offset}" and "UTF-8" in e.value.reason
    ds = reader(f, "th", on_bad_row="reject")
    assert len(ds.rejects) == 1 and ds.rejects[0]["where"] == f"line {line}, byte {offset}"
    assert len(ds.texts) >= 1  # the good row is kept


def test_invalid_utf8_in_beir_is_rejected_by_row(tmp_path):
    corpus = CORPUS.encode() + b'{"_id": "d3", "text": "' + BAD + b'"}\n'
    folder = beir(tmp_path, corpus=corpus)
    with pytest.raises(DataError, match=r"corpus.jsonl: line 3, byte \d+: field '-': invalid UTF-8"):
        read_beir(folder, "th")
    ds = read_beir(folder, "th", on_bad_row="reject")
    assert len(ds.items) == 2 and len(ds.rejects) == 1


@pytest.mark.parametrize("reader, name, content", [
    (read_parallel_tsv, "par.tsv", "text\ten\nGreen tea\tGreen tea\n"),
    (read_sts, "sts.tsv", "text_a\ttext_b\tscore\nIt rains\tฝนตก\t4\n"),
    (read_mc_jsonl, "mc.jsonl", '{"id": "1", "question": "Which one?", "choices": ["ก", "ข"], "answer": 1}\n'),
])
def test_every_reader_checks_the_script(tmp_path, reader, name, content):
    f = tmp_path / name
    f.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match="script"):
        reader(f, "th")
    assert len(reader(f, "th", on_bad_row="reject").rejects) == 1


def test_read_utf8_names_line_and_byte(tmp_path):
    from lira.data.readers import read_utf8

    f = tmp_path / "th.json"
    f.write_bytes(b'{"lang": "th",\n "items": ["' + BAD + b'"]}')
    with pytest.raises(DataError) as e:
        read_utf8(f)
    assert e.value.where == "line 2, byte 27" and e.value.file == str(f)


def test_build_dataset_rejects_an_invalid_utf8_row_when_asked(tmp_path):
    import pandas as pd

    from lira.config import parse_params
    from lira.stages import build_dataset

    good = "".join(f"Xin chào {i}\tHello {i}\n" for i in range(12))
    (tmp_path / "par.tsv").write_bytes(b"text\ten\n" + good.encode() + b"T" + BAD + b"m\tBye\n")
    data = {"shared": {"languages": ["vi"]},
            "build_dataset": {"sources": [{"kind": "parallel_tsv", "path": "par.tsv", "language": "vi"}]}}
    with pytest.raises(DataError, match=r"par.tsv: line 14, byte \d+: field '-': invalid UTF-8"):
        build_dataset.run(parse_params(data), tmp_path)
    data["build_dataset"]["on_bad_row"] = "reject"
    summary = build_dataset.run(parse_params(data), tmp_path)
    rejects = pd.read_parquet(tmp_path / "data" / "prepared" / "rejects.parquet")
    assert summary["n_rejects"] == 1 and rejects["where"].str.startswith("line 14, byte").all()
    assert len(pd.read_parquet(tmp_path / "data" / "prepared" / "parallel.parquet")) == 12
