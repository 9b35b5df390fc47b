import pytest

from lira.translate.prompts import build_messages, render_plain


def test_v1_asks_for_tags_and_names_the_language():
    msgs = build_messages("ฉันดีใจมาก", "th", "v1")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert "<translation></translation>" in msgs[0]["content"] and "Thai" in msgs[0]["content"]
    assert msgs[1]["content"].endswith("ฉันดีใจมาก")
    assert render_plain(msgs).startswith(msgs[0]["content"])


def test_raw_is_the_text_alone_for_mt_models():
    msgs = build_messages("xin chào", "vi", "raw")
    assert msgs == [{"role": "user", "content": "xin chào"}] and render_plain(msgs) == "xin chào"


def test_unknown_version_is_an_error():
    with pytest.raises(ValueError, match="prompt_version"):
        build_messages("x", "vi", "v9")
