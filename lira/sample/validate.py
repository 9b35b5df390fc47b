"""Check the shipped sample, and write it in its one canonical form.

``python -m lira.sample.validate [FOLDER]`` lists every problem as ``file:line: field: reason`` and
exits 1 if there is any; ``--write`` first rewrites each file canonically (the field order of
:data:`FIELDS`, one JSON record per line, UTF-8 unescaped), so hand edits keep a clean diff.

The schema, one per task and the same for every language (``data/<lang>/<task>.jsonl``):

* ``items``   ``id, lang, category, text, en``
* ``queries`` ``id, lang, text, en, qrels`` - ``qrels`` maps item ids of the same language to 2 (the
  one target) or 1 (a partial match)
* ``sts``     ``id, lang, text_a, text_b, en_a, en_b, score`` - ``score`` in 0..5, steps of 0.5
* ``mc``      ``id, lang, question, question_en, choices, choices_en, answer`` - 3 to 5 distinct
  choices, ``answer`` the 0-based index of the gold choice

Ids are ``<lang>-<it|q|sts|mc>-NNN``, numbered 001, 002, ... in file order. Every text carries its
English reference. Script: a text counts as written in its language's script when at least half its
letters are (lira.languages.script_share); product names may hold Latin tokens ("USB-C", "mAh"), so a
file passes when at most 3% of its texts fall short, and every text must hold some letter of the
script. English references must be at least 90% Latin letters. Texts without letters ("10", "5%")
are not judged by script. ``--write`` never touches a file that has an unreadable line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lira.languages import LANGUAGES, script_share
from lira.sample import SAMPLE_DIR, TASKS

FIELDS: dict[str, tuple[str, ...]] = {
    "items": ("id", "lang", "category", "text", "en"),
    "queries": ("id", "lang", "text", "en", "qrels"),
    "sts": ("id", "lang", "text_a", "text_b", "en_a", "en_b", "score"),
    "mc": ("id", "lang", "question", "question_en", "choices", "choices_en", "answer"),
}
ID_TAG = {"items": "it", "queries": "q", "sts": "sts", "mc": "mc"}
# (native field, English field) pairs; list-valued fields pair element by element.
TEXT_PAIRS = {
    "items": [("text", "en")],
    "queries": [("text", "en")],
    "sts": [("text_a", "en_a"), ("text_b", "en_b")],
    "mc": [("question", "question_en"), ("choices", "choices_en")],
}
MIN_SCRIPT_SHARE = 0.5  # of a text's letters, for the text to count as in its script
MAX_OFF_SCRIPT = 0.03  # of a file's texts that may fall below MIN_SCRIPT_SHARE
MIN_LATIN_EN = 0.9  # of an English reference's letters
assert tuple(FIELDS) == TASKS


def dumps(rec: dict[str, Any], task: str) -> str:
    """The canonical line of a record (fields in schema order; unknown fields kept at the end)."""
    order = [k for k in FIELDS[task] if k in rec] + [k for k in rec if k not in FIELDS[task]]
    return json.dumps({k: rec[k] for k in order}, ensure_ascii=False)


def _lines(file: Path, problems: list[str]) -> Iterator[tuple[int, str, dict]]:
    for n, line in enumerate(file.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{file}:{n}: -: not valid JSON ({e.msg})")
            continue
        if not isinstance(rec, dict):
            problems.append(f"{file}:{n}: -: expected a JSON object")
            continue
        yield n, line, rec


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and bool(v) and v == v.strip() and not any(c in v for c in "\n\r\t")


def _has_letters(v: Any) -> bool:
    return _is_text(v) and any(c.isalpha() for c in v)


def _check_record(task: str, rec: dict, lang: str, n: int, item_ids: set[str]) -> list[str]:
    """Problems of one record as ``field: reason`` strings."""
    out = []
    missing = [k for k in FIELDS[task] if k not in rec]
    unknown = [k for k in rec if k not in FIELDS[task]]
    if missing:
        out.append(f"{','.join(missing)}: missing")
    if unknown:
        out.append(f"{','.join(unknown)}: unknown field (the schema is {', '.join(FIELDS[task])})")
    want_id = f"{lang}-{ID_TAG[task]}-{n:03d}"
    if rec.get("id") != want_id:
        out.append(f"id: {rec.get('id')!r}, expected {want_id!r} (ids number the records in file order)")
    if "lang" in rec and rec["lang"] != lang:
        out.append(f"lang: {rec['lang']!r} in the folder of {lang!r}")
    for native, english in TEXT_PAIRS[task]:
        a, b = rec.get(native), rec.get(english)
        if isinstance(a, list) or isinstance(b, list):
            if not (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)):
                out.append(f"{english}: must be a list as long as {native}")
                continue
            pairs = [(f"{native}[{j}]", x, f"{english}[{j}]", y) for j, (x, y) in enumerate(zip(a, b))]
        else:
            pairs = [(native, a, english, b)]
        for fa, x, fb, y in pairs:
            for f, v in ((fa, x), (fb, y)):
                if f.split("[")[0] in rec and not _is_text(v):
                    out.append(f"{f}: expected a non-empty string without surrounding or inner tabs/newlines")
            # Script checks look at letters only: a choice like "10" or "5%" has none to judge.
            if _has_letters(y) and script_share(y, "Latn") < MIN_LATIN_EN:
                out.append(f"{fb}: English reference is only {script_share(y, 'Latn'):.0%} Latin letters")
            if _has_letters(x) and lang in LANGUAGES and script_share(x, LANGUAGES[lang].script) == 0:
                out.append(f"{fa}: no letter in the {LANGUAGES[lang].script} script of {lang!r}")
    if task == "items" and "category" in rec:
        c = rec["category"]
        if not (_is_text(c) and c == c.lower() and " " not in c):
            out.append(f"category: {c!r} is not a lower-case slug")
    if task == "queries" and "qrels" in rec:
        q = rec["qrels"]
        if not isinstance(q, dict) or not q:
            out.append("qrels: expected a non-empty mapping item id -> relevance")
        else:
            for k, v in q.items():
                if k not in item_ids:
                    out.append(f"qrels: {k!r} is not an item of {lang}/items.jsonl")
                if not isinstance(v, int) or isinstance(v, bool) or v not in (1, 2):
                    out.append(f"qrels: relevance {v!r} of {k!r} is not 1 or 2")
            if sum(v == 2 for v in q.values()) != 1:
                out.append("qrels: needs exactly one target at relevance 2")
    if task == "sts" and "score" in rec:
        s = rec["score"]
        if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0 <= s <= 5 or not float(2 * s).is_integer():
            out.append(f"score: {s!r} is not in 0..5 in steps of 0.5")
    if task == "mc" and "choices" in rec:
        ch, ans = rec["choices"], rec.get("answer")
        if not isinstance(ch, list) or not 3 <= len(ch) <= 5 or len(set(map(str, ch))) != len(ch):
            out.append("choices: expected 3 to 5 distinct choices")
        elif not isinstance(ans, int) or isinstance(ans, bool) or not 0 <= ans < len(ch):
            out.append(f"answer: {ans!r} is not a 0-based index into {len(ch)} choices")
    return out


def check_language(folder: Path, lang: str, write: bool = False) -> list[str]:
    """Every problem of one language folder (``write``: rewrite its files canonically first)."""
    problems: list[str] = []
    if lang not in LANGUAGES:
        problems.append(f"{folder}: -: lang: {lang!r} is not in lira/languages.py")
    present = {p.name for p in folder.iterdir()}
    for name in sorted(present - {f"{t}.jsonl" for t in TASKS}):
        problems.append(f"{folder / name}: -: -: not a sample file (expected {', '.join(t + '.jsonl' for t in TASKS)})")
    item_ids: set[str] = set()
    for task in TASKS:
        file = folder / f"{task}.jsonl"
        if not file.is_file():
            problems.append(f"{file}: -: -: missing")
            continue
        before = len(problems)
        records = list(_lines(file, problems))
        if write and records and len(problems) == before:  # never rewrite a file with unreadable lines
            text = "".join(dumps(rec, task) + "\n" for _, _, rec in records)
            tmp = file.with_name(file.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, file)
            records = list(_lines(file, []))
        if not records:
            problems.append(f"{file}: -: -: no records")
        if task == "items":
            item_ids = {r["id"] for _, _, r in records if isinstance(r.get("id"), str)}
        short = texts_total = 0
        for k, (n, _, rec) in enumerate(records, start=1):
            problems += [f"{file}:{n}: {p}" for p in _check_record(task, rec, lang, k, item_ids)]
            if lang in LANGUAGES:
                texts = [t for native, _ in TEXT_PAIRS[task] for t in
                         (rec.get(native) if isinstance(rec.get(native), list) else [rec.get(native)])
                         if _has_letters(t)]
                short += sum(script_share(t, LANGUAGES[lang].script) < MIN_SCRIPT_SHARE for t in texts)
                texts_total += len(texts)
        canonical = [dumps(rec, task) for _, _, rec in records]
        actual = file.read_text(encoding="utf-8").split("\n")
        if actual != [*canonical, ""]:
            n = next((i for i, (a, c) in enumerate(zip(actual, canonical), start=1) if a != c), len(canonical) + 1)
            problems.append(f"{file}:{n}: -: not in canonical form (run python -m lira.sample.validate --write)")
        if records and lang in LANGUAGES and short > MAX_OFF_SCRIPT * texts_total:
            problems.append(f"{file}: -: -: {short} of {texts_total} texts are under "
                            f"{MIN_SCRIPT_SHARE:.0%} {LANGUAGES[lang].script} letters (at most {MAX_OFF_SCRIPT:.0%} may be)")
    return problems


def check(folder: str | Path = SAMPLE_DIR, languages: list[str] | None = None, write: bool = False) -> list[str]:
    """Every problem of the sample under ``folder`` (all its language folders, or ``languages``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder}: -: -: no such folder"]
    problems = [f"{p}: -: -: not a language folder" for p in sorted(folder.iterdir()) if not p.is_dir()]
    langs = languages if languages is not None else sorted(p.name for p in folder.iterdir() if p.is_dir())
    for lang in langs:
        if not (folder / lang).is_dir():
            problems.append(f"{folder / lang}: -: -: missing")
            continue
        problems += check_language(folder / lang, lang, write)
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(SAMPLE_DIR), help="the sample folder (default: the packaged one)")
    ap.add_argument("--write", action="store_true", help="rewrite every file in canonical form first")
    args = ap.parse_args(argv)
    problems = check(args.folder, write=args.write)
    for p in problems:
        print(p)
    print(f"{args.folder}: {'ok' if not problems else f'{len(problems)} problem(s)'}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
