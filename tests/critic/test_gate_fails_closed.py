"""#17 item 6: an expectation that errors must fail the gate; impossible thresholds never reach it."""

import numpy as np
import pandas as pd
import pytest

from lira.config import ChecksParams, ConfigError, parse_params
from lira.critic.checks import GateFailure, run_gate

EN = "The children are playing football in the park near the river."


def _frame(n):
    df = pd.DataFrame([{"text_id": f"t{i}", "agent": "a", "candidate": EN, "flag_echo": False, "detected_lang": "en",
                        "english_prob": 0.99, "lang_verdict": "en", "length_ratio": 1.0, "s": 5.0, "e": 5.0,
                        "p": 5.0, "sim": 0.5} for i in range(n)])
    df.insert(0, "row", np.arange(n))
    for c in ("candidate", "detected_lang", "lang_verdict"):
        df[c] = df[c].astype("string")
    return df


def test_an_expectation_that_raises_fails_the_gate_with_its_reason():
    # Bypass config validation on purpose: GX itself errors on min > max ("success: false" with an
    # exception_info keyed by metric id), which used to count as 0 failing rows and pass.
    checks = ChecksParams.model_construct(**{**ChecksParams().model_dump(), "min_length_ratio": 5.0,
                                             "max_length_ratio": 1.0})
    with pytest.raises(GateFailure, match=r"length.*min_value cannot be greater than max_value"):
        run_gate(_frame(4), checks)


def test_a_failed_expectation_that_names_no_row_fails_the_gate(monkeypatch):
    import lira.critic.checks as checks_mod

    real = checks_mod._expectations

    def with_a_table_level_failure(checks):
        import great_expectations.expectations as gxe

        # Fails on the table as a whole, so GX lists no failing row for it.
        return [*real(checks), ("row_count", gxe.ExpectTableRowCountToBeBetween(min_value=100, max_value=200))]

    monkeypatch.setattr(checks_mod, "_expectations", with_a_table_level_failure)
    with pytest.raises(GateFailure, match="row_count"):
        run_gate(_frame(3), ChecksParams())


@pytest.mark.parametrize("checks, needle", [
    ({"min_length_ratio": 5, "max_length_ratio": 1}, "min_length_ratio"),
    ({"min_length_ratio": 2, "max_length_ratio": 2}, "max_length_ratio"),
    ({"meta_patterns": ["(unclosed"]}, "meta_patterns"),
])
def test_inverted_or_impossible_thresholds_are_rejected_by_config(checks, needle):
    with pytest.raises(ConfigError) as e:
        parse_params({"critic_score": {"checks": checks}})
    msg = str(e.value)
    assert needle in msg and "critic_score.checks" in msg
    for v in checks.values():
        if not isinstance(v, list):
            assert str(v) in msg
