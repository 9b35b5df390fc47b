import pandas as pd
import pytest
from fake_openai import FakeOpenAI, user_text
from translate_testdata import make_params, sample_texts

from lira.config import AgentParams
from lira.stages import translate as stage
from lira.translate import openai_backend
from lira.translate.agents import TranslationRequest, build_backend


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(openai_backend, "BACKOFF_S", 0.01)
    monkeypatch.setenv("LIRA_TEST_KEY", "sk-test")


def _agent(url, **kw):
    base = {"name": "api", "backend": "openai", "model": "fake-7b", "base_url": url,
            "api_key_env": "LIRA_TEST_KEY", "concurrency": 4, "max_retries": 2, "timeout_s": 5, "batch_size": 8}
    return {**base, **kw}


def _echo_lang(body, n):
    # a well-behaved model: the user turn's last line, tagged
    return 200, f"<translation>EN: {user_text(body).splitlines()[-1]}</translation>"


def test_stage_with_a_real_http_server_retries_a_500(project):
    def responder(body, n):
        if n == 1:
            return 500, "overloaded"
        return _echo_lang(body, n)

    with FakeOpenAI(responder, api_key="sk-test") as srv:
        summary = stage.run(make_params([_agent(srv.base_url)]), project)
        n_texts = len(sample_texts())
        assert len(srv.requests) == n_texts + 1  # one retry, then one request per text
        req = srv.requests[0]
        assert req["model"] == "fake-7b" and req["temperature"] == 0.0
        assert "<translation>" in req["messages"][0]["content"]  # the v1 prompt asks for tags
    df = pd.read_parquet(project / "data" / "translations" / "candidates.parquet")
    assert len(df) == n_texts and df["candidate"].notna().all()  # no reference needed for real backends
    assert df["candidate"].str.startswith("EN: ").all() and (df["parse_flags"] == "").all()
    assert df["distortion"].isna().all() and set(df["model"]) == {"fake-7b"}
    assert summary["new"] == n_texts and summary["failed"] == 0

    with FakeOpenAI(_echo_lang, api_key="sk-test") as srv:  # rerun: all cached, no request at all
        summary = stage.run(make_params([_agent(srv.base_url)]), project)
        assert srv.requests == [] and summary["cache_hits"] == n_texts


def test_failures_give_no_candidate_and_are_retried_next_run(project):
    def flaky(body, n):
        if "Chợ mở cửa" in user_text(body):
            return 503, "down"
        return _echo_lang(body, n)

    with FakeOpenAI(flaky, api_key="sk-test") as srv:
        summary = stage.run(make_params([_agent(srv.base_url)]), project)
        assert summary["failed"] == 1
        hits = [b for b in srv.requests if "Chợ mở cửa" in user_text(b)]
        assert len(hits) == 3  # 1 + max_retries
    df = pd.read_parquet(project / "data" / "translations" / "candidates.parquet")
    bad = df[df["text_id"] == "vi-000"]
    assert bad["candidate"].isna().all() and (bad["parse_flags"] == "backend_error").all()

    with FakeOpenAI(_echo_lang, api_key="sk-test") as srv:
        summary = stage.run(make_params([_agent(srv.base_url)]), project)
        assert len(srv.requests) == 1 and summary["new"] == 1 and summary["failed"] == 0


def test_client_errors_are_not_retried_and_429_is():
    seen = {"429": 0}

    def responder(body, n):
        text = user_text(body)
        if "bad" in text:
            return 400, "bad request"
        if "busy" in text and seen["429"] == 0:
            seen["429"] += 1
            return 429, "slow down"
        return 200, "<translation>ok</translation>"

    with FakeOpenAI(responder) as srv:
        backend = build_backend(AgentParams(**_agent(srv.base_url, api_key_env=None)), prompt_version="raw")
        outs = backend.translate([TranslationRequest("a", "vi", "bad"), TranslationRequest("b", "vi", "busy")])
        backend.close()
    assert outs[0].raw is None and outs[0].error == "backend_error"
    assert outs[1].raw == "<translation>ok</translation>"
    assert backend.requests_sent == 3  # 400 once, 429 + retry


def test_timeouts_are_retried_then_fail_closed():
    import time

    def slow(body, n):
        time.sleep(0.5)
        return 200, "<translation>late</translation>"

    with FakeOpenAI(slow) as srv:
        agent = AgentParams(**_agent(srv.base_url, api_key_env=None, timeout_s=0.1, max_retries=1))
        backend = build_backend(agent)
        (out,) = backend.translate([TranslationRequest("a", "vi", "x")])
        backend.close()
    assert out.raw is None and backend.requests_sent == 2


def test_missing_api_key_env_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("LIRA_TEST_KEY")
    with pytest.raises(ValueError, match="LIRA_TEST_KEY"):
        build_backend(AgentParams(**_agent("http://127.0.0.1:9/v1")))


def test_structured_output_falls_back_when_the_server_rejects_it():
    def responder(body, n):
        if "response_format" in body:
            return 400, "response_format is not supported"
        return 200, '{"fidelity": 7, "emotion": 7, "tone": 7}'

    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    with FakeOpenAI(responder) as srv:
        backend = build_backend(AgentParams(**_agent(srv.base_url, api_key_env=None)))
        outs = backend.generate_chat([[{"role": "user", "content": "rate"}]] * 3, response_format=schema)
        backend.close()
        with_schema = sum("response_format" in b for b in srv.requests)
    assert outs == ['{"fidelity": 7, "emotion": 7, "tone": 7}'] * 3
    assert backend.response_format_ok is False and 1 <= with_schema <= 3  # concurrent requests may all try once
