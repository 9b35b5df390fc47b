"""Readers: every supported source format -> one :class:`Dataset` (rows of the task schemas).

A bad row raises :class:`DataError` naming the file, the line (or record) and the field, or, when
params say ``on_bad_row: reject``, goes to the rejects table with the reason. Nothing is dropped
silently. Line-based files are read as bytes and decoded line by line, so invalid UTF-8 is a bad
row (``line N, byte B``), and every text is checked against its language's script
(:func:`lira.languages.script_mismatch`; English references against Latin).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lira.data.schemas import Dataset
from lira.languages import script_mismatch


class DataError(ValueError):
    def __init__(self, file: str | Path, where: str, field: str, reason: str):
        self.file, self.where, self.field, self.reason = str(file), where, field, reason
        super().__init__(f"{file}: {where}: field {field!r}: {reason}")


class Rows:
    """Collects rows; turns a bad row into an error or a reject, as params say."""

    def __init__(self, source: str, on_bad_row: str):
        self.source = source
        self.on_bad_row = on_bad_row
        self.ds = Dataset()

    def bad(self, file: str | Path, where: str, field: str, reason: str, raw: Any) -> None:
        if self.on_bad_row == "error":
            raise DataError(file, where, field, reason)
        raw_s = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
        self.ds.rejects.append(
            {"source": self.source, "file": str(file), "where": where, "field": field, "reason": reason, "raw": raw_s[:2000]}
        )

    def script_ok(self, file: str | Path, where: str, field: str, lang: str, text: str | None, raw: Any) -> bool:
        """False (after reporting it) when ``text`` is not in ``lang``'s script."""
        reason = None if text is None else script_mismatch(text, lang)
        if reason is None:
            return True
        self.bad(file, where, field, reason, raw)
        return False

    def text(self, text_id: str, lang: str, text: str, en_ref: str | None, role: str) -> None:
        self.ds.texts.append(
            {"text_id": text_id, "lang": lang, "text": text, "en_ref": en_ref, "role": role, "source": self.source, "split": None}
        )


def _need_str(rec: dict, key: str, rows: Rows, file: Path, where: str, optional: bool = False) -> str | None:
    """A non-empty string field, or None after reporting the problem."""
    if key not in rec or rec[key] is None:
        if not optional:
            rows.bad(file, where, key, "missing", rec)
        return None
    val = rec[key]
    if not isinstance(val, str):
        rows.bad(file, where, key, f"expected a string, got {type(val).__name__}", rec)
        return None
    val = val.strip()
    if not val:
        rows.bad(file, where, key, "empty", rec)
        return None
    return val


# ------------------------------------------------------------------------------------------ sample
def read_sample(folder: str | Path, languages: list[str], on_bad_row: str = "error") -> Dataset:
    """The shipped sample: ``<lang>/{items,queries,sts,mc}.jsonl`` per language (lira/sample/README.md)."""
    folder = Path(folder)
    out = Dataset()
    for lang in languages:
        if not (folder / lang).is_dir():
            raise DataError(folder / lang, "-", "lang", f"no sample folder for language {lang!r} in {folder}")
        out.extend(_read_sample_language(folder / lang, lang, on_bad_row))
    return out


def _sample_records(folder: Path, task: str, lang: str, rows: Rows) -> Iterator[tuple[Path, str, dict]]:
    file = folder / f"{task}.jsonl"
    for where, rec in _jsonl(file, rows):
        if rec.get("lang") != lang:
            rows.bad(file, where, "lang", f"expected {lang!r} (the folder's language), found {rec.get('lang')!r}", rec)
            continue
        yield file, where, rec


def _read_sample_language(folder: Path, lang: str, on_bad_row: str) -> Dataset:
    rows = Rows(f"sample:{lang}", on_bad_row)
    ds = rows.ds
    item_ids: set[str] = set()
    for file, where, rec in _sample_records(folder, "items", lang, rows):
        iid, text, en = (_need_str(rec, k, rows, file, where) for k in ("id", "text", "en"))
        cat = _need_str(rec, "category", rows, file, where)
        if None in (iid, text, en, cat):
            continue
        if iid in item_ids:
            rows.bad(file, where, "id", f"duplicate item id {iid!r}", rec)
            continue
        item_ids.add(iid)
        rows.text(iid, lang, text, en, "item")
        ds.items.append({"item_id": iid, "lang": lang, "text_id": iid, "category": cat, "split": None})
    query_ids: set[str] = set()
    for file, where, rec in _sample_records(folder, "queries", lang, rows):
        qid, text, en = (_need_str(rec, k, rows, file, where) for k in ("id", "text", "en"))
        if None in (qid, text, en):
            continue
        qrels = rec.get("qrels")
        if not isinstance(qrels, dict) or not qrels:
            rows.bad(file, where, "qrels", "expected a non-empty mapping item_id -> relevance", rec)
            continue
        bad = [(k, v) for k, v in qrels.items() if k not in item_ids or not isinstance(v, int) or v < 0]
        if bad:
            k, v = bad[0]
            reason = f"unknown item {k!r}" if k not in item_ids else f"relevance {v!r} is not an integer >= 0"
            rows.bad(file, where, "qrels", reason, rec)
            continue
        if qid in query_ids:
            rows.bad(file, where, "id", f"duplicate query id {qid!r}", rec)
            continue
        query_ids.add(qid)
        rows.text(qid, lang, text, en, "query")
        ds.queries.append({"query_id": qid, "lang": lang, "text_id": qid, "split": None})
        ds.qrels.extend({"query_id": qid, "item_id": k, "relevance": int(v)} for k, v in qrels.items())
    for file, where, rec in _sample_records(folder, "sts", lang, rows):
        _sts_record(rec, rows, file, where, lang)
    for file, where, rec in _sample_records(folder, "mc", lang, rows):
        _mc_record(rec, rows, file, where, lang)
    return ds


def _sts_record(rec: dict, rows: Rows, file: Path, where: str, lang: str, default_id: str | None = None) -> None:
    pid = rec.get("id", default_id)
    a, b = _need_str(rec, "text_a", rows, file, where), _need_str(rec, "text_b", rows, file, where)
    en_a = _need_str(rec, "en_a", rows, file, where, optional=True)
    en_b = _need_str(rec, "en_b", rows, file, where, optional=True)
    score = rec.get("score")
    if None in (pid, a, b):
        if pid is None:
            rows.bad(file, where, "id", "missing", rec)
        return
    try:
        score = float(score)
    except (TypeError, ValueError):
        rows.bad(file, where, "score", f"not a number: {score!r}", rec)
        return
    if not 0.0 <= score <= 5.0:
        rows.bad(file, where, "score", f"{score} outside the STS scale 0..5", rec)
        return
    if not all(rows.script_ok(file, where, k, lg, v, rec)
               for k, lg, v in (("text_a", lang, a), ("text_b", lang, b), ("en_a", "en", en_a), ("en_b", "en", en_b))):
        return
    rows.text(f"{pid}:a", lang, a, en_a, "sts")
    rows.text(f"{pid}:b", lang, b, en_b, "sts")
    rows.ds.sts.append(
        {"pair_id": pid, "lang": lang, "text_id_a": f"{pid}:a", "text_id_b": f"{pid}:b", "score": score, "split": None}
    )


def _mc_record(rec: dict, rows: Rows, file: Path, where: str, lang: str) -> None:
    mid = _need_str(rec, "id", rows, file, where)
    q = _need_str(rec, "question", rows, file, where)
    q_en = _need_str(rec, "question_en", rows, file, where, optional=True)
    choices, choices_en, answer = rec.get("choices"), rec.get("choices_en"), rec.get("answer")
    if None in (mid, q):
        return
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c.strip() for c in choices):
        rows.bad(file, where, "choices", "expected a list of >= 2 non-empty strings", rec)
        return
    if choices_en is not None and (not isinstance(choices_en, list) or len(choices_en) != len(choices)):
        rows.bad(file, where, "choices_en", "must be a list as long as choices", rec)
        return
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(choices):
        rows.bad(file, where, "answer", f"{answer!r} is not an index into {len(choices)} choices", rec)
        return
    checks = [("question", lang, q), ("question_en", "en", q_en), *(("choices", lang, c) for c in choices),
              *(("choices_en", "en", c) for c in (choices_en or []) if isinstance(c, str))]
    if not all(rows.script_ok(file, where, k, lg, v, rec) for k, lg, v in checks):
        return
    rows.text(f"{mid}:q", lang, q, q_en, "mc_question")
    ids = []
    for j, c in enumerate(choices):
        cid = f"{mid}:c{j}"
        rows.text(cid, lang, c.strip(), (choices_en[j].strip() if choices_en else None), "mc_choice")
        ids.append(cid)
    rows.ds.mc.append({"mc_id": mid, "lang": lang, "question_id": f"{mid}:q", "choice_ids": ids, "answer": answer, "split": None})


# ------------------------------------------------------------------------------------------- JSONL
def read_utf8(file: Path) -> str:
    """A whole file as text; invalid UTF-8 is a :class:`DataError` at ``line N, byte B`` (for the
    whole-document readers, where one bad byte makes the file unreadable rather than one row)."""
    data = file.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(file, f"line {line}, byte {e.start}", "-", f"invalid UTF-8 ({e.reason})") from None


def _lines(file: Path, rows: Rows) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of ``file``, decoded one at a time: a line that is not
    valid UTF-8 is a bad row at ``line N, byte B`` (B the file offset of the first bad byte)."""
    offset = 0
    with file.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                rows.bad(file, f"line {n}, byte {offset + e.start}", "-",
                         f"invalid UTF-8 ({e.reason} at byte {offset + e.start})", raw.decode("utf-8", errors="replace"))
                line = None
            offset += len(raw)
            if line is not None:
                yield n, line.removeprefix("\ufeff") if n == 1 else line


def _jsonl(file: Path, rows: Rows) -> Iterator[tuple[str, dict]]:
    if not file.exists():
        raise DataError(file, "-", "-", "file not found")
    for n, line in _lines(file, rows):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            rows.bad(file, f"line {n}", "-", f"not valid JSON: {e.msg}", line)
            continue
        if not isinstance(rec, dict):
            rows.bad(file, f"line {n}", "-", "expected a JSON object", line)
            continue
        yield f"line {n}", rec


def _tsv(file: Path, required: list[str], rows: Rows) -> Iterator[tuple[str, dict]]:
    """A TSV with a header row; texts may hold quotes, so no quoting is interpreted (one line = one row)."""
    if not file.exists():
        raise DataError(file, "-", "-", "file not found")
    lines = _lines(file, rows)
    first = next(lines, None)
    if first is None:
        raise DataError(file, "line 1", "-", "empty file (a header row is required)")
    if first[0] != 1:
        raise DataError(file, "line 1", "-", "the header row is not valid UTF-8")
    header = _cells(first[1])
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(file, "line 1", ",".join(missing), f"header lacks required column(s); found {header}")
    for n, line in lines:
        cells = _cells(line)
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            rows.bad(file, f"line {n}", "-", f"expected {len(header)} tab-separated cells, got {len(cells)}", "\t".join(cells))
            continue
        yield f"line {n}", dict(zip(header, cells))


def _cells(line: str) -> list[str]:
    return next(csv.reader([line.rstrip("\r\n")], delimiter="\t", quoting=csv.QUOTE_NONE), [])


def read_beir(folder: str | Path, lang: str, on_bad_row: str = "error", name: str | None = None) -> Dataset:
    """A BEIR/MTEB retrieval folder: corpus.jsonl, queries.jsonl, qrels/{train,dev,test}.tsv.

    Query splits come from the qrels file names when they are train/dev/test; other names (or a
    single qrels file) leave the split to the seeded splitter.
    """
    folder = Path(folder)
    rows = Rows(name or f"beir:{folder.name}", on_bad_row)
    ds = rows.ds
    prefix = name or folder.name
    corpus, qfile = folder / "corpus.jsonl", folder / "queries.jsonl"
    items: set[str] = set()
    rejected: dict[str, str] = {}  # text id -> where its row was rejected
    for where, rec in _jsonl(corpus, rows):
        did = rec.get("_id")
        if did is None or str(did).strip() == "":
            rows.bad(corpus, where, "_id", "missing", rec)
            continue
        iid = f"{prefix}:d:{did}"
        text = _need_str(rec, "text", rows, corpus, where)
        title = rec.get("title")
        if title is not None and not isinstance(title, str):
            rows.bad(corpus, where, "title", f"expected a string, got {type(title).__name__}", rec)
            text = None
        elif text is not None and not (rows.script_ok(corpus, where, "text", lang, text, rec)
                                       and rows.script_ok(corpus, where, "title", lang, (title or "").strip() or None, rec)):
            text = None
        if text is None:
            rejected.setdefault(iid, f"{corpus} {where}")
            continue
        full = f"{title.strip()}. {text}" if title and title.strip() else text
        if iid in items:
            rows.bad(corpus, where, "_id", f"duplicate id {did!r}", rec)
            continue
        items.add(iid)
        rows.text(iid, lang, full, None, "item")
        ds.items.append({"item_id": iid, "lang": lang, "text_id": iid, "category": None, "split": None})
    queries: dict[str, dict] = {}
    for where, rec in _jsonl(qfile, rows):
        qid = rec.get("_id")
        if qid is None or str(qid).strip() == "":
            rows.bad(qfile, where, "_id", "missing", rec)
            continue
        key = f"{prefix}:q:{qid}"
        if key in queries:
            # The first stays; a second text under the same id would silently replace it.
            rows.bad(qfile, where, "_id", f"duplicate query id {qid!r} (first at {queries[key]['where']})", rec)
            continue
        text = _need_str(rec, "text", rows, qfile, where)
        if text is None or not rows.script_ok(qfile, where, "text", lang, text, rec):
            rejected.setdefault(key, f"{qfile} {where}")
            continue
        queries[key] = {"text": text, "where": where, "rec": rec}
    qrel_files = sorted((folder / "qrels").glob("*.tsv"))
    if not qrel_files:
        raise DataError(folder / "qrels", "-", "-", "no qrels/*.tsv files")
    used: dict[str, tuple[str | None, Path]] = {}  # query -> (split, the qrels file that set it)
    pairs: dict[tuple[str, str], tuple[int, str]] = {}  # (query, doc) -> (relevance, where)
    for qf in qrel_files:
        split = qf.stem if qf.stem in ("train", "dev", "test") else None
        for where, rec in _tsv(qf, ["query-id", "corpus-id", "score"], rows):
            qid, did = f"{prefix}:q:{rec['query-id']}", f"{prefix}:d:{rec['corpus-id']}"
            try:
                rel = int(rec["score"])
            except ValueError:
                rows.bad(qf, where, "score", f"not an integer: {rec['score']!r}", rec)
                continue
            if qid in rejected:
                rows.bad(qf, where, "query-id", f"query {rec['query-id']!r} was rejected ({rejected[qid]})", rec)
                continue
            if qid not in queries:
                rows.bad(qf, where, "query-id", f"unknown query {rec['query-id']!r}", rec)
                continue
            if did in rejected:
                rows.bad(qf, where, "corpus-id", f"document {rec['corpus-id']!r} was rejected ({rejected[did]})", rec)
                continue
            if did not in items:
                rows.bad(qf, where, "corpus-id", f"unknown document {rec['corpus-id']!r}", rec)
                continue
            if rel < 0:
                rows.bad(qf, where, "score", f"negative relevance {rel}", rec)
                continue
            if qid in used and used[qid][0] != split:
                prev_split, prev_file = used[qid]
                rows.bad(qf, where, "query-id", f"query {rec['query-id']!r} is already in the {prev_split} split "
                         f"({prev_file.name}); one split per query", rec)
                continue
            if (qid, did) in pairs:
                prev_rel, prev_where = pairs[(qid, did)]
                what = "conflicting relevance" if prev_rel != rel else "duplicate qrel"
                rows.bad(qf, where, "score", f"{what} {rel} for ({rec['query-id']!r}, {rec['corpus-id']!r}); "
                         f"{prev_rel} at {prev_where}", rec)
                continue
            pairs[(qid, did)] = (rel, f"{qf.name} {where}")
            ds.qrels.append({"query_id": qid, "item_id": did, "relevance": rel})
            used.setdefault(qid, (split, qf))
    for qid, q in queries.items():
        if qid not in used:
            rows.bad(qfile, q["where"], "_id", f"query {q['rec'].get('_id')!r} has no qrels", q["rec"])
    for qid, (split, _) in used.items():
        rows.text(qid, lang, queries[qid]["text"], None, "query")
        ds.queries.append({"query_id": qid, "lang": lang, "text_id": qid, "split": split})
    return ds


def read_parallel_tsv(file: str | Path, lang: str, on_bad_row: str = "error", name: str | None = None) -> Dataset:
    """Parallel text: a TSV with header ``text<TAB>en`` (optionally an ``id`` column first)."""
    file = Path(file)
    rows = Rows(name or f"parallel:{file.stem}", on_bad_row)
    prefix = name or file.stem
    seen: set[str] = set()
    for where, rec in _tsv(file, ["text", "en"], rows):
        text, en = _need_str(rec, "text", rows, file, where), _need_str(rec, "en", rows, file, where)
        if text is None or en is None:
            continue
        if not (rows.script_ok(file, where, "text", lang, text, rec) and rows.script_ok(file, where, "en", "en", en, rec)):
            continue
        tid = f"{prefix}:{rec.get('id') or where.split()[-1]}"
        if tid in seen:
            rows.bad(file, where, "id", f"duplicate id {rec.get('id')!r}", rec)
            continue
        seen.add(tid)
        rows.text(tid, lang, text, en, "parallel")
        rows.ds.parallel.append({"pair_id": tid, "lang": lang, "text_id": tid, "split": None})
    return rows.ds


def read_sts(file: str | Path, lang: str, on_bad_row: str = "error", name: str | None = None) -> Dataset:
    """STS pairs from a TSV (header: text_a, text_b, score[, en_a, en_b, id]) or a JSONL file."""
    file = Path(file)
    rows = Rows(name or f"sts:{file.stem}", on_bad_row)
    prefix = name or file.stem
    it: Iterator[tuple[str, dict]]
    it = _jsonl(file, rows) if file.suffix == ".jsonl" else _tsv(file, ["text_a", "text_b", "score"], rows)
    for where, rec in it:
        rid = rec.get("id") or where.split()[-1]
        _sts_record({**rec, "id": f"{prefix}:{rid}"}, rows, file, where, lang)
    return rows.ds


def read_mc_jsonl(file: str | Path, lang: str, on_bad_row: str = "error", name: str | None = None) -> Dataset:
    """Multiple choice: JSONL of {id, question, choices, answer[, question_en, choices_en]}."""
    file = Path(file)
    rows = Rows(name or f"mc:{file.stem}", on_bad_row)
    prefix = name or file.stem
    for where, rec in _jsonl(file, rows):
        rid = rec.get("id") or where.split()[-1]
        _mc_record({**rec, "id": f"{prefix}:{rid}"}, rows, file, where, lang)
    return rows.ds


READERS: dict[str, Callable[..., Dataset]] = {
    "beir": read_beir,
    "parallel_tsv": read_parallel_tsv,
    "sts": read_sts,
    "mc_jsonl": read_mc_jsonl,
}
