"""#17 item 14: timeout_s is a total deadline per request; the retry count is exact (also in the critic)."""

import socket
import threading
import time

import pytest
from fake_openai import FakeOpenAI

from lira.config import AgentParams, LLMCriticParams
from lira.critic.llm import LLMCritic
from lira.translate import openai_backend
from lira.translate.agents import TranslationRequest, build_backend


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(openai_backend, "BACKOFF_S", 0.01)


class Trickler:
    """127.0.0.1 server that sends a 200 header at once, then its body one byte every ``gap`` seconds."""

    def __init__(self, gap=0.1, n_bytes=80, headers_too=False):
        self.gap, self.n_bytes, self.headers_too = gap, n_bytes, headers_too
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.connections = 0
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _serve(self):
        self.sock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        try:
            conn.recv(65536)
            head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {self.n_bytes}\r\n".encode())
            if self.headers_too:  # the status line, then one header byte at a time (a slowloris reply)
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                for _ in range(self.n_bytes):
                    if self.stop.is_set():
                        return
                    conn.sendall(b"X")
                    time.sleep(self.gap)
                return
            conn.sendall(head + b"\r\n")
            for _ in range(self.n_bytes):
                if self.stop.is_set():
                    break
                conn.sendall(b" ")
                time.sleep(self.gap)
        except OSError:
            pass  # the client gave up: that is the point
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_a_trickling_server_cannot_hold_a_request_past_its_deadline(headers_too):
    # 8 s of trickle, each byte well inside a 1 s read timeout. Reproduction for the headers case:
    # the deadline was checked only between body chunks, so a server trickling its header held it.
    srv = Trickler(gap=0.1, n_bytes=80, headers_too=headers_too)
    try:
        agent = AgentParams(name="api", backend="openai", model="m", base_url=srv.base_url, timeout_s=1.0,
                            max_retries=0)
        backend = build_backend(agent)
        t0 = time.monotonic()
        (out,) = backend.translate([TranslationRequest("a", "vi", "x")])
        took = time.monotonic() - t0
        backend.close()
    finally:
        srv.close()
    assert out.raw is None and backend.requests_sent == 1
    assert took < 1.8, f"a 1 s request was held for {took:.1f} s"


def _critic(url, retries):
    return LLMCritic(LLMCriticParams(backend="openai", model="judge", base_url=url, max_retries=retries,
                                     timeout_s=5, concurrency=1))


@pytest.mark.parametrize("retries", [0, 1, 2])
def test_critic_requests_per_candidate_are_exactly_one_plus_max_retries_on_server_errors(retries):
    with FakeOpenAI(lambda body, n: (500, "down")) as srv:
        critic = _critic(srv.base_url, retries)
        (r,) = critic.score([("Xin chào", "Hello", "vi")])
        critic.close()
        sent = len(srv.requests)
    assert sent == 1 + retries and r.attempts == 1 + retries and r.s != r.s  # NaN


def test_critic_budget_is_shared_by_server_errors_and_unparsable_answers():
    def answer(body, n):
        return (500, "down") if n % 2 else (200, "I think it is fine")

    with FakeOpenAI(answer) as srv:
        critic = _critic(srv.base_url, 1)
        (r,) = critic.score([("Xin chào", "Hello", "vi")])
        critic.close()
        assert len(srv.requests) == 2 and r.attempts == 2 and r.raw == "I think it is fine"


def test_critic_stops_at_the_first_valid_verdict():
    def answer(body, n):
        return (200, "no idea") if n == 1 else (200, '{"fidelity": 8, "emotion": 7, "tone": 6}')

    with FakeOpenAI(answer) as srv:
        critic = _critic(srv.base_url, 3)
        (r,) = critic.score([("Xin chào", "Hello", "vi")])
        critic.close()
        assert len(srv.requests) == 2 and (r.s, r.e, r.p, r.attempts) == (8.0, 7.0, 6.0, 2)
