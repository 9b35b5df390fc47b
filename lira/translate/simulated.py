"""The offline translator: candidates derived from the reference translation by controlled damage.

No model runs: for a text with an English reference ``en_ref``, the candidate is ``en_ref`` itself
("clean") or, with probability ``noise``, ``en_ref`` after one distortion drawn uniformly from the
agent's ``distortions``:

- ``drop``: delete 20-40% of the words (at least one);
- ``swap``: swap adjacent word pairs (each non-overlapping pair with probability 1/2, at least one);
- ``copy``: the untranslated source text (an echo);
- ``truncate``: keep the first 30-60% of the words (at least one);
- ``preamble``: prepend meta-text ("Sure, here is the translation:" and other variants);
- ``closing``: append a sign-off ("I hope this helps!" and other variants);
- ``wrong_language``: the source text of a *different* language taken from the same table (the
  realistic failure: a model answering in some other language); when the table holds no other
  language, the reference rendered letter by letter in Greek script (clearly not English).

The output is wrapped in ``<translation>`` tags like a well-behaved model's, so distortions sit
*inside* the answer and reach the candidate: that is what the critic's data checks must catch.
Everything is deterministic per (seed, agent name, text_id): the random stream is seeded by
``sha256(f"{seed}|{agent}|{text_id}")``, independent of batch composition and order.
Rows without ``en_ref`` cannot be simulated; the stage gives them no candidate ("no_reference").
"""

from __future__ import annotations

import random
from typing import Any

from lira.translate.agents import BackendOutput, TranslationRequest, TranslatorBackend, sha256

PREAMBLES = (
    "Sure, here is the translation: ",
    "Sure! Here is the English translation:\n",
    "Certainly! Here's the translation: ",
    "Here is the English translation: ",
    "Of course. Here is your translation: ",
    "Translation: ",
    "Okay, here is the translation: ",
    "As an AI language model, I would translate it as: ",
)
CLOSINGS = (
    " I hope this helps!",
    " I hope this helps. Let me know if you need anything else.",
    "\n\nLet me know if you would like a more formal version.",
    " Let me know if you have any other questions!",
)
_GREEK = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "αβψδεφγηιξκλμνοπ϶ρστθωςχυζΑΒΨΔΕΦΓΗΙΞΚΛΜΝΟΠϘΡΣΤΘΩϚΧΥΖ",
)


def _words(text: str) -> list[str]:
    return text.split()


def drop(text: str, rng: random.Random) -> str:
    w = _words(text)
    if len(w) < 2:
        return text
    k = min(len(w) - 1, max(1, round(rng.uniform(0.2, 0.4) * len(w))))
    gone = set(rng.sample(range(len(w)), k))
    return " ".join(x for i, x in enumerate(w) if i not in gone)


def swap(text: str, rng: random.Random) -> str:
    w = _words(text)
    if len(w) < 2:
        return text
    pairs = list(range(0, len(w) - 1, 2))
    chosen = [i for i in pairs if rng.random() < 0.5] or [rng.choice(pairs)]
    for i in chosen:
        w[i], w[i + 1] = w[i + 1], w[i]
    return " ".join(w)


def truncate(text: str, rng: random.Random) -> str:
    w = _words(text)
    keep = max(1, int(rng.uniform(0.3, 0.6) * len(w)))
    return " ".join(w[:keep])


def preamble(text: str, rng: random.Random) -> str:
    return rng.choice(PREAMBLES) + text


def closing(text: str, rng: random.Random) -> str:
    return text + rng.choice(CLOSINGS)


def greek(text: str) -> str:
    return text.translate(_GREEK)


class SimulatedBackend(TranslatorBackend):
    name = "simulated"
    requires_reference = True

    def __init__(self, agent: Any, *, foreign_pool: dict[str, list[str]] | None = None, **kwargs: Any) -> None:
        super().__init__(agent, **kwargs)
        # lang -> source texts of that language (sorted by text_id), for ``wrong_language``.
        self.foreign_pool = {k: list(v) for k, v in (foreign_pool or {}).items() if v}

    @classmethod
    def model_name(cls, agent: Any) -> str:
        return "simulated"  # named honestly, whatever params say

    @classmethod
    def output_settings(cls, agent: Any, seed: int) -> dict[str, Any]:
        return {"noise": agent.noise, "distortions": list(agent.distortions), "seed": seed}

    @classmethod
    def request_settings(cls, req: TranslationRequest) -> dict[str, Any]:
        # The simulated output depends on the reference and on text_id (the random stream).
        return {"text_id": req.text_id, "en_ref": sha256(req.en_ref or "")}

    def rng(self, text_id: str) -> random.Random:
        digest = sha256(f"{self.seed}|{self.agent.name}|{text_id}")
        return random.Random(int(digest[:16], 16))

    def simulate(self, req: TranslationRequest) -> BackendOutput:
        if req.en_ref is None:
            return BackendOutput(raw=None, error="no_reference")
        rng = self.rng(req.text_id)
        name = "clean"
        out = req.en_ref
        if self.agent.distortions and rng.random() < self.agent.noise:
            name = rng.choice(list(self.agent.distortions))
            if name == "copy":
                out = req.text
            elif name == "wrong_language":
                out = self._wrong_language(req, rng)
            else:
                out = {"drop": drop, "swap": swap, "truncate": truncate, "preamble": preamble,
                       "closing": closing}[name](req.en_ref, rng)
        return BackendOutput(raw=f"<translation>{out}</translation>", distortion=name)

    def _wrong_language(self, req: TranslationRequest, rng: random.Random) -> str:
        others = sorted(k for k in self.foreign_pool if k != req.lang)
        if not others:
            return greek(req.en_ref or "")
        pool = self.foreign_pool[rng.choice(others)]
        return pool[rng.randrange(len(pool))]

    def translate(self, requests: list[TranslationRequest]) -> list[BackendOutput]:
        return [self.simulate(r) for r in requests]
