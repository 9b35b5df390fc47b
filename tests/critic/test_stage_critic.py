import math

import pandas as pd
import pytest
from critic_testdata import make_params, sample_texts, write_texts

from lira.critic.checks import GateFailure
from lira.critic.flags import FLAG_COLUMNS
from lira.io import read_json
from lira.stages import critic_score, translate
from lira.translate.agents import ChatBackend

SIM = {"name": "sim", "backend": "simulated", "noise": 0.3}


def _run(root, agents, critic=None):
    params = make_params(agents, critic)
    translate.run(params, root)
    return critic_score.run(params, root)


def _scores(root):
    return pd.read_parquet(root / "data" / "critic" / "scores.parquet")


def test_scores_table(project, fake_encoders):
    metrics = _run(project, [SIM, {**SIM, "name": "sim2", "noise": 0.6}])
    df = _scores(project)
    n = len(sample_texts())
    assert list(df.columns) == critic_score.SCORE_COLUMNS and len(df) == 2 * n
    noref = df["text_id"] == "vi-noref"
    assert (df.loc[noref, "critic"] == "none").all() and df.loc[noref, ["s", "e", "p", "sim"]].isna().all().all()
    assert (df.loc[noref, "reasons"] == "missing").all() and df.loc[noref, "quarantined"].all()
    rest = df[~noref]
    assert (rest["critic"] == "reference").all()
    assert rest[["s", "e", "p"]].apply(lambda c: c.between(1, 10)).all().all()
    assert rest["sim"].between(-1, 1).all()
    assert df[FLAG_COLUMNS].dtypes.eq(bool).all() and df["quarantined"].dtype == bool
    assert sorted(fake_encoders) == [("en", "query", 2 * (n - 1)), ("lrl", "query", 2 * (n - 1))]
    # quarantine.parquet = the failing rows, with their reasons
    q = pd.read_parquet(project / "data" / "critic" / "quarantine.parquet")
    assert len(q) == int(df["quarantined"].sum()) and (q["reasons"] != "").all()
    validation = read_json(project / "data" / "critic" / "validation.json")
    assert validation["gate_passed"] and "results" in validation["great_expectations"]
    saved = read_json(project / "metrics" / "critic.json")
    assert saved["failing_share"] == pytest.approx(df["quarantined"].mean())
    assert set(saved["per_agent"]) == {"sim", "sim2"} and set(saved["per_language"]) == {"vi", "id", "th"}
    assert saved["per_agent"]["sim"]["mean_s"] > saved["per_agent"]["sim2"]["mean_s"]  # less noise, better
    assert saved["gate_by_distortion"]["clean"]["quarantined_share"] < 0.2
    assert metrics["rows"] == saved["rows"]


def test_gate_catches_every_planted_leak_and_echo(tmp_path):
    write_texts(tmp_path, sample_texts(with_noref=False))
    agents = [
        {"name": "clean", "backend": "simulated", "noise": 0.0},
        {"name": "leaky", "backend": "simulated", "noise": 1.0, "distortions": ["preamble", "closing"]},
        {"name": "echo", "backend": "simulated", "noise": 1.0, "distortions": ["copy"]},
        {"name": "wrong", "backend": "simulated", "noise": 1.0, "distortions": ["wrong_language"]},
    ]
    _run(tmp_path, agents, {"checks": {"max_fail_share": 1.0}})
    df = _scores(tmp_path)
    by = {a: g for a, g in df.groupby("agent")}
    assert not by["clean"]["quarantined"].any()  # clean rows pass every check
    assert by["leaky"]["quarantined"].all() and by["leaky"]["reasons"].str.contains("preamble").all()
    assert by["echo"]["quarantined"].all() and by["echo"]["reasons"].str.contains("echo").all()
    assert by["echo"]["reasons"].str.contains("wrong_language").all()
    assert by["wrong"]["quarantined"].all() and by["wrong"]["reasons"].str.contains("wrong_language").all()
    # the hygiene flags and GX's verdicts agree
    for flag, reason in [("flag_preamble", "preamble"), ("flag_echo", "echo"),
                         ("flag_wrong_language", "wrong_language"), ("flag_length", "length")]:
        assert (df[flag] == df["reasons"].str.contains(reason)).all(), flag


def test_stage_fails_over_the_threshold_with_a_report(project):
    leaky = {"name": "leaky", "backend": "simulated", "noise": 1.0, "distortions": ["preamble"]}
    with pytest.raises(GateFailure) as err:
        _run(project, [leaky], {"checks": {"max_fail_share": 0.5}})
    msg = str(err.value)
    assert "25/25 rows fail" in msg and "max_fail_share = 50.0%" in msg
    assert "preamble: expect_column_values_to_not_match_regex_list(candidate) failed on 24 rows" in msg
    assert "missing: expect_column_values_to_not_be_null(candidate) failed on 1 rows" in msg
    out = project / "data" / "critic"
    assert not (out / "scores.parquet").exists()
    validation = read_json(out / "validation.json")
    assert validation["gate_passed"] is False and validation["report"] == msg
    assert len(pd.read_parquet(out / "quarantine.parquet")) == 25


def test_no_critic_means_nan_not_invented(project, fake_encoders):
    _run(project, [SIM], {"reference_critic": False, "embedding_critic": False})
    df = _scores(project)
    assert (df["critic"] == "none").all() and df[["s", "e", "p", "sim"]].isna().all().all()
    assert fake_encoders == []


class _FakeJudge(ChatBackend):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def generate_chat(self, messages, *, response_format=None, max_new_tokens=None):
        self.calls += 1
        # Thai rows get garbage every time; the rest a valid verdict
        return ["no idea" if "Thai" in m[-1]["content"] else '{"fidelity": 8, "emotion": 6, "tone": 7}'
                for m in messages]


def test_llm_critic_in_the_stage_fails_closed(project, monkeypatch):
    import lira.critic.llm as llm_mod

    monkeypatch.setattr(llm_mod, "build_backend", lambda agent, **kw: _FakeJudge(agent, **kw))
    critic = {"llm": {"backend": "openai", "model": "judge-1", "max_retries": 1},
              "checks": {"max_fail_share": 1.0}, "max_unscored_share": 0.5}
    _run(project, [SIM], critic)
    df = _scores(project)
    has = df["text_id"] != "vi-noref"
    assert (df.loc[has, "critic"] == "llm:judge-1").all()
    thai = df["lang"] == "th"
    assert df.loc[thai, ["s", "e", "p"]].isna().all().all() and (df.loc[thai, "llm_raw"] == "no idea").all()
    ok = df[has & ~thai]
    assert (ok["s"] == 8).all() and (ok["e"] == 6).all() and (ok["p"] == 7).all()
    assert not df.loc[thai, "reasons"].str.contains("score_range").any()  # NaN is allowed, not out of range
    assert (df.loc[thai, "reasons"] == "unscored").all() and df.loc[thai, "quarantined"].all()
    assert math.isnan(df.loc[~has, "s"].iloc[0])


def test_a_failure_part_way_leaves_the_previous_critic_folder_whole(project, fake_encoders, monkeypatch):
    """Reproduction (issue 17 item 12): quarantine and validation were written into data/critic one
    by one, so a crash before scores.parquet left this run's quarantine beside the last run's scores."""
    _run(project, [SIM])
    folder = project / "data" / "critic"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert set(before) == {"quarantine.parquet", "validation.json", "scores.parquet"}

    real = critic_score.write_parquet

    def failing(path, df):
        if path.name == "scores.parquet":
            raise OSError(28, "No space left on device", str(path))
        real(path, df)

    monkeypatch.setattr(critic_score, "write_parquet", failing)
    with pytest.raises(OSError, match="No space left"):
        _run(project, [{**SIM, "noise": 0.9}])  # different candidates: every file would change
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".critic")]  # no temp folder left
