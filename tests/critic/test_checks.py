import numpy as np
import pandas as pd
import pytest

from lira.config import ChecksParams
from lira.critic.checks import gate_report, run_gate
from lira.critic.flags import hygiene, is_echo, language_id

EN = "The children are playing football in the park near the river."
VI = "Bọn trẻ đang chơi bóng đá trong công viên gần sông."


def _frame(rows):
    base = {"text_id": "t", "agent": "a", "candidate": EN, "flag_echo": False, "detected_lang": "en",
            "english_prob": 0.99, "lang_verdict": "en", "length_ratio": 1.0, "s": 5.0, "e": 5.0, "p": 5.0, "sim": 0.5}
    df = pd.DataFrame([{**base, **r} for r in rows])
    df.insert(0, "row", np.arange(len(df)) * 10)  # ids that are not positions
    df["candidate"] = df["candidate"].astype("string")
    df["detected_lang"] = df["detected_lang"].astype("string")
    df["lang_verdict"] = df["lang_verdict"].astype("string")
    return df


def test_gate_names_each_failing_row_with_its_reasons():
    df = _frame([
        {"text_id": "ok"},
        {"text_id": "nan-scores", "s": np.nan, "e": np.nan, "p": np.nan, "sim": np.nan},
        {"text_id": "bad-score", "s": 11.0, "sim": 1.5},
        {"text_id": "missing", "candidate": None, "detected_lang": None, "english_prob": np.nan, "lang_verdict": None,
         "length_ratio": np.nan},
        {"text_id": "blank", "candidate": "   "},
        {"text_id": "leak", "candidate": "Sure, here is the translation: " + EN},
        {"text_id": "echo", "candidate": VI, "flag_echo": True, "detected_lang": "vi", "english_prob": 0.0, "lang_verdict": "not_en"},
        {"text_id": "short", "length_ratio": 0.1},
        {"text_id": "lowprob", "english_prob": 0.2, "lang_verdict": "not_en"},
        {"text_id": "too-short-to-tell", "english_prob": 0.1, "detected_lang": "fr", "lang_verdict": "undetermined"},
        {"text_id": "dup", "agent": "b"},
        {"text_id": "dup", "agent": "b"},
    ])
    gate = run_gate(df, ChecksParams())
    by_text = {df.loc[df["row"] == i, "text_id"].iloc[0]: rs for i, rs in gate.reasons.items()}
    assert "ok" not in by_text and "nan-scores" not in by_text
    assert by_text == {
        "bad-score": ["score_range", "sim_range"],
        "missing": ["missing"],
        "blank": ["empty"],
        "leak": ["preamble"],
        "echo": ["echo", "wrong_language"],
        "short": ["length"],
        "lowprob": ["wrong_language"],
        "dup": ["duplicate"],
    }
    assert gate.failing_share == pytest.approx(9 / 12)
    report = gate_report(gate, 0.5)
    assert "9/12 rows fail" in report and "score_range: expect_column_values_to_be_between(s)" in report
    assert gate.validation["success"] is False


def test_gate_passes_clean_rows():
    gate = run_gate(_frame([{"text_id": f"t{i}"} for i in range(5)]), ChecksParams())
    assert gate.reasons == {} and gate.success and gate.failing_share == 0.0


def test_flags():
    checks = ChecksParams()
    cands = pd.Series([EN, VI, "Sure, here is the translation: " + EN, "Yes.", None, "Τηε ςηιλδρεν"], dtype="string")
    srcs = pd.Series([VI] * 6, dtype="string")
    refs = pd.Series([EN] * 6, dtype="string")
    f = hygiene(cands, srcs, refs, checks)
    assert f["flag_empty"].tolist() == [False, False, False, False, True, False]
    assert f["flag_preamble"].tolist() == [False, False, True, False, False, False]
    assert f["flag_echo"].tolist() == [False, True, False, False, False, False]
    # "Yes." is too short for language ID to be trusted: undetermined, not flagged.
    assert f["flag_wrong_language"].tolist() == [False, True, False, False, False, True]
    assert f["lang_verdict"].tolist()[:4] == ["en", "not_en", "en", "undetermined"]
    assert f["flag_length"].tolist() == [False, False, False, True, False, True]
    assert np.isnan(f["english_prob"].iloc[4]) and pd.isna(f["detected_lang"].iloc[4])


def test_echo_and_language_id():
    assert is_echo("Bọn trẻ đang chơi bóng đá!", "bọn trẻ đang chơi bóng đá")  # normalised identity
    assert is_echo(VI[:-1] + " nhé.", VI)  # near copy: chrF > 70
    assert not is_echo(EN, VI)
    assert language_id("red running shoes for men")[0] == "en"  # short English stays English
    lang, p_en = language_id("Anak-anak sedang bermain sepak bola di taman dekat sungai.")
    assert lang in {"id", "ms"} and p_en < 0.01  # the two are close kin
