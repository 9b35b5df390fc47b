"""Output hygiene: turn a translator's raw output into the English candidate, and say what was wrong.

``parse_translation(raw) -> (text | None, flags)``. The rules, in order:

1. Empty or whitespace-only output -> ``(None, ["empty"])``.
2. Tagged output (``<translation>...</translation>``, any case, attributes allowed): the content of
   the FIRST tag is the answer. Text before the tag is flagged ``preamble``, text after it
   ``closing``; the text outside is dropped. A missing closing tag (``unclosed``) takes everything
   to the end; a nested tag is flattened; further tags are ignored (``multiple``).
   Content inside the tag is trusted as the model's answer: a preamble *inside* the tag is a
   content leak that the critic's data checks must see (and quarantine), not something to repair
   silently here.
3. Untagged output (``untagged``): the parser strips, from the start, meta-text such as
   "Sure, here is the translation:", "Here's the English translation:", "Translation:",
   a lone "Sure!" line, or a first line ending in ":" that talks about the translation
   (``preamble``); and from the end, sign-offs such as "I hope this helps!", "Let me know if ...",
   "Feel free to ...", or a trailing "Note: ..." paragraph (``closing``). Affirmations such as
   "Okay," are only stripped when they introduce the translation, since "Okay, let's go." is a
   valid translation.
4. Code fences are unwrapped; a candidate wholly wrapped in one pair of quotes loses them;
   whitespace runs become one space. If nothing is left: ``None`` with ``empty``.

Flags, comma-joined in the candidates table: ``preamble, closing, untagged, unclosed, multiple,
empty``.
"""

from __future__ import annotations

import re

FLAGS = ("preamble", "closing", "untagged", "unclosed", "multiple", "empty")

_OPEN = re.compile(r"<\s*translation\b[^>]*>", re.IGNORECASE)
_CLOSE = re.compile(r"<\s*/\s*translation\s*>", re.IGNORECASE)
_ANY_TAG = re.compile(r"<\s*/?\s*translation\b[^>]*>", re.IGNORECASE)
_FENCE_BLOCK = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_FENCE_MARK = re.compile(r"```[\w+-]*")

_AFFIRM = r"(?:sure|certainly|of course|okay|ok|absolutely|alright|yes|great)"
# "Here is the translation", "Here's your English translation of the sentence into English", ...
_HERE_IS = (
    r"here(?:'s|’s| is| are)\s+(?:the|your|a|my|an)\s+(?:[\w-]+\s+){0,3}?translations?"
    r"(?:\s+(?:of|for)\s+[^:\n]{0,80}?)?(?:\s+(?:in|into|to)\s+english)?"
)
_PREAMBLES = [
    # [Sure,] here is the translation [of ...] [into English]: / .
    re.compile(rf"^\s*(?:{_AFFIRM}[,!.]?\s+)?{_HERE_IS}\s*(?:[:\-–—]|\.(?=\s))\s*", re.IGNORECASE),
    # [The] [English] translation [in English] [is|would be]:
    re.compile(
        r"^\s*(?:the\s+)?(?:english\s+)?translation(?:\s+(?:in|into)\s+english)?"
        r"(?:\s+(?:is|would be|reads))?\s*:\s*",
        re.IGNORECASE,
    ),
    # "In English:" / "English:"
    re.compile(r"^\s*(?:in\s+)?english\s*:\s*", re.IGNORECASE),
    # "As an AI (language model), ...:" up to its colon
    re.compile(r"^\s*as an ai\b[^:\n]{0,160}:\s*", re.IGNORECASE),
    # A first line that announces the translation and ends with a colon.
    re.compile(r"^\s*[^\n]{0,160}\btranslat\w*[^\n]{0,80}:[ \t]*\n\s*", re.IGNORECASE),
    # A lone affirmation on its own line ("Sure!\n...") or before a quoted/fenced answer.
    re.compile(rf"^\s*{_AFFIRM}[!.,]*[ \t]*(?:\n\s*|(?=[\"“'`]))", re.IGNORECASE),
]
_CLOSINGS = [
    # Sign-offs from a sentence boundary (or a new line) to the end.
    re.compile(
        r"(?:(?<=[.!?。])\s+|\s*\n\s*)(?:i\s+)?hope\s+(?:this|that|it)\s+helps\b.*\Z",
        re.IGNORECASE | re.DOTALL,
    ),
    re.compile(
        r"(?:(?<=[.!?。])\s+|\s*\n\s*)(?:please\s+)?(?:let me know if|feel free to)\b.*\Z",
        re.IGNORECASE | re.DOTALL,
    ),
    # A trailing note or explanation paragraph.
    re.compile(r"\s*\n\s*\(?(?:note|notes|explanation|n\.b\.)\s*:.*\Z", re.IGNORECASE | re.DOTALL),
    re.compile(
        r"\s*\n\s*(?:this|the)\s+translation\s+(?:captures|conveys|keeps|maintains|preserves)\b.*\Z",
        re.IGNORECASE | re.DOTALL,
    ),
]
_QUOTE_PAIRS = {'"': '"', "“": "”", "'": "'", "‘": "’", "«": "»", "「": "」", "„": "“"}


def parse_translation(raw: str | None) -> tuple[str | None, list[str]]:
    """``raw`` model output -> (cleaned English candidate or ``None``, flags in :data:`FLAGS` order)."""
    flags: set[str] = set()
    if raw is None or not raw.strip():
        return None, ["empty"]
    text = raw.strip()

    m_open = _OPEN.search(text)
    if m_open is not None:
        before, rest = text[: m_open.start()], text[m_open.end() :]
        m_close = _CLOSE.search(rest)
        if m_close is None:
            flags.add("unclosed")
            content, after = rest, ""
        else:
            content, after = rest[: m_close.start()], rest[m_close.end() :]
        if _OPEN.search(after):
            flags.add("multiple")
            # Drop further tagged blocks: they are alternatives, not a closing remark.
            after = re.sub(r"<\s*translation\b[^>]*>.*?(?:<\s*/\s*translation\s*>|\Z)", "", after,
                           flags=re.IGNORECASE | re.DOTALL)
        if _outside_text(before):
            flags.add("preamble")
        if _outside_text(after):
            flags.add("closing")
        content = _ANY_TAG.sub(" ", content)  # nested tags
        content = _unfence(content)[1]
    else:
        flags.add("untagged")
        m_close = _CLOSE.search(text)
        if m_close is not None:  # a closing tag without its opening: the answer is before it
            if _outside_text(text[m_close.end() :]):
                flags.add("closing")
            text = text[: m_close.start()]
        before, content, after = _unfence(text)
        if _outside_text(before):
            # Fenced answer with a preamble before it: keep the fence content.
            flags.add("preamble")
        if _outside_text(after):
            flags.add("closing")
        content, stripped_pre = _strip_preambles(content)
        content, stripped_close = _strip_closings(content)
        if stripped_pre:
            flags.add("preamble")
        if stripped_close:
            flags.add("closing")

    content = _strip_quotes(" ".join(content.split()))
    if not content:
        flags.add("empty")
        return None, [f for f in FLAGS if f in flags]
    return content, [f for f in FLAGS if f in flags]


def join_flags(flags: list[str]) -> str:
    return ",".join(flags)


def _outside_text(s: str) -> bool:
    """Is there real text outside the tag (fence markers, stray tags and whitespace don't count)?"""
    return bool(_ANY_TAG.sub("", _FENCE_MARK.sub("", s)).strip())


def _unfence(s: str) -> tuple[str, str, str]:
    """Split around the first fenced block: (before, inside, after); no fence -> ("", s, "")."""
    m = _FENCE_BLOCK.search(s)
    if m is None:
        return "", s, ""
    return s[: m.start()], m.group(1), s[m.end() :]


def _strip_preambles(s: str) -> tuple[str, bool]:
    stripped = False
    changed = True
    while changed:  # "Sure!\nHere is the translation:\n..." needs two passes
        changed = False
        for pat in _PREAMBLES:
            new = pat.sub("", s, count=1)
            if new != s and new.strip():
                s, changed, stripped = new, True, True
    return s, stripped


def _strip_closings(s: str) -> tuple[str, bool]:
    stripped = False
    for pat in _CLOSINGS:
        new = pat.sub("", s, count=1)
        # Never strip everything: "Please let me know if you are coming." is a translation.
        if new != s and new.strip():
            s, stripped = new, True
    return s, stripped


def _strip_quotes(s: str) -> str:
    """Remove one pair of quotes wrapping the whole candidate (not quotes inside it)."""
    while len(s) >= 2 and s[0] in _QUOTE_PAIRS and s[-1] == _QUOTE_PAIRS[s[0]]:
        opening, closing = s[0], _QUOTE_PAIRS[s[0]]
        inner = s[1:-1]
        if opening == closing:
            if opening in inner:
                break
        elif opening in inner or closing in inner:
            break
        s = inner.strip()
    return s
