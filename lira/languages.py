"""The languages lira knows: ISO code -> script, FLORES code, language-ID code.

Nothing hard-codes the seven target languages: params name them, and a code is accepted when it
appears here. Adding a language is one row in this table and a params change.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    script: str  # ISO 15924
    flores: str  # FLORES-200 code, e.g. "tha_Thai"
    langid: str  # the code py3langid predicts for it


_ROWS = [
    ("en", "English", "Latn", "eng_Latn", "en"),
    ("vi", "Vietnamese", "Latn", "vie_Latn", "vi"),
    ("th", "Thai", "Thai", "tha_Thai", "th"),
    ("id", "Indonesian", "Latn", "ind_Latn", "id"),
    ("ms", "Malay", "Latn", "zsm_Latn", "ms"),
    ("ur", "Urdu", "Arab", "urd_Arab", "ur"),
    ("bn", "Bengali", "Beng", "ben_Beng", "bn"),
    ("fil", "Filipino", "Latn", "tgl_Latn", "tl"),
    ("hi", "Hindi", "Deva", "hin_Deva", "hi"),
    ("ta", "Tamil", "Taml", "tam_Taml", "ta"),
    ("te", "Telugu", "Telu", "tel_Telu", "te"),
    ("ne", "Nepali", "Deva", "npi_Deva", "ne"),
    ("si", "Sinhala", "Sinh", "sin_Sinh", "si"),
    ("km", "Khmer", "Khmr", "khm_Khmr", "km"),
    ("lo", "Lao", "Laoo", "lao_Laoo", "lo"),
    ("my", "Burmese", "Mymr", "mya_Mymr", "my"),
    ("jv", "Javanese", "Latn", "jav_Latn", "jv"),
    ("su", "Sundanese", "Latn", "sun_Latn", "su"),
    ("sw", "Swahili", "Latn", "swh_Latn", "sw"),
    ("zh", "Chinese", "Hans", "zho_Hans", "zh"),
    ("ja", "Japanese", "Jpan", "jpn_Jpan", "ja"),
    ("ko", "Korean", "Hang", "kor_Hang", "ko"),
    ("ar", "Arabic", "Arab", "arb_Arab", "ar"),
    ("fr", "French", "Latn", "fra_Latn", "fr"),
    ("de", "German", "Latn", "deu_Latn", "de"),
    ("es", "Spanish", "Latn", "spa_Latn", "es"),
]

LANGUAGES: dict[str, Language] = {r[0]: Language(*r) for r in _ROWS}

# Unicode ranges used to check that a text is written in its language's script.
SCRIPT_RANGES: dict[str, list[tuple[int, int]]] = {
    "Thai": [(0x0E00, 0x0E7F)],
    "Beng": [(0x0980, 0x09FF)],
    "Arab": [(0x0600, 0x06FF), (0x0750, 0x077F), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)],
    "Deva": [(0x0900, 0x097F)],
    "Taml": [(0x0B80, 0x0BFF)],
    "Telu": [(0x0C00, 0x0C7F)],
    "Sinh": [(0x0D80, 0x0DFF)],
    "Khmr": [(0x1780, 0x17FF)],
    "Laoo": [(0x0E80, 0x0EFF)],
    "Mymr": [(0x1000, 0x109F)],
    "Hang": [(0xAC00, 0xD7AF), (0x1100, 0x11FF)],
    "Hans": [(0x4E00, 0x9FFF)],
    "Jpan": [(0x3040, 0x30FF), (0x4E00, 0x9FFF)],
    "Latn": [(0x0041, 0x005A), (0x0061, 0x007A), (0x00C0, 0x024F), (0x1E00, 0x1EFF)],
}


def script_share(text: str, script: str) -> float:
    """Share of the letters of ``text`` that fall in ``script``'s Unicode ranges (0 if no letters)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    ranges = SCRIPT_RANGES[script]
    hits = sum(any(lo <= ord(c) <= hi for lo, hi in ranges) for c in letters)
    return hits / len(letters)


def supported_codes() -> list[str]:
    return sorted(LANGUAGES)


# A text must have at least this share of its letters in its language's script. Product texts mix
# in Latin brand names and units ("USB-C", "mAh"; the sample's lowest is 47%), while a text in
# another script altogether (English or Vietnamese given as Thai) has about 0%.
MIN_SCRIPT_SHARE = 0.3


def script_mismatch(text: str, lang: str) -> str | None:
    """None when ``text`` may be in ``lang``'s script, else the reason it is not.

    Texts without letters (numbers, codes) pass: there is nothing to tell. Within one script the
    check cannot tell languages apart (English given as Vietnamese passes).
    """
    language = LANGUAGES.get(lang)
    if language is None or language.script not in SCRIPT_RANGES or not any(c.isalpha() for c in text):
        return None
    share = script_share(text, language.script)
    if share >= MIN_SCRIPT_SHARE:
        return None
    return (f"wrong script for {language.name} ({lang}): {share:.0%} of the letters are {language.script}, "
            f"at least {MIN_SCRIPT_SHARE:.0%} required")
