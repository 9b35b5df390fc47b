"""Integrity of the shipped sample: the embedded default's data, its validator and its DVC copy."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from lira.data.readers import read_sample
from lira.languages import LANGUAGES, script_share
from lira.sample import SAMPLE_DIR, TASKS, sample_files, sync_sample
from lira.sample.validate import check, dumps, main

ROOT = Path(__file__).resolve().parents[2]
SEVEN = ["vi", "th", "id", "ms", "ur", "bn", "fil"]


@pytest.fixture(scope="module")
def ds():
    return read_sample(SAMPLE_DIR, SEVEN)


def test_all_seven_languages_with_the_promised_sizes(ds):
    assert sorted(p.name for p in SAMPLE_DIR.iterdir()) == sorted(SEVEN)
    for lang in SEVEN:
        assert sum(i["lang"] == lang for i in ds.items) >= 100, lang
        assert sum(q["lang"] == lang for q in ds.queries) >= 100, lang
        assert sum(s["lang"] == lang for s in ds.sts) >= 80, lang
        assert sum(m["lang"] == lang for m in ds.mc) >= 40, lang


def test_each_text_is_in_its_language_script(ds):
    for lang in SEVEN:
        script = LANGUAGES[lang].script
        texts = [t["text"] for t in ds.texts if t["lang"] == lang]
        shares = [script_share(t, script) for t in texts]
        # Product names may hold Latin brand-like tokens ("USB-C", "mAh"); the text as a whole must not.
        assert sum(s >= 0.5 for s in shares) / len(shares) > 0.97, lang
    thai = [t["text"] for t in ds.texts if t["lang"] == "th"]
    assert sum(any(0x0E00 <= ord(c) <= 0x0E7F for c in t) for t in thai) == len(thai)


def test_every_text_has_an_english_reference_in_latin_script(ds):
    assert all(t["en_ref"] for t in ds.texts)
    refs = [t["en_ref"] for t in ds.texts]
    assert sum(script_share(r, "Latn") > 0.95 for r in refs) / len(refs) > 0.99


def test_qrels_point_to_existing_items_of_the_same_language_with_hard_negatives(ds):
    item_lang = {i["item_id"]: i["lang"] for i in ds.items}
    item_cat = {i["item_id"]: i["category"] for i in ds.items}
    q_lang = {q["query_id"]: q["lang"] for q in ds.queries}
    for r in ds.qrels:
        assert item_lang[r["item_id"]] == q_lang[r["query_id"]]
    by_query: dict = {}
    for r in ds.qrels:
        by_query.setdefault(r["query_id"], []).append(r)
    hard = 0
    for q, rels in by_query.items():
        top = max(rels, key=lambda r: r["relevance"])
        judged = {r["item_id"] for r in rels}
        same_cat = [i for i, c in item_cat.items() if c == item_cat[top["item_id"]] and item_lang[i] == q_lang[q] and i not in judged]
        hard += bool(same_cat)
    assert hard / len(by_query) > 0.8  # most queries have unjudged same-category near-negatives


def test_sts_scores_are_graded_and_mc_answers_valid(ds):
    for lang in SEVEN:
        scores = [s["score"] for s in ds.sts if s["lang"] == lang]
        assert min(scores) <= 1.0 and max(scores) >= 4.5
        assert len({round(s) for s in scores}) >= 5
    for m in ds.mc:
        assert 3 <= len(m["choice_ids"]) <= 5 and 0 <= m["answer"] < len(m["choice_ids"])


def test_malay_and_indonesian_are_distinct(ds):
    def words(lang):
        return {w.lower().strip(".,!?") for t in ds.texts if t["lang"] == lang for w in t["text"].split()}

    ms, id_ = words("ms"), words("id")
    assert {"percuma", "kasut"} & ms and not {"percuma", "kasut"} & id_
    assert {"gratis", "sepatu", "mobil"} & id_ or {"ukuran", "belanja"} & id_


# --------------------------------------------------------------------------------- validator
def test_the_packaged_sample_passes_the_validator_and_is_canonical():
    assert check() == []
    assert main([]) == 0


def _copy(tmp_path: Path, *langs: str) -> Path:
    """A copy of the packaged sample (only ``langs``: the validator checks whatever folders it finds)."""
    dest = tmp_path / "sample"
    for lang in langs:
        shutil.copytree(SAMPLE_DIR / lang, dest / lang)
    return dest


def _edit(folder: Path, lang: str, task: str, line: int, change) -> None:
    """Apply ``change(record)`` to record ``line`` (1-based) of one file, keeping the file canonical."""
    file = folder / lang / f"{task}.jsonl"
    recs = [json.loads(x) for x in file.read_text(encoding="utf-8").splitlines()]
    change(recs[line - 1])
    file.write_text("".join(dumps(r, task) + "\n" for r in recs), encoding="utf-8")


@pytest.mark.parametrize(
    "lang, task, change, needle",
    [
        ("vi", "items", lambda r: r.update(id="vi-it-7"), "id: 'vi-it-7', expected 'vi-it-001'"),
        ("vi", "items", lambda r: r.pop("en"), "en: missing"),
        ("vi", "items", lambda r: r.update(colour="red"), "colour: unknown field"),
        ("th", "items", lambda r: r.update(text="Green tea 100 g"), "text: no letter in the Thai script"),
        ("th", "items", lambda r: r.update(en="ชาเขียว"), "en: English reference is only 0% Latin"),
        ("bn", "queries", lambda r: r.update(qrels={"bn-it-999": 2}), "'bn-it-999' is not an item of bn/items.jsonl"),
        ("bn", "queries", lambda r: r["qrels"].update({k: 2 for k in r["qrels"]} | {"bn-it-100": 2}),
         "exactly one target at relevance 2"),
        ("ur", "queries", lambda r: r.update(lang="ms"), "lang: 'ms' in the folder of 'ur'"),
        ("ms", "sts", lambda r: r.update(score=5.5), "score: 5.5 is not in 0..5"),
        ("ms", "sts", lambda r: r.update(score=2.25), "score: 2.25 is not in 0..5 in steps of 0.5"),
        ("fil", "mc", lambda r: r.update(answer=len(r["choices"])), "is not a 0-based index"),
        ("fil", "mc", lambda r: r.update(choices_en=r["choices_en"][:-1]), "choices_en: must be a list as long as choices"),
        ("id", "mc", lambda r: r.update(choices=[r["choices"][0]] * len(r["choices"])), "3 to 5 distinct choices"),
        ("id", "sts", lambda r: r.update(text_a=r["text_a"] + " "), "text_a: expected a non-empty string"),
    ],
)
def test_the_validator_names_file_line_and_field(tmp_path, lang, task, change, needle):
    folder = _copy(tmp_path, lang)
    _edit(folder, lang, task, 1, change)
    problems = check(folder)
    # The edited record is named; a renamed item may also orphan the qrels that point to it.
    assert any(p.startswith(f"{folder / lang / task}.jsonl:1: ") and needle in p for p in problems), problems
    assert all(f"{folder / lang}/" in p for p in problems), problems


def test_the_validator_finds_layout_and_form_problems_and_write_fixes_the_form(tmp_path):
    folder = _copy(tmp_path, "th", "vi", "ms")
    (folder / "th" / "notes.txt").write_text("x", encoding="utf-8")
    (folder / "vi" / "sts.jsonl").unlink()
    file = folder / "ms" / "items.jsonl"
    recs = [json.loads(x) for x in file.read_text(encoding="utf-8").splitlines()]
    # Same content, other field order and ASCII escapes: valid data, not the canonical form.
    file.write_text("".join(json.dumps(dict(reversed(list(r.items())))) + "\n" for r in recs), encoding="utf-8")
    problems = check(folder)
    assert any("th/notes.txt" in p and "not a sample file" in p for p in problems)
    assert any(p.startswith(f"{folder / 'vi' / 'sts.jsonl'}: -: -: missing") for p in problems)
    assert f"{file}:1: -: not in canonical form (run python -m lira.sample.validate --write)" in problems
    (folder / "th" / "notes.txt").unlink()
    shutil.copyfile(SAMPLE_DIR / "vi" / "sts.jsonl", folder / "vi" / "sts.jsonl")
    assert main([str(folder), "--write"]) == 0
    assert file.read_bytes() == (SAMPLE_DIR / "ms" / "items.jsonl").read_bytes()
    assert check(folder) == []


def test_a_broken_json_line_is_reported_with_its_line_number(tmp_path):
    folder = _copy(tmp_path, "vi")
    file = folder / "vi" / "mc.jsonl"
    lines = file.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2][:-1]
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert any(p.startswith(f"{file}:3: -: not valid JSON") for p in check(folder))
    assert main([str(folder)]) == 1


# --------------------------------------------------------------------------------- the DVC copy
def _dvc_dir_hash(folder: Path, prefix: str) -> tuple[str, int, int, str]:
    """What ``dvc add`` records for a folder holding ``folder``'s files under ``prefix``.

    DVC's directory hash (md5 scheme) is the md5 of its ``.dir`` listing: the JSON list of
    ``{"md5", "relpath"}`` per file, sorted by relpath, dumped with sorted keys.
    """
    entries = [{"md5": hashlib.md5((folder / rel).read_bytes()).hexdigest(), "relpath": f"{prefix}/{rel.as_posix()}"}
               for rel in sample_files(folder)]
    entries.sort(key=lambda e: e["relpath"])
    listing = json.dumps(entries, sort_keys=True)
    size = sum((folder / rel).stat().st_size for rel in sample_files(folder))
    return hashlib.md5(listing.encode()).hexdigest() + ".dir", size, len(entries), listing


def _data_dvc() -> dict:
    outs = yaml.safe_load((ROOT / "data.dvc").read_text(encoding="utf-8"))["outs"]
    assert len(outs) == 1 and outs[0]["path"] == "data/raw", outs
    return outs[0]


def test_the_dvc_tracked_raw_copy_is_the_packaged_sample():
    # data.dvc pins data/raw; the packaged files laid out as data/raw/sample must hash to it. This
    # needs no materialised data/raw, so it runs on a clean clone.
    out = _data_dvc()
    md5, size, nfiles, _ = _dvc_dir_hash(SAMPLE_DIR, "sample")
    assert (out["md5"], out["size"], out["nfiles"]) == (md5, size, nfiles), (
        "data.dvc does not record the packaged sample: run `lira sample sync --clean && dvc add data/raw && dvc push`"
    )


def test_the_in_repo_remote_holds_exactly_the_tracked_sample():
    # A fresh clone's `lira run` (`dvc pull data.dvc`) fetches data/raw from data/remote: every object it needs
    # must be there with the right bytes, and nothing else (no stale second copy of the text).
    out = _data_dvc()
    remote = ROOT / "data" / "remote" / "files" / "md5"
    md5, _, _, listing = _dvc_dir_hash(SAMPLE_DIR, "sample")
    dir_obj = remote / md5[:2] / md5[2:]
    assert dir_obj.is_file(), f"{dir_obj}: missing; run `dvc push`"
    assert json.loads(dir_obj.read_text()) == json.loads(listing)
    want = {out["md5"]} | {e["md5"] for e in json.loads(listing)}
    have = {p.parent.name + p.name for p in remote.rglob("*") if p.is_file()}
    assert have == want, f"stale {sorted(have - want)}, missing {sorted(want - have)}"
    for p in remote.rglob("*"):
        if p.is_file() and not p.name.endswith(".dir"):
            assert hashlib.md5(p.read_bytes()).hexdigest() == p.parent.name + p.name, p


def test_a_materialised_raw_copy_equals_the_packaged_sample():
    raw = ROOT / "data" / "raw" / "sample"
    if not raw.exists():
        pytest.skip("data/raw is materialised by `dvc pull`; the two tests above check its recorded hash")
    assert sample_files(raw) == sample_files()
    for rel in sample_files():
        assert (raw / rel).read_bytes() == (SAMPLE_DIR / rel).read_bytes(), rel


def test_sync_makes_an_exact_copy_and_refuses_stray_files_unless_clean(tmp_path):
    dest = tmp_path / "raw" / "sample"
    assert sync_sample(dest) == len(SEVEN) * len(TASKS)
    assert _dvc_dir_hash(dest, "sample")[0] == _data_dvc()["md5"]
    (dest / "vi.json").write_text("{}", encoding="utf-8")  # the layout before the JSONL
    with pytest.raises(FileExistsError, match=r"1 file\(s\) that are not part of the sample \(vi.json\)"):
        sync_sample(dest)
    assert (dest / "vi.json").exists()
    (dest / "th" / "items.jsonl").write_text("edited\n", encoding="utf-8")
    sync_sample(dest, clean=True)
    assert not (dest / "vi.json").exists()
    assert _dvc_dir_hash(dest, "sample")[0] == _data_dvc()["md5"]


def test_the_sync_command_refuses_stray_files_with_exit_2_and_cleans_on_request(tmp_path):
    from typer.testing import CliRunner

    from lira.cli import app

    dest = tmp_path / "sample"
    runner = CliRunner()
    ok = runner.invoke(app, ["sample", "sync", "--dest", str(dest)])
    assert ok.exit_code == 0 and f"{len(SEVEN) * len(TASKS)} files written" in ok.output
    (dest / "th.json").write_text("{}", encoding="utf-8")
    refused = runner.invoke(app, ["sample", "sync", "--dest", str(dest)])
    assert refused.exit_code == 2 and "not part of the sample (th.json)" in refused.output
    cleaned = runner.invoke(app, ["sample", "sync", "--dest", str(dest), "--clean"])
    assert cleaned.exit_code == 0 and not (dest / "th.json").exists()


def test_write_never_rewrites_a_file_with_unreadable_lines(tmp_path):
    folder = _copy(tmp_path, "vi")
    file = folder / "vi" / "sts.jsonl"
    broken = file.read_text(encoding="utf-8").replace("}\n", "\n", 1)  # first record cut short
    file.write_text(broken, encoding="utf-8")
    assert main([str(folder), "--write"]) == 1
    assert file.read_text(encoding="utf-8") == broken  # nothing dropped


def test_texts_without_letters_are_not_judged_by_script(tmp_path):
    folder = _copy(tmp_path, "th")
    _edit(folder, "th", "mc", 1, lambda r: r.update(choices=["10", *r["choices"][1:]], choices_en=["10", *r["choices_en"][1:]]))
    assert check(folder) == []
