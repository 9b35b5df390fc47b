"""The reference critic: the offline stand-in for the LLM critic when an English reference exists.

All three scores are on the LLM critic's 1..10 scale, linear in an agreement in [0, 1]:
``score = 1 + 9 * agreement``.

- **s, semantic fidelity**: ``agreement = chrF(candidate, en_ref) / 100`` (sacrebleu
  ``sentence_chrf``: character 6-grams, recall-weighted F-beta with beta = 2). Identical -> 10,
  nothing in common -> 1.
- **e, emotional consistency**: agreement of emotion markers between candidate and reference:
  positive and negative emotive words (small English lexicons below), negations, and intensity
  (intensifiers, "!", all-caps words). Each marker is a count; two counts a, b agree by
  ``min(a, b) / max(a, b)`` (1 when both are 0: two neutral texts are emotionally consistent).
  Weights: positive 0.3, negative 0.3, negation 0.2, intensity 0.2.
- **p, pragmatic tone**: agreement, the same way, of register and speech-act markers: question
  (has "?"), imperative (starts with a bare verb, "please" or "let's"), politeness words,
  informality (contractions, slang, emoticons), exclamation, second-person address.
  Weights: question 0.25, imperative 0.15, politeness 0.2, informality 0.15, exclamation 0.1,
  address 0.15.

These are proxies: they see markers, not meaning - fidelity is what carries the meaning. They are
documented, deterministic and tested, and the critic column says "reference" wherever they were used.
"""

from __future__ import annotations

import re

from lira.critic.flags import chrf


def _lexicon(words: str) -> frozenset[str]:
    return frozenset(words.split())


POSITIVE = _lexicon(
    "love loved loves lovely like liked likes happy happily glad great good best better wonderful "
    "excellent amazing awesome fantastic beautiful nice delicious fun enjoy enjoyed enjoys excited "
    "exciting perfect pleased pleasant favourite favorite recommend recommended satisfied comfortable "
    "thank thanks thankful grateful hope proud brilliant superb cute sweet joy joyful smile laugh "
    "win won success successful friendly kind fresh impressive"
)
NEGATIVE = _lexicon(
    "hate hated hates sad sadly angry bad worse worst terrible awful horrible poor disappointed "
    "disappointing upset fear afraid scared worried worry annoyed annoying broken problem problems "
    "pain painful unfortunately ugly cry cried hurt lost fail failed failure wrong dead death die "
    "died sick tired boring bored dirty expensive slow useless waste regret sorry shame lonely "
    "danger dangerous damage damaged late"
)
NEGATIONS = _lexicon("not no never nothing nobody none neither nor cannot without nowhere")
INTENSIFIERS = _lexicon(
    "very so really extremely absolutely totally incredibly too highly truly completely super "
    "utterly deeply most terribly awfully"
)
IMPERATIVE_STARTS = _lexicon(
    "please let go come take give make put bring open close stop wait look send call tell buy try "
    "turn keep check use add remove help show read write sit stand listen don't be"
)
POLITE = ("please", "thank", "thanks", "sorry", "kindly", "excuse me", "would you", "could you",
          "may i", "sir", "madam", "dear", "appreciate", "pardon")
INFORMAL = ("gonna", "wanna", "gotta", "yeah", "yep", "nope", "hey", "lol", "okay", "ok", "guys",
            "kinda", "dude", ":)", ":(", ":d")
_CONTRACTION = re.compile(r"\b\w+(?:n't|'re|'m|'ll|'ve|'d)\b", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z']+")


def _words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text.replace("’", "'"))]


def _count_phrases(text: str, phrases: tuple[str, ...]) -> int:
    low = f" {text.lower()} "
    return sum(len(re.findall(rf"(?<![\w]){re.escape(p)}(?![\w])", low)) for p in phrases)


def emotion_markers(text: str) -> dict[str, float]:
    words = _words(text)
    caps = sum(1 for w in _WORD.findall(text) if len(w) >= 2 and w.isupper())
    return {
        "positive": sum(w in POSITIVE for w in words),
        "negative": sum(w in NEGATIVE for w in words),
        "negation": sum(w in NEGATIONS or w.endswith("n't") for w in words),
        "intensity": sum(w in INTENSIFIERS for w in words) + text.count("!") + caps,
    }


def tone_markers(text: str) -> dict[str, float]:
    words = _words(text)
    return {
        "question": float("?" in text or "？" in text),
        "imperative": float(bool(words) and words[0] in IMPERATIVE_STARTS),
        "politeness": _count_phrases(text, POLITE),
        "informality": len(_CONTRACTION.findall(text.replace("’", "'"))) + _count_phrases(text, INFORMAL),
        "exclamation": float("!" in text),
        "address": float(any(w in ("you", "your", "yours", "yourself") for w in words)),
    }


EMOTION_WEIGHTS = {"positive": 0.3, "negative": 0.3, "negation": 0.2, "intensity": 0.2}
TONE_WEIGHTS = {"question": 0.25, "imperative": 0.15, "politeness": 0.2, "informality": 0.15,
                "exclamation": 0.1, "address": 0.15}


def count_agreement(a: float, b: float) -> float:
    """min(a, b) / max(a, b); 1 when both are 0."""
    hi = max(a, b)
    return 1.0 if hi == 0 else min(a, b) / hi


def weighted_agreement(x: dict[str, float], y: dict[str, float], weights: dict[str, float]) -> float:
    total = sum(weights.values())
    return sum(w * count_agreement(x[k], y[k]) for k, w in weights.items()) / total


def to_scale(agreement: float) -> float:
    """[0, 1] -> [1, 10], linear."""
    return 1.0 + 9.0 * min(1.0, max(0.0, agreement))


def fidelity(candidate: str, reference: str) -> float:
    return to_scale(chrf(candidate, reference) / 100.0)


def emotion(candidate: str, reference: str) -> float:
    return to_scale(weighted_agreement(emotion_markers(candidate), emotion_markers(reference), EMOTION_WEIGHTS))


def tone(candidate: str, reference: str) -> float:
    return to_scale(weighted_agreement(tone_markers(candidate), tone_markers(reference), TONE_WEIGHTS))


def reference_scores(candidate: str, reference: str) -> tuple[float, float, float]:
    """(s, e, p) on 1..10 for one candidate against its English reference."""
    return fidelity(candidate, reference), emotion(candidate, reference), tone(candidate, reference)
