import pytest

from lira.translate.parsing import parse_translation

CASES = [
    # (raw, expected candidate, expected flags)
    ("<translation>The cat sleeps.</translation>", "The cat sleeps.", []),
    ("  <translation>\n  The cat   sleeps.\n</translation>  ", "The cat sleeps.", []),
    ("<TRANSLATION>Loud tags.</Translation>", "Loud tags.", []),
    # preambles, several forms, untagged
    ("Sure, here is the translation: The cat sleeps.", "The cat sleeps.", ["preamble", "untagged"]),
    ("Here's the English translation:\n\nThe cat sleeps.", "The cat sleeps.", ["preamble", "untagged"]),
    ("Translation: The cat sleeps.", "The cat sleeps.", ["preamble", "untagged"]),
    ("English translation: The cat sleeps.", "The cat sleeps.", ["preamble", "untagged"]),
    ("Certainly! Here is the translation of the Thai sentence into English:\nThe cat sleeps.",
     "The cat sleeps.", ["preamble", "untagged"]),
    ("Sure!\n\"The cat sleeps.\"", "The cat sleeps.", ["preamble", "untagged"]),
    ("The English translation is: \"Go home.\"", "Go home.", ["preamble", "untagged"]),
    ("As an AI language model, I would translate it as: The cat sleeps.", "The cat sleeps.",
     ["preamble", "untagged"]),
    # closings
    ("The cat sleeps. I hope this helps!", "The cat sleeps.", ["closing", "untagged"]),
    ("The cat sleeps.\n\nLet me know if you need anything else.", "The cat sleeps.", ["closing", "untagged"]),
    ("The cat sleeps.\nNote: 'sleeps' could also be 'is sleeping'.", "The cat sleeps.", ["closing", "untagged"]),
    ("Here is the translation:\n<translation>The cat sleeps.</translation>\nI hope this helps!",
     "The cat sleeps.", ["preamble", "closing"]),
    # no tags, nothing to strip; a translation that merely looks like meta-text stays whole
    ("The cat sleeps.", "The cat sleeps.", ["untagged"]),
    ("Okay, let's go.", "Okay, let's go.", ["untagged"]),
    ("Please let me know if you are coming.", "Please let me know if you are coming.", ["untagged"]),
    # unclosed, nested, two tags, stray closing tag
    ("<translation>The cat sleeps.", "The cat sleeps.", ["unclosed"]),
    ("<translation><translation>The cat sleeps.</translation></translation>", "The cat sleeps.", []),
    ("<translation>First.</translation>\n<translation>Second.</translation>", "First.", ["multiple"]),
    ("The cat sleeps.</translation>", "The cat sleeps.", ["untagged"]),
    # code fences
    ("```\nThe cat sleeps.\n```", "The cat sleeps.", ["untagged"]),
    ("```xml\n<translation>The cat sleeps.</translation>\n```", "The cat sleeps.", []),
    ("Here is the translation:\n```text\nThe cat sleeps.\n```", "The cat sleeps.", ["preamble", "untagged"]),
    # quotes: wrapping quotes go, inner quotes stay
    ("<translation>“The cat sleeps.”</translation>", "The cat sleeps.", []),
    ('<translation>"Hi," she said. "Bye."</translation>', '"Hi," she said. "Bye."', []),
]


@pytest.mark.parametrize("raw, text, flags", CASES)
def test_parse_translation(raw, text, flags):
    assert parse_translation(raw) == (text, flags)


@pytest.mark.parametrize("raw", [None, "", "   \n\t", "<translation></translation>", "<translation>  </translation>",
                                 "```\n```"])
def test_empty_outputs_have_no_candidate(raw):
    cand, flags = parse_translation(raw)
    assert cand is None and "empty" in flags


def test_preamble_inside_the_tag_is_left_for_the_gate():
    # The parser trusts tag content; the critic's meta-text check must see (and quarantine) it.
    cand, flags = parse_translation("<translation>Sure, here is the translation: Hello.</translation>")
    assert cand == "Sure, here is the translation: Hello." and flags == []
