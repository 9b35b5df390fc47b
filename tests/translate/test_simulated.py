import random
import re

import pytest

from lira.config import AgentParams, ChecksParams
from lira.translate.agents import TranslationRequest, build_backend
from lira.translate.parsing import parse_translation
from lira.translate.simulated import CLOSINGS, PREAMBLES, SimulatedBackend

ALL = ["drop", "swap", "copy", "truncate", "preamble", "wrong_language", "closing"]
REF = "the quick brown fox jumps over the lazy dog near the old river bank today"


def _requests(n: int) -> list[TranslationRequest]:
    return [TranslationRequest(f"t{i}", "vi", f"nguồn số {i} ở đây", f"{REF} {i}") for i in range(n)]


def _backend(noise=0.3, distortions=ALL, seed=13, name="sim", pool=None) -> SimulatedBackend:
    agent = AgentParams(name=name, backend="simulated", noise=noise, distortions=distortions)
    return build_backend(agent, seed=seed, foreign_pool=pool)


def test_deterministic_per_seed_agent_text_and_independent_of_order():
    reqs = _requests(200)
    a = _backend().translate(reqs)
    shuffled = reqs[:]
    random.Random(0).shuffle(shuffled)
    b = dict(zip([r.text_id for r in shuffled], _backend().translate(shuffled)))
    assert all(a[i] == b[r.text_id] for i, r in enumerate(reqs))
    # another seed or another agent name gives another stream
    assert [o.raw for o in _backend(seed=14).translate(reqs)] != [o.raw for o in a]
    assert [o.raw for o in _backend(name="other").translate(reqs)] != [o.raw for o in a]


@pytest.mark.parametrize("noise", [0.0, 0.15, 0.6, 1.0])
def test_noise_rate(noise):
    outs = _backend(noise=noise).translate(_requests(4000))
    share = sum(o.distortion != "clean" for o in outs) / len(outs)
    assert abs(share - noise) < 0.03
    used = {o.distortion for o in outs} - {"clean"}
    if noise > 0.1:
        assert used == set(ALL)  # every listed distortion gets drawn


def test_distortions_do_what_they_say():
    reqs = _requests(300)
    pool = {"vi": [r.text for r in reqs], "th": ["ภาษาไทย หนึ่ง", "ภาษาไทย สอง"]}
    outs = _backend(noise=1.0, pool=pool).translate(reqs)
    seen = set()
    for r, o in zip(reqs, outs):
        cand, flags = parse_translation(o.raw)
        assert flags == []  # always well-tagged: the damage is inside the answer
        seen.add(o.distortion)
        n_ref = len(r.en_ref.split())
        if o.distortion == "copy":
            assert cand == r.text
        elif o.distortion == "wrong_language":
            assert cand in pool["th"]  # another language's source text, never this language's
        elif o.distortion == "drop":
            assert 0.55 * n_ref <= len(cand.split()) <= 0.85 * n_ref
        elif o.distortion == "truncate":
            assert r.en_ref.startswith(cand) and len(cand.split()) <= 0.6 * n_ref
        elif o.distortion == "swap":
            assert cand != r.en_ref and sorted(cand.split()) == sorted(r.en_ref.split())
        elif o.distortion == "preamble":
            assert cand.endswith(r.en_ref) and cand != r.en_ref
        elif o.distortion == "closing":
            assert cand.startswith(r.en_ref) and cand != r.en_ref
    assert seen == set(ALL)


def test_wrong_language_without_other_languages_is_not_latin():
    outs = _backend(noise=1.0, distortions=["wrong_language"]).translate(_requests(5))
    for o in outs:
        cand, _ = parse_translation(o.raw)
        assert not re.search(r"[a-z]", cand)


def test_planted_meta_text_matches_the_default_gate_patterns():
    patterns = ChecksParams().meta_patterns
    for text in (*PREAMBLES, *CLOSINGS):
        assert any(re.search(p, text.strip()) for p in patterns), text


def test_no_reference_is_never_invented():
    (out,) = _backend(noise=0.0).translate([TranslationRequest("x", "vi", "xin chào", None)])
    assert out.raw is None and out.error == "no_reference"
