"""#17 item 7 (translate): an agent failing on most rows fails the stage, loudly, past
translate.max_failed_share; the metrics say which agent and how much."""

import pytest
from fake_openai import FakeOpenAI, user_text
from translate_testdata import make_params, sample_texts

from lira.config import ConfigError, parse_params
from lira.errors import StageFailed
from lira.io import read_json
from lira.stages import translate as stage
from lira.translate import openai_backend


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(openai_backend, "BACKOFF_S", 0.01)


def _agent(url, name="api"):
    return {"name": name, "backend": "openai", "model": "m", "base_url": url, "max_retries": 0,
            "timeout_s": 5, "batch_size": 32}


def test_an_agent_down_on_every_row_fails_the_stage(project):
    with FakeOpenAI(lambda body, n: (503, "down")) as srv:
        params = make_params([_agent(srv.base_url, "down"), {"name": "sim", "backend": "simulated"}])
        with pytest.raises(StageFailed, match=r"max_failed_share = 50.0%: down: 25/25 rows failed"):
            stage.run(params, project)
    metrics = read_json(project / "metrics" / "translate.json")
    assert metrics["agents"]["down"]["failed_share"] == 1.0 and metrics["agents"]["sim"]["failed_share"] == 0.0
    assert metrics["failed_agents"] == ["down"] and metrics["passed"] is False
    assert not (project / "data" / "translations" / "candidates.parquet").exists()


def test_a_few_failures_are_reported_but_pass(project):
    def flaky(body, n):
        if "Chợ mở cửa" in user_text(body):
            return 503, "down"
        return 200, "<translation>ok</translation>"

    with FakeOpenAI(flaky) as srv:
        summary = stage.run(make_params([_agent(srv.base_url)]), project)
    n = len(sample_texts())
    assert summary["agents"]["api"]["failed_share"] == pytest.approx(1 / n)
    assert summary["passed"] is True and summary["failed_agents"] == []


def test_max_failed_share_is_a_share():
    assert parse_params({}).translate.max_failed_share == 0.5
    with pytest.raises(ConfigError, match="max_failed_share"):
        parse_params({"translate": {"max_failed_share": -0.1}})
