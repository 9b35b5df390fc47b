"""Translator agents (pass@k), their backends, output hygiene and the translation cache."""

from lira.translate.agents import (
    BACKENDS,
    BackendOutput,
    ChatBackend,
    TranslationRequest,
    TranslatorBackend,
    backend_class,
    build_backend,
)
from lira.translate.cache import TranslationCache, cache_key
from lira.translate.parsing import parse_translation
from lira.translate.prompts import build_messages

__all__ = [
    "BACKENDS",
    "BackendOutput",
    "ChatBackend",
    "TranslationCache",
    "TranslationRequest",
    "TranslatorBackend",
    "backend_class",
    "build_backend",
    "build_messages",
    "cache_key",
    "parse_translation",
]
