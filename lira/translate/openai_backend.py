"""Any OpenAI-compatible ``/v1/chat/completions`` endpoint (OpenAI, a vLLM or TGI server, llama.cpp...).

- ``base_url`` from the agent (else ``$OPENAI_BASE_URL``, else ``https://api.openai.com/v1``);
- the API key only from the environment variable named by ``api_key_env`` (never from params),
  which must be ``LIRA_*`` or allow-listed, and never over plain http to a non-loopback host
  (:mod:`lira.credentials`);
- ``timeout_s`` is a total deadline per HTTP request (not only per network read); retries with
  exponential backoff and jitter on 429, 5xx, timeouts and
  connection errors (``Retry-After`` is honoured, capped), no retry on other 4xx;
- at most ``concurrency`` requests in flight (a thread pool sharing one ``httpx.Client``).

A request that still fails after its retries yields ``None`` (no candidate, not cached), so a
rerun tries it again.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
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
            # No keep-alive: each request opens its own connection, so _Deadline can see (and cut)
            # the socket it runs on; an LLM call takes seconds, a connect milliseconds.
            limits=httpx.Limits(max_connections=agent.concurrency, max_keepalive_connections=0),
        )
        self.backoff_s = BACKOFF_S
        self.backoff_max_s = BACKOFF_MAX_S
        self.response_format_ok = True  # turned off when the server rejects response_format
        self.requests_sent = 0  # HTTP requests, retries included (for tests and metrics)
        self.last_attempts: list[int] = []  # requests per conversation of the last generate_chat
        self._lock = threading.Lock()

    handles_retries = True  # generate_chat retries within max_retries and takes ``accept``

    def generate_chat(self, messages: list[Messages], *, response_format: dict | None = None,
                      max_new_tokens: int | None = None,
                      accept: Callable[[str], bool] | None = None) -> list[str | None]:
        """One completion per conversation (``None`` = failed for good).

        ``accept``: an answer it rejects is retried like a failed request, from the same budget of
        ``1 + max_retries`` requests (the last answer is returned either way). Requests used per
        conversation are left in :attr:`last_attempts`.
        """
        def one(conv: Messages) -> tuple[str | None, int]:
            return self._complete(conv, response_format=response_format, max_new_tokens=max_new_tokens,
                                  accept=accept)

        if len(messages) <= 1 or self.agent.concurrency == 1:
            results = [one(c) for c in messages]
        else:
            with ThreadPoolExecutor(max_workers=min(self.agent.concurrency, len(messages))) as pool:
                results = list(pool.map(one, messages))
        self.last_attempts = [n for _, n in results]
        return [out for out, _ in results]

    def complete(self, conv: Messages, *, response_format: dict | None = None,
                 max_new_tokens: int | None = None) -> str | None:
        """One chat completion with retries; ``None`` when it failed for good."""
        return self._complete(conv, response_format=response_format, max_new_tokens=max_new_tokens)[0]

    def _post(self, payload: dict[str, Any]) -> tuple[int, Any, str]:
        """(status, headers, body) of one request that ends within ``timeout_s`` in total.

        httpx's timeout bounds each network operation, so a server sending a byte every few
        hundred ms - of its headers or of its body - could hold a request forever. A
        :class:`_Deadline` shuts the request's socket when the total time is up.
        """
        import httpx

        deadline = _Deadline(self.agent.timeout_s)
        chunks: list[bytes] = []
        try:
            with deadline, self.client.stream("POST", self.url, json=payload,
                                              extensions={"trace": deadline.trace}) as r:
                for chunk in r.iter_bytes():
                    chunks.append(chunk)
                encoding = r.encoding or "utf-8"
                status, headers = r.status_code, r.headers
        except httpx.TransportError:
            if deadline.expired:
                raise httpx.ReadTimeout(f"no complete response within timeout_s={self.agent.timeout_s}") from None
            raise
        if deadline.expired:  # the cut landed between the last byte and the end of the block
            raise httpx.ReadTimeout(f"no complete response within timeout_s={self.agent.timeout_s}")
        return status, headers, b"".join(chunks).decode(encoding, errors="replace")

    def _complete(self, conv: Messages, *, response_format: dict | None = None, max_new_tokens: int | None = None,
                  accept: Callable[[str], bool] | None = None) -> tuple[str | None, int]:
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
        sent = 0
        rejected: str | None = None  # the last answer ``accept`` refused
        while True:
            retry_after: float | None = None
            backoff = True
            with self._lock:
                self.requests_sent += 1
            sent += 1
            try:
                status, headers, body = self._post(payload)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                err = f"{type(e).__name__}: {e}"
            else:
                if status == 200:
                    try:
                        content = json.loads(body)["choices"][0]["message"]["content"]
                    except (ValueError, KeyError, IndexError, TypeError) as e:
                        err = f"malformed response ({type(e).__name__}): {body[:200]!r}"
                    else:
                        content = content if isinstance(content, str) else ""
                        if accept is None or accept(content):
                            return content, sent
                        rejected, backoff = content, False
                        err = f"answer rejected: {content[:200]!r}"
                elif status == 400 and "response_format" in payload:
                    # Older servers reject structured output: ask again without it (not a retry).
                    log.warning("%s rejected response_format (%s); continuing without it",
                                self.url, body[:200])
                    self.response_format_ok = False
                    payload.pop("response_format")
                    continue
                elif status == 429 or status >= 500:
                    err = f"HTTP {status}: {body[:200]!r}"
                    retry_after = _retry_after(headers.get("retry-after"))
                else:
                    log.error("agent %s: HTTP %s from %s: %s (not retried)", self.agent.name,
                              status, self.url, body[:300])
                    return rejected, sent
            if attempt >= self.agent.max_retries:
                log.error("agent %s: giving up after %d attempts: %s", self.agent.name, attempt + 1, err)
                return rejected, sent
            delay = min(self.backoff_max_s, self.backoff_s * 2**attempt) * (1 + 0.25 * random.random())
            if retry_after is not None:
                delay = min(self.backoff_max_s, max(delay, retry_after))
            if not backoff:
                delay = 0.0  # the server answered; asking again needs no pause
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


class _Deadline:
    """A total time limit for one HTTP request: when it is up, the request's socket is shut down,
    which ends a blocked read at once (the caller turns the error into a timeout).

    Used as a context manager around the request; the socket comes from httpcore's ``trace``
    extension (the ``connection.connect_tcp.complete`` event returns the network stream).
    """

    def __init__(self, seconds: float):
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if not event.endswith((".connect_tcp.complete", ".connect_unix_socket.complete")):
            return
        sock = info["return_value"].get_extra_info("socket")
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _cut(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing left to cut
