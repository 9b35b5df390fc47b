"""#17 item 7: with the LLM critic down, critic_score must not pass a table of NaN scores; unscored
candidates are quarantined, and past critic_score.max_unscored_share the stage fails."""

import pandas as pd
import pytest
from critic_testdata import make_params

from lira.config import ConfigError, parse_params
from lira.critic.checks import read_scores
from lira.errors import StageFailed
from lira.io import read_json
from lira.stages import critic_score, translate
from lira.translate.agents import ChatBackend

SIM = {"name": "sim", "backend": "simulated", "noise": 0.0}


class _Judge(ChatBackend):
    def __init__(self, agent, down=lambda user: True, **kw):
        super().__init__(agent, **kw)
        self.down = down

    def generate_chat(self, messages, *, response_format=None, max_new_tokens=None):
        return [None if self.down(m[-1]["content"]) else '{"fidelity": 8, "emotion": 7, "tone": 7}'
                for m in messages]


def _use_judge(monkeypatch, down):
    import lira.critic.llm as llm_mod

    monkeypatch.setattr(llm_mod, "build_backend", lambda agent, **kw: _Judge(agent, down, **kw))


def _llm(**kw):
    return {"llm": {"backend": "openai", "model": "judge", "max_retries": 0}, "checks": {"max_fail_share": 1.0}, **kw}


def test_a_critic_that_is_down_fails_the_stage(project, monkeypatch):
    _use_judge(monkeypatch, lambda user: True)
    params = make_params([SIM], _llm())
    translate.run(params, project)
    (project / "data" / "critic").mkdir(parents=True, exist_ok=True)
    (project / "data" / "critic" / "scores.parquet").write_bytes(b"stale")
    with pytest.raises(StageFailed, match=r"unscored.*24/24.*max_unscored_share"):
        critic_score.run(params, project)
    assert not (project / "data" / "critic" / "scores.parquet").exists()  # no table that looks scored
    metrics = read_json(project / "metrics" / "critic.json")
    assert metrics["unscored"] == 24 and metrics["unscored_share"] == 1.0 and not metrics["gate_passed"]


def test_below_the_threshold_unscored_candidates_are_quarantined(project, monkeypatch):
    _use_judge(monkeypatch, lambda user: "Thai" in user)
    params = make_params([SIM], _llm(max_unscored_share=0.5))
    translate.run(params, project)
    metrics = critic_score.run(params, project)
    df = pd.read_parquet(project / "data" / "critic" / "scores.parquet")
    thai = df["lang"] == "th"
    assert df.loc[thai, "quarantined"].all() and df.loc[thai, "reasons"].str.contains("unscored").all()
    assert not df.loc[~thai & (df["text_id"] != "vi-noref"), "reasons"].str.contains("unscored").any()
    q = pd.read_parquet(project / "data" / "critic" / "quarantine.parquet")
    assert set(q.loc[q["reasons"].str.contains("unscored"), "lang"]) == {"th"}
    assert metrics["unscored"] == int(thai.sum()) and metrics["reasons"]["unscored"] == int(thai.sum())


def test_scores_read_back_are_checked(tmp_path):
    good = pd.DataFrame({"text_id": ["a", "b"], "agent": ["x", "x"], "s": [5.0, float("nan")],
                         "e": [5.0, float("nan")], "p": [5.0, float("nan")], "sim": [0.5, 0.2],
                         "critic": ["llm:j", "llm:j"], "quarantined": [False, True],
                         "reasons": ["", "unscored"]})
    f = tmp_path / "scores.parquet"
    good.to_parquet(f)
    assert len(read_scores(f)) == 2
    bad = good.assign(quarantined=[False, False], reasons=["", ""])  # an unscored row let through
    bad.to_parquet(f)
    with pytest.raises(ValueError, match=r"scores.parquet.*row 1.*unscored"):
        read_scores(f)
    good.assign(s=[50.0, float("nan")]).to_parquet(f)
    with pytest.raises(ValueError, match=r"row 0.*'s'"):
        read_scores(f)


def test_max_unscored_share_is_a_share():
    assert parse_params({}).critic_score.max_unscored_share == 0.1
    with pytest.raises(ConfigError, match="max_unscored_share"):
        parse_params({"critic_score": {"max_unscored_share": 1.5}})
