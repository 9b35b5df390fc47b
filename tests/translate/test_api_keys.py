"""#17 item 9 (keys): api_key_env names only LIRA_* or allow-listed variables; no key over plain http
to a non-loopback host - in config, and again in the HTTP client (base_url from $OPENAI_BASE_URL)."""

import pytest
from fake_openai import FakeOpenAI

from lira.config import AgentParams, ConfigError, parse_params
from lira.translate.agents import TranslationRequest, build_backend


def _params(agent=None, llm=None):
    data = {"translate": {"agents": [{"name": "api", "backend": "openai", "model": "m", **(agent or {})}]}}
    if llm is not None:
        data["critic_score"] = {"llm": {"backend": "openai", "model": "judge", **llm}}
    return parse_params(data, "<test>")


@pytest.mark.parametrize("section", ["agent", "llm"])
def test_any_environment_variable_cannot_be_named_as_the_key(section):
    with pytest.raises(ConfigError) as e:
        _params(**{section: {"api_key_env": "AWS_SECRET_ACCESS_KEY"}})
    assert "api_key_env" in str(e.value) and "AWS_SECRET_ACCESS_KEY" in str(e.value) and "LIRA_" in str(e.value)


def test_lira_prefixed_and_allow_listed_variables_are_accepted():
    assert _params({"api_key_env": "LIRA_OPENAI_KEY"}).translate.agents[0].api_key_env == "LIRA_OPENAI_KEY"
    assert _params({"api_key_env": "OPENAI_API_KEY"}).translate.agents[0].api_key_env == "OPENAI_API_KEY"


@pytest.mark.parametrize("section", ["agent", "llm"])
@pytest.mark.parametrize("url", ["http://10.1.2.3:8000/v1", "http://api.example.com/v1", "ftp://127.0.0.1/v1"])
def test_a_key_over_plain_http_to_a_remote_host_is_refused_by_config(section, url):
    with pytest.raises(ConfigError) as e:
        _params(**{section: {"api_key_env": "LIRA_KEY", "base_url": url}})
    assert url in str(e.value)


@pytest.mark.parametrize("url", ["https://api.example.com/v1", "http://127.0.0.1:8000/v1",
                                 "http://localhost:8000/v1", "http://[::1]:8000/v1"])
def test_https_and_loopback_are_fine(url):
    assert _params({"api_key_env": "LIRA_KEY", "base_url": url}).translate.agents[0].base_url == url
    assert _params({"base_url": "http://10.1.2.3/v1"}).translate.agents[0].base_url  # no key: plain http is ok


def test_the_client_refuses_a_remote_http_base_url_from_the_environment(monkeypatch):
    monkeypatch.setenv("LIRA_KEY", "sk-secret")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://10.1.2.3:8000/v1")
    agent = AgentParams(name="api", backend="openai", model="m", api_key_env="LIRA_KEY")
    with pytest.raises(ValueError, match="plain http.*10.1.2.3"):
        build_backend(agent)


def test_the_client_rechecks_the_variable_name(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    agent = AgentParams.model_construct(**{**AgentParams(name="api", backend="openai").model_dump(),
                                           "api_key_env": "AWS_SECRET_ACCESS_KEY",
                                           "base_url": "http://127.0.0.1:9/v1"})
    with pytest.raises(ValueError, match="AWS_SECRET_ACCESS_KEY.*not allowed"):
        build_backend(agent)


def test_a_loopback_server_still_gets_the_key(monkeypatch):
    monkeypatch.setenv("LIRA_KEY", "sk-local")
    with FakeOpenAI(lambda body, n: (200, "<translation>hi</translation>"), api_key="sk-local") as srv:
        backend = build_backend(AgentParams(name="api", backend="openai", model="m", api_key_env="LIRA_KEY",
                                            base_url=srv.base_url))
        (out,) = backend.translate([TranslationRequest("a", "vi", "xin chào")])
        backend.close()
    assert out.raw == "<translation>hi</translation>"
