"""Translator agents: one backend per agent of the pass@k budget, resolved from a string in params.

The registry maps ``AgentParams.backend`` to ``"module:Class"`` (imported only when used, so the
heavy libraries of one backend never load for another). Adding a backend is one file with a
:class:`TranslatorBackend` subclass plus one line in :data:`BACKENDS`.

Every backend answers :meth:`TranslatorBackend.translate` with one :class:`BackendOutput` per
request: the *raw* output (parsed later by :mod:`lira.translate.parsing`), the planted distortion
(simulated backend only) or an error. Backends that talk to a real model also implement
:meth:`ChatBackend.generate_chat`, which the LLM critic reuses.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from typing import Any

from lira.config import AgentParams
from lira.translate.prompts import Messages, build_messages

BACKENDS: dict[str, Any] = {
    "simulated": "lira.translate.simulated:SimulatedBackend",
    "openai": "lira.translate.openai_backend:OpenAIBackend",
    "transformers": "lira.translate.transformers_backend:TransformersBackend",
    "vllm": "lira.translate.vllm_backend:VLLMBackend",
}


@dataclass(frozen=True)
class TranslationRequest:
    text_id: str
    lang: str
    text: str
    en_ref: str | None = None


@dataclass(frozen=True)
class BackendOutput:
    raw: str | None
    distortion: str | None = None  # simulated: the planted distortion or "clean"; None otherwise
    error: str | None = None  # a failed request: no candidate, never cached


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TranslatorBackend:
    """Base class. Subclasses set ``name`` and implement :meth:`translate`."""

    name: str = "base"
    requires_reference: bool = False  # only the simulated backend needs en_ref

    def __init__(self, agent: AgentParams, *, prompt_version: str = "v1", seed: int = 0,
                 device: str = "cpu", **_: Any) -> None:
        self.agent = agent
        self.prompt_version = prompt_version
        self.seed = seed
        self.device = device

    @property
    def model(self) -> str:
        return self.model_name(self.agent)

    # The three classmethods below feed the cache key; they are classmethods so the stage can tell
    # what is cached without building the backend (which may load a model).
    @classmethod
    def model_name(cls, agent: AgentParams) -> str:
        return agent.model

    @classmethod
    def output_settings(cls, agent: AgentParams, seed: int) -> dict[str, Any]:
        """The agent settings that change the output."""
        s: dict[str, Any] = {"temperature": agent.temperature, "max_new_tokens": agent.max_new_tokens}
        if agent.temperature > 0:
            s["seed"] = seed
        return s

    @classmethod
    def request_settings(cls, req: TranslationRequest) -> dict[str, Any]:
        """Per-request inputs besides the text that change the output."""
        return {}

    def translate(self, requests: list[TranslationRequest]) -> list[BackendOutput]:
        raise NotImplementedError

    def close(self) -> None:
        """Release clients, models, GPU memory."""


class ChatBackend(TranslatorBackend):
    """A backend that answers chat messages; translation = prompt + chat + (later) parsing."""

    # True when generate_chat retries failed requests itself (within agent.max_retries), takes an
    # ``accept`` callback whose refusals use the same budget, and reports ``last_attempts``.
    handles_retries: bool = False

    def generate_chat(self, messages: list[Messages], *, response_format: dict | None = None,
                      max_new_tokens: int | None = None) -> list[str | None]:
        """One completion per conversation; ``None`` for a request that failed for good."""
        raise NotImplementedError

    def translate(self, requests: list[TranslationRequest]) -> list[BackendOutput]:
        convs = [build_messages(r.text, r.lang, self.prompt_version) for r in requests]
        outs = self.generate_chat(convs)
        return [BackendOutput(raw=o) if o is not None else BackendOutput(raw=None, error="backend_error")
                for o in outs]


def backend_class(name: str) -> type[TranslatorBackend]:
    if name not in BACKENDS:
        raise ValueError(f"unknown translator backend {name!r}; registered: {sorted(BACKENDS)}")
    target = BACKENDS[name]
    if isinstance(target, str):
        module, _, cls = target.partition(":")
        return getattr(importlib.import_module(module), cls)
    return target


def build_backend(agent: AgentParams, **kwargs: Any) -> TranslatorBackend:
    """Instantiate the agent's backend (kwargs: prompt_version, seed, device, foreign_pool, ...)."""
    return backend_class(agent.backend)(agent, **kwargs)
