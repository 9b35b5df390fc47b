from __future__ import annotations

import numpy as np

from lira.config import SourceParams
from lira.eval.external import evaluate_external


def fake_embed(texts, lang, kind, english):
    """Bag-of-characters: a text and its 'translation' share their digits, so they match."""
    out = np.zeros((len(texts), 16))
    for i, t in enumerate(texts):
        for c in t:
            if c.isdigit():
                out[i, int(c)] += 1.0
    return out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-9, None)


def test_parallel_tsv_bitext_both_directions(tmp_path):
    (tmp_path / "p.tsv").write_text("text\ten\nsố 1\tnumber 1\nsố 2\tnumber 2\nsố 3\tnumber 3\n", encoding="utf-8")
    res = evaluate_external(SourceParams(kind="parallel_tsv", path="p.tsv", language="vi"), tmp_path, {"toy": fake_embed})
    assert res["n"] == 3 and res["systems"]["toy"] == {"src2tgt": 1.0, "tgt2src": 1.0}


def test_beir_folder_is_scored_with_ranx(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "a 1"}\n{"_id": "d2", "text": "b 2"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "1?"}\n{"_id": "q2", "text": "2?"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td1\t1\n")
    res = evaluate_external(SourceParams(kind="beir", path=".", language="vi"), tmp_path, {"toy": fake_embed})
    # q1 finds d1 first (nDCG 1); q2 finds d2 first, its relevant d1 second (nDCG 1/log2(3)).
    assert np.isclose(res["systems"]["toy"]["ndcg@10"], (1 + 1 / np.log2(3)) / 2)


def _beir(folder):
    """A tiny Vietnamese BEIR folder: 3 items, 3 queries, graded qrels."""
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        '{"_id": "d1", "text": "điện thoại pin tốt"}\n{"_id": "d2", "text": "ốp lưng màu đen"}\n'
        '{"_id": "d3", "text": "sạc dự phòng nhanh"}\n', encoding="utf-8")
    (folder / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "pin điện thoại"}\n{"_id": "q2", "text": "ốp lưng đen"}\n{"_id": "q3", "text": "sạc nhanh"}\n',
        encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td2\t1\nq3\td3\t1\nq3\td1\t1\n")
    return folder


def test_every_system_is_compared_with_the_first_by_paired_bootstrap(tmp_path):
    def shuffled(texts, lang, kind, english):  # a worse system: each query gets another query's vector
        z = fake_embed(texts, lang, kind, english)
        return np.roll(z, 1, axis=0) if kind == "query" or english else z

    (tmp_path / "qrels").mkdir()
    n = 12
    (tmp_path / "corpus.jsonl").write_text("".join(f'{{"_id": "d{i}", "text": "a {i}"}}\n' for i in range(1, n)))
    (tmp_path / "queries.jsonl").write_text("".join(f'{{"_id": "q{i}", "text": "{i}?"}}\n' for i in range(1, n)))
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(1, n)))
    res = evaluate_external(SourceParams(kind="beir", path=".", language="vi"), tmp_path,
                            {"toy": fake_embed, "worse": shuffled}, n_resamples=200, seed=1)
    assert res["reference"] == "toy" and set(res["lira_minus"]) == {"worse"}
    ci = res["lira_minus"]["worse"]["ndcg@10"]
    gap = res["systems"]["toy"]["ndcg@10"] - res["systems"]["worse"]["ndcg@10"]
    assert gap > 0 and np.isclose(ci["diff"], gap) and ci["low"] <= ci["diff"] <= ci["high"]
    (tmp_path / "p.tsv").write_text("text\ten\n" + "".join(f"số {i}\tnumber {i}\n" for i in range(1, n)), encoding="utf-8")
    bi = evaluate_external(SourceParams(kind="parallel_tsv", path="p.tsv", language="vi"), tmp_path,
                           {"toy": fake_embed, "worse": shuffled}, n_resamples=200)
    assert set(bi["lira_minus"]["worse"]) == {"src2tgt", "tgt2src"}


def test_lira_eval_scores_a_beir_folder_alone_without_registering(tmp_path, tiny_bert_dir, monkeypatch):
    """`lira eval --beir DIR --model M`: the external benchmark without retraining, no MLflow run."""
    import json
    import sys
    from pathlib import Path

    from typer.testing import CliRunner

    sys.path.insert(0, str(Path(__file__).parents[1] / "tracking"))
    from lira_testkit import build_lira_folder

    from lira import api
    from lira.cli import app
    from lira.eval.metrics import mean_metrics, retrieval_metrics, scores_to_run
    from lira.report import summary_table

    monkeypatch.setenv("LIRA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    model = build_lira_folder(tmp_path / "model", tiny_bert_dir, languages=("vi", "th"))
    beir = _beir(tmp_path / "bench")
    none = tmp_path / "none.yaml"
    out = CliRunner().invoke(app, ["eval", "--beir", str(beir), "--model", str(model), "--lang", "vi",
                                   "--out", "ext.json", "--params", str(none)])
    assert out.exit_code == 0, out.output
    res = json.loads((tmp_path / "ext.json").read_text())
    assert list(res["systems"]) == ["lira_lrl_only", "frozen"] and res["n"] == 3
    # the same numbers as `lira embed` gives, scored by hand
    docs, queries = ["d1", "d2", "d3"], ["q1", "q2", "q3"]
    corpus = ["điện thoại pin tốt", "ốp lưng màu đen", "sạc dự phòng nhanh"]
    zi = api.embed(corpus, model=str(model), lang="vi", kind="passage", params_path=none)
    zq = api.embed(["pin điện thoại", "ốp lưng đen", "sạc nhanh"], model=str(model), lang="vi", params_path=none)
    qrels = {"q1": {"d1": 2}, "q2": {"d2": 1}, "q3": {"d3": 1, "d1": 1}}
    want = mean_metrics(retrieval_metrics(scores_to_run(queries, docs, zq @ zi.T, top_k=100), qrels))
    assert np.isclose(res["systems"]["lira_lrl_only"]["ndcg@10"], want["ndcg@10"], atol=1e-6)
    ci = res["lira_minus"]["frozen"]["ndcg@10"]
    assert ci["low"] <= ci["diff"] <= ci["high"]
    assert "External benchmark bench (beir, vi, 3 queries)" in out.output and "lira_lrl_only - system" in out.output
    # nothing tracked: no store, no run, no registered version
    assert not list(tmp_path.glob("mlruns*")) and not (tmp_path / "mlartifacts").exists()
    # the pipeline's summary table shows the same block when evaluate.external lists the folder
    (tmp_path / "metrics").mkdir()
    from lira.eval.external import external_by_name

    ext = external_by_name([res, res])
    assert list(ext) == ["bench", "bench-2"]  # a mapping: `dvc metrics show` skips lists
    (tmp_path / "metrics" / "evaluate.json").write_text(json.dumps({"systems": {}, "external": ext}))
    table = summary_table(tmp_path / "metrics")
    assert table.count("External benchmark bench") == 2 and "95% CI" in table
    bad = CliRunner().invoke(app, ["eval", "--model", str(model), "--lang", "vi", "--params", str(none)])
    assert bad.exit_code == 2 and "exactly one of --beir" in bad.output
