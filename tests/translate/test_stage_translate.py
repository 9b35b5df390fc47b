import pandas as pd
import pytest
from translate_testdata import make_params, sample_texts, write_texts

from lira.io import read_json
from lira.stages import translate as stage
from lira.translate import agents
from lira.translate.simulated import SimulatedBackend

AGENTS = [
    {"name": "sim-a", "backend": "simulated", "noise": 0.3, "batch_size": 4},
    {"name": "sim-b", "backend": "simulated", "noise": 0.8, "batch_size": 4},
]


def _candidates(root):
    return pd.read_parquet(root / "data" / "translations" / "candidates.parquet")


def test_candidates_table(project):
    summary = stage.run(make_params(AGENTS), project)
    df = _candidates(project)
    n_texts = len(sample_texts())
    assert list(df.columns) == stage.COLUMNS
    assert len(df) == 2 * n_texts and not df.duplicated(["text_id", "agent"]).any()
    assert set(df["backend"]) == {"simulated"} and set(df["model"]) == {"simulated"}
    noref = df[df["text_id"] == "vi-noref"]
    assert noref["candidate"].isna().all() and (noref["parse_flags"] == "no_reference").all()
    rest = df[df["text_id"] != "vi-noref"]
    assert rest["candidate"].notna().all() and rest["distortion"].notna().all()
    clean = rest[rest["distortion"] == "clean"]
    refs = sample_texts().set_index("text_id")["en_ref"]
    assert (clean["candidate"].to_numpy() == refs.loc[clean["text_id"]].to_numpy()).all()
    metrics = read_json(project / "metrics" / "translate.json")
    assert metrics == summary
    assert summary["new"] == 2 * (n_texts - 1) and summary["cache_hits"] == 0
    assert summary["no_reference"] == 2
    assert summary["agents"]["sim-a"]["per_lang"]["vi"] == {"rows": 9, "candidates": 8}


def test_languages_come_from_params(project):
    params = make_params(AGENTS[:1], shared={"languages": ["th"]})
    stage.run(params, project)
    assert set(_candidates(project)["lang"]) == {"th"}


class _Counting(SimulatedBackend):
    calls = 0
    fail_after: int | None = None

    def translate(self, requests):
        if _Counting.fail_after is not None and _Counting.calls >= _Counting.fail_after:
            raise KeyboardInterrupt("killed mid-run")  # like a Ctrl-C / SIGTERM between batches
        _Counting.calls += 1
        return super().translate(requests)


def test_resume_after_kill_translates_only_missing_batches(project, tmp_path_factory, monkeypatch):
    monkeypatch.setitem(agents.BACKENDS, "simulated", _Counting)
    params = make_params(AGENTS[:1])  # 24 texts with a reference -> 6 batches of 4
    _Counting.calls, _Counting.fail_after = 0, 2
    with pytest.raises(KeyboardInterrupt):
        stage.run(params, project)
    shards = sorted((project / ".cache" / "lira" / "translations").glob("shard-*.parquet"))
    assert len(shards) == 2  # both finished batches survived the kill
    assert not (project / "data" / "translations" / "candidates.parquet").exists()

    _Counting.calls, _Counting.fail_after = 0, None
    summary = stage.run(params, project)
    assert _Counting.calls == 4  # only the 4 missing batches
    assert summary["cache_hits"] == 8 and summary["new"] == 16

    _Counting.calls = 0
    summary = stage.run(params, project)
    assert _Counting.calls == 0 and summary["backend_calls"] == 0 and summary["new"] == 0
    assert summary["cache_hits"] == 24
    resumed = _candidates(project)

    # identical to one uninterrupted run in a fresh project
    fresh = tmp_path_factory.mktemp("fresh")
    write_texts(fresh, sample_texts())
    stage.run(params, fresh)
    pd.testing.assert_frame_equal(resumed, _candidates(fresh))


def test_changed_settings_miss_the_cache(project, monkeypatch):
    monkeypatch.setitem(agents.BACKENDS, "simulated", _Counting)
    _Counting.calls, _Counting.fail_after = 0, None
    stage.run(make_params(AGENTS[:1]), project)
    first = _Counting.calls
    _Counting.calls = 0
    noisier = [{**AGENTS[0], "noise": 0.9}]
    stage.run(make_params(noisier), project)
    assert _Counting.calls == first  # noise changes the output: a new key
    _Counting.calls = 0
    stage.run(make_params(AGENTS[:1], translate={"agents": AGENTS[:1], "prompt_version": "v2"}), project)
    assert _Counting.calls == first


def test_agents_filled_concurrently_give_the_table_of_one_sequential_run(project, tmp_path):
    """K agents at once (as the flow's mapped task per agent runs them), each writing its own cache
    shards; the stage then translates nothing and writes what a sequential run writes."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    params = make_params(AGENTS)
    seq_root = tmp_path / "seq"
    shutil.copytree(project, seq_root)
    stage.run(params, seq_root)
    with ThreadPoolExecutor(len(AGENTS)) as pool:
        fills = list(pool.map(lambda a: stage.fill_agent(params, project, a["name"]), AGENTS))
    assert all(f["new"] > 0 and f["cached"] == 0 for f in fills)
    summary = stage.run(params, project)
    assert summary["new"] == 0 and summary["cache_hits"] == sum(f["new"] for f in fills)
    pd.testing.assert_frame_equal(_candidates(project), _candidates(seq_root))
    with pytest.raises(ValueError, match="no agent 'nope'"):
        stage.fill_agent(params, project, "nope")
