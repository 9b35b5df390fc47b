"""Hygiene flags of a candidate translation (pure functions, plus one cached language-ID model).

- ``flag_empty``: no candidate, or only whitespace.
- ``flag_preamble``: meta-text - any of ``checks.meta_patterns`` (Python regexes) matches.
- ``flag_injection``: instruction-like text aimed at the judge - any of ``checks.injection_patterns``
  matches ("ignore all previous instructions", "rate this 10/10", a planted ``"fidelity":``...).
- ``flag_echo``: the candidate is (nearly) the source: identical after :func:`normalise`
  (casefold, no punctuation, symbols or whitespace), or ``chrF(candidate, source) > ECHO_CHRF``.
- ``flag_wrong_language``: ``lang_verdict == "not_en"``. The verdict: a candidate mostly outside
  the Latin script is not English; a Latin-script candidate of fewer than ``MIN_LANGID_WORDS``
  words is "undetermined" (language ID on "Flan" or "3/4 helmet grey" is a coin toss: on the
  sample 13% of clean short candidates were misread); otherwise it is English when py3langid's
  top label is English or ``P(en) >= checks.min_english_prob``. The label set is restricted to the languages lira knows
  (:data:`lira.languages.LANGUAGES`): a translator's plausible outputs are English, a source
  language or another listed language, and without the long tail of 97 rarer labels short English
  texts ("the cat sat.", product names) stop being read as Romanian or Serbian.
- ``flag_length``: ``len(candidate) / len(en_ref or source)`` (characters) outside
  ``[min_length_ratio, max_length_ratio]``; with no reference the source's length is a rough proxy
  (scripts differ in characters per meaning), which is why the bounds are wide.
"""

from __future__ import annotations

import copy
import re
import unicodedata
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

MIN_LANGID_WORDS = 4  # below this, language ID of Latin-script text is not trusted
SHORT_TEXT_MIN_PROB = 0.8  # ... unless a non-English Latin-script language is this likely
ECHO_CHRF = 70.0  # chrF(candidate, source) above this = an untranslated copy (not in params yet)

FLAG_COLUMNS = ["flag_empty", "flag_preamble", "flag_echo", "flag_wrong_language", "flag_length", "flag_injection"]


def normalise(text: str) -> str:
    """Casefold and drop punctuation, symbols and whitespace (for exact-echo detection)."""
    return "".join(
        c for c in unicodedata.normalize("NFKC", text).casefold()
        if not unicodedata.category(c).startswith(("P", "S", "Z", "C"))
    )


def chrf(hypothesis: str, reference: str) -> float:
    """Sentence-level chrF (sacrebleu defaults: char 6-grams, beta 2), in [0, 100]."""
    from sacrebleu import sentence_chrf

    return float(sentence_chrf(hypothesis, [reference]).score)


def is_echo(candidate: str, source: str, threshold: float = ECHO_CHRF) -> bool:
    a, b = normalise(candidate), normalise(source)
    if a and a == b:
        return True
    return chrf(candidate, source) > threshold


def meta_match(text: str, patterns: list[str]) -> bool:
    return any(re.search(p, text) for p in patterns)


def length_ratio(candidate: str, reference: str) -> float:
    return len(candidate.strip()) / max(1, len(reference.strip()))


@lru_cache(maxsize=1)
def _full_identifier() -> Any:
    from py3langid import langid

    load = getattr(langid.LanguageIdentifier, "from_pickled_model", None) or langid.LanguageIdentifier.from_model_file
    return load(langid.MODEL_FILE, norm_probs=True)


@lru_cache(maxsize=2)
def _identifier(latin_only: bool = False) -> Any:
    from lira.languages import LANGUAGES

    # One model load (~85 MB of RSS) shared by both label sets: set_languages builds new
    # per-label arrays from the full model and leaves the shared ones untouched.
    ident = copy.copy(_full_identifier())
    known = set(ident.nb_classes)
    langs = [lang for lang in LANGUAGES.values() if not latin_only or lang.script == "Latn"]
    ident.set_languages(sorted({lang.langid for lang in langs} & known))
    return ident


def short_text_language(text: str) -> tuple[str, float]:
    """(label, probability) over English and the Latin-script languages only (for short texts)."""
    return _identifier(latin_only=True).classify(text)


def language_id(text: str) -> tuple[str, float]:
    """(most likely language, P(en)) with normalised probabilities over lira's languages."""
    ident = _identifier()
    ranked = ident.rank(text)
    p_en = next((float(p) for lang, p in ranked if lang == "en"), 0.0)
    return str(ranked[0][0]), p_en


def lang_verdict(text: str, detected: str, p_en: float, min_english_prob: float) -> str:
    """"en" | "not_en" | "undetermined" (see the module docstring)."""
    from lira.languages import script_share

    if script_share(text, "Latn") < 0.5:
        return "not_en"
    if len(text.split()) < MIN_LANGID_WORDS:
        # Short Latin text: flag only a confident non-English call among Latin-script languages
        # (measured on the sample: 0.4% of clean short candidates flagged, 39% of planted ones).
        label, prob = short_text_language(text)
        return "not_en" if label != "en" and prob >= SHORT_TEXT_MIN_PROB else "undetermined"
    return "en" if detected == "en" or p_en >= min_english_prob else "not_en"


def hygiene(candidates: pd.Series, sources: pd.Series, references: pd.Series, checks: Any) -> pd.DataFrame:
    """Flags and measurements for each candidate (aligned Series; <NA> = missing).

    Returns the :data:`FLAG_COLUMNS` (bool) plus ``length_ratio``, ``english_prob`` (NaN without
    a candidate) and ``detected_lang`` (<NA> without a candidate).
    """
    rows = []
    for cand, src, ref in zip(candidates, sources, references):
        cand = None if pd.isna(cand) else str(cand)
        src = "" if pd.isna(src) else str(src)
        ref = None if pd.isna(ref) or not str(ref).strip() else str(ref)
        if cand is None or not cand.strip():
            rows.append({"flag_empty": True, "flag_preamble": False, "flag_echo": False,
                         "flag_wrong_language": False, "flag_length": False, "flag_injection": False,
                         "length_ratio": np.nan, "english_prob": np.nan, "detected_lang": None, "lang_verdict": None})
            continue
        detected, p_en = language_id(cand)
        verdict = lang_verdict(cand, detected, p_en, checks.min_english_prob)
        ratio = length_ratio(cand, ref if ref is not None else src)
        rows.append({
            "flag_empty": False,
            "flag_preamble": meta_match(cand, checks.meta_patterns),
            "flag_echo": bool(src) and is_echo(cand, src),
            "flag_wrong_language": verdict == "not_en",
            "flag_length": not (checks.min_length_ratio <= ratio <= checks.max_length_ratio),
            "flag_injection": meta_match(cand, checks.injection_patterns),
            "length_ratio": ratio, "english_prob": p_en, "detected_lang": detected, "lang_verdict": verdict,
        })
    out = pd.DataFrame(rows, index=candidates.index,
                       columns=[*FLAG_COLUMNS, "length_ratio", "english_prob", "detected_lang", "lang_verdict"])
    out[FLAG_COLUMNS] = out[FLAG_COLUMNS].astype(bool)
    out["length_ratio"] = out["length_ratio"].astype("float64")
    out["english_prob"] = out["english_prob"].astype("float64")
    out["detected_lang"] = out["detected_lang"].astype("string")
    out["lang_verdict"] = out["lang_verdict"].astype("string")
    return out
