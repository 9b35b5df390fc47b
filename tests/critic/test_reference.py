import pytest

from lira.critic.reference import emotion, emotion_markers, fidelity, reference_scores, tone, tone_markers

PAIRS = [
    "I am very happy that you came to visit us this weekend!",
    "Could you please send me the price list before Friday?",
    "The train does not leave at noon.",
]


@pytest.mark.parametrize("text", PAIRS)
def test_identical_is_ten(text):
    assert reference_scores(text, text) == (10.0, 10.0, 10.0)


def test_unrelated_is_low():
    ref = "I absolutely love this wonderful phone, thank you so much!"
    cand = "Why did the bus not arrive yesterday?"
    s, e, p = reference_scores(cand, ref)
    assert s < 3 and e < 4 and p < 4


def test_scores_order_candidates_sensibly():
    ref = "I am very happy that you came to visit us this weekend!"
    close = "I'm so happy you came to visit us this weekend!"
    flat = "You came to visit us this weekend."
    assert fidelity(close, ref) > fidelity("The market closes at noon.", ref)
    assert emotion(close, ref) > emotion(flat, ref)  # joy and intensity kept vs. lost
    ref_q = "Could you please close the window?"
    assert tone("Would you please close the window?", ref_q) > tone("Close the window.", ref_q)


def test_markers():
    m = emotion_markers("I don't hate it, it's REALLY not bad!")
    assert m["negative"] == 2 and m["negation"] == 2 and m["intensity"] == 3  # "really", its caps, "!"
    t = tone_markers("Please send it to me, okay?")
    assert t["question"] == 1 and t["imperative"] == 1 and t["politeness"] == 1 and t["informality"] == 1


def test_scale_bounds():
    for cand, ref in [("", "x"), ("!!!", "no"), ("a b c", "a b c d e f")]:
        assert all(1.0 <= v <= 10.0 for v in reference_scores(cand, ref))
