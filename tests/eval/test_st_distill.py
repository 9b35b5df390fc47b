"""st_distill: whole-encoder MSE distillation (make_multilingual recipe) on a tiny BERT."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sentence_transformers")

from lira.eval.st_distill import PeakRSS, sentence_transformer, st_distill, st_embed

PAIRS = [
    ("query: ang baterya ay matibay", "query: the battery is strong"),
    ("query: pulang kamiseta para sa babae", "query: red shirt for women"),
    ("query: mabilis na charger ng telepono", "query: fast phone charger"),
    ("query: sapatos na pantakbo", "query: running shoes"),
    ("query: bote ng tubig na bakal", "query: steel water bottle"),
    ("query: malambot na unan", "query: soft pillow"),
    ("query: kape na may gatas", "query: coffee with milk"),
    ("query: payong na itim", "query: black umbrella"),
]


def _gap(student, teacher) -> float:
    s = st_embed(student, [p[0] for p in PAIRS])
    t = st_embed(teacher, [p[1] for p in PAIRS])
    return float(((s - t) ** 2).mean())


def test_st_distill_moves_student_toward_teacher(tiny_bert_dir) -> None:
    teacher = sentence_transformer(tiny_bert_dir, max_length=32)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    gap0 = _gap(teacher, teacher)  # the student starts as a copy of the teacher
    res = st_distill(teacher, PAIRS, epochs=12, batch_size=4, lr=3e-3, warmup_ratio=0.0, seed=0, progress=False)
    assert res.steps == 12 * 2 and len(res.losses) == res.steps
    first, last = sum(res.losses[:2]) / 2, sum(res.losses[-2:]) / 2
    assert last < 0.7 * first  # the loss decreases
    assert _gap(res.student, teacher) < 0.7 * gap0  # LRL embeddings moved onto the teacher's English
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the teacher is unchanged
    assert any(not torch.equal(before[k], v) for k, v in res.student.state_dict().items())
    assert res.wall_s > 0 and res.peak_rss_mib > 0
    assert res.settings["n_pairs"] == len(PAIRS)


def test_st_distill_from_folder_saves_student(tiny_bert_dir, tmp_path) -> None:
    res = st_distill(str(tiny_bert_dir), PAIRS[:4], epochs=1, batch_size=2, lr=1e-3, out_dir=tmp_path / "student",
                     max_length=32, progress=False)
    from sentence_transformers import SentenceTransformer

    reloaded = SentenceTransformer(str(tmp_path / "student"), device="cpu", local_files_only=True)
    a = st_embed(res.student, [PAIRS[0][0]])
    assert torch.allclose(a, st_embed(reloaded, [PAIRS[0][0]]), atol=1e-5)


def test_st_distill_refuses_bad_input(tiny_bert_dir) -> None:
    with pytest.raises(ValueError, match="no train pairs"):
        st_distill(str(tiny_bert_dir), [], progress=False)
    with pytest.raises(ValueError, match="pair 1"):
        st_distill(str(tiny_bert_dir), [PAIRS[0], ("only one",)], progress=False)
    with pytest.raises(FileNotFoundError, match="config.json"):
        sentence_transformer(tiny_bert_dir / "missing")


def test_peak_rss_sees_an_allocation() -> None:
    with PeakRSS(interval_s=0.01) as base:
        pass
    with PeakRSS(interval_s=0.01) as m:
        x = torch.ones(64 * 2**20 // 4)  # 64 MiB
        x += 1
    assert m.peak_mib >= base.peak_mib + 32
