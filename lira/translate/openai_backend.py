"""Any OpenAI-compatible ``/v1/chat/completions`` endpoint (OpenAI, a vLLM or TGI server, llama.cpp...).

- ``base_url`` from the agent (else ``$OPENAI_BASE_URL``, else ``https://api.openai.com/v1``);
- the API key only from the environment variable named by ``api_key_env`` (never from params),
  which must be ``LIRA_*`` or allow-listed, and never over plain http to a non-loopback host
  (:mod:`lira.credentials`);
- a per-request timeout, retries with exponential backoff and jitter on 429, 5xx, timeouts and
  connection errors (``Retry-After`` is honoured, capped), no retry on other 4xx;
- at most ``concurrency`` requests in flight (a thread pool sharing one ``httpx.Client``).

A request that still fails after its retries yields ``None`` (no candidate, not cached), so a
rerun tries it again.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lira.credentials import check_key_env, check_key_transport
from lira.translate.agents import ChatBackend
from lira.translate.prompts import Messages

log = logging.getLogger(__name__)

BACKOFF_S = 0.5  # first retry delay; doubles per attempt
BACKOFF_MAX_S = 30.0
DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIBackend(ChatBackend):
    name = "openai"

    def __init__(self, agent: Any, **kwargs: Any) -> None:
        super().__init__(agent, **kwargs)
        import httpx

        base = agent.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.url = base.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        if agent.api_key_env:
            # Checked again here: base_url may come from $OPENAI_BASE_URL, and params may have been
            # built without validation.
            try:
                check_key_env(agent.api_key_env)
                check_key_transport(self.url)
            except ValueError as e:
                raise ValueError(f"agent {agent.name!r}: {e}") from None
            key = os.environ.get(agent.api_key_env)
            if not key:
                raise ValueError(
                    f"agent {agent.name!r}: api_key_env={agent.api_key_env!r} but that environment "
                    "variable is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(
            timeout=httpx.Timeout(agent.timeout_s), headers=headers,
            limits=httpx.Limits(max_connections=agent.concurrency),
        )
        self.backoff_s = BACKOFF_S
        self.backoff_max_s = BACKOFF_MAX_S
        self.response_format_ok = True  # turned off when the server rejects response_format
        self.requests_sent = 0  # HTTP requests, retries included (for tests and metrics)
        self._lock = threading.Lock()

    def generate_chat(self, messages: list[Messages], *, response_format: dict | None = None,
                      max_new_tokens: int | None = None) -> list[str | None]:
        def one(conv: Messages) -> str | None:
            return self.complete(conv, response_format=response_format, max_new_tokens=max_new_tokens)

        if len(messages) <= 1 or self.agent.concurrency == 1:
            return [one(c) for c in messages]
        with ThreadPoolExecutor(max_workers=min(self.agent.concurrency, len(messages))) as pool:
            return list(pool.map(one, messages))

    def complete(self, conv: Messages, *, response_format: dict | None = None,
                 max_new_tokens: int | None = None) -> str | None:
        """One chat completion with retries; ``None`` when it failed for good."""
        import httpx

        payload: dict[str, Any] = {
            "model": self.agent.model,
            "messages": conv,
            "temperature": self.agent.temperature,
            "max_tokens": max_new_tokens or self.agent.max_new_tokens,
        }
        if self.agent.temperature > 0:
            payload["seed"] = self.seed
        if response_format is not None and self.response_format_ok:
            payload["response_format"] = response_format
        attempt = 0
        while True:
            retry_after: float | None = None
            with self._lock:
                self.requests_sent += 1
            try:
                r = self.client.post(self.url, json=payload)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                err = f"{type(e).__name__}: {e}"
            else:
                if r.status_code == 200:
                    try:
                        content = r.json()["choices"][0]["message"]["content"]
                        return content if content is not None else ""
                    except (ValueError, KeyError, IndexError, TypeError) as e:
                        err = f"malformed response ({type(e).__name__}): {r.text[:200]!r}"
                elif r.status_code == 400 and "response_format" in payload:
                    # Older servers reject structured output: ask again without it (not a retry).
                    log.warning("%s rejected response_format (%s); continuing without it",
                                self.url, r.text[:200])
                    self.response_format_ok = False
                    payload.pop("response_format")
                    continue
                elif r.status_code == 429 or r.status_code >= 500:
                    err = f"HTTP {r.status_code}: {r.text[:200]!r}"
                    retry_after = _retry_after(r.headers.get("retry-after"))
                else:
                    log.error("agent %s: HTTP %s from %s: %s (not retried)", self.agent.name,
                              r.status_code, self.url, r.text[:300])
                    return None
            if attempt >= self.agent.max_retries:
                log.error("agent %s: giving up after %d attempts: %s", self.agent.name, attempt + 1, err)
                return None
            delay = min(self.backoff_max_s, self.backoff_s * 2**attempt) * (1 + 0.25 * random.random())
            if retry_after is not None:
                delay = min(self.backoff_max_s, max(delay, retry_after))
            log.warning("agent %s: %s; retry %d/%d in %.2fs", self.agent.name, err, attempt + 1,
                        self.agent.max_retries, delay)
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        self.client.close()


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
