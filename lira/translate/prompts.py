"""Translation prompts, versioned: the version is part of every cache key, so changing a prompt's
wording means a new version (and a fresh translation), never a silent reuse of old candidates.

- ``v1``: an instruction asking for the English translation inside ``<translation>...</translation>``
  tags and nothing else; the tags let :func:`lira.translate.parsing.parse_translation` separate the
  answer from chatty text around it.
- ``raw``: the source text alone, for dedicated MT models (Marian, NLLB, ...) that were never taught
  instructions; their output is untagged (parse flag ``untagged``).
"""

from __future__ import annotations

from lira.languages import LANGUAGES

Messages = list[dict[str, str]]

_V1_SYSTEM = (
    "You are a professional translator. Translate the user's {lang_name} text into natural, faithful "
    "English. Keep its meaning, its emotion and its tone (politeness, register, questions stay "
    "questions). Reply with the English translation only, inside <translation></translation> tags, "
    "with no explanation, no notes and no other text."
)
_V1_USER = "Translate this {lang_name} text into English:\n\n{text}"

PROMPT_VERSIONS = ("v1", "raw")


def language_name(code: str) -> str:
    lang = LANGUAGES.get(code)
    return lang.name if lang is not None else code


def build_messages(text: str, lang: str, version: str) -> Messages:
    """The chat messages that ask for one translation (``raw``: one user turn holding the text)."""
    if version == "raw":
        return [{"role": "user", "content": text}]
    if version == "v1":
        name = language_name(lang)
        return [
            {"role": "system", "content": _V1_SYSTEM.format(lang_name=name)},
            {"role": "user", "content": _V1_USER.format(lang_name=name, text=text)},
        ]
    raise ValueError(f"unknown prompt_version {version!r}; known: {list(PROMPT_VERSIONS)}")


def render_plain(messages: Messages) -> str:
    """Messages as one plain string, for models without a chat template (and seq2seq models).

    A single user turn (the ``raw`` version) is passed through untouched, so an MT model sees
    exactly the source text.
    """
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(m["content"] for m in messages) + "\n\n"
