from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lira.config import ConfigError, Params, dotted_overrides, load_params, parse_params

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_params_are_valid_and_match_the_defaults():
    p = load_params(ROOT / "params.yaml")
    assert p.shared.languages == ["vi", "th", "id", "ms", "ur", "bn", "fil"]
    # params.yaml spells out the defaults: a drift between the two is a bug in one of them.
    assert p == Params()


@pytest.mark.parametrize(
    "data, needles",
    [
        ({"shared": {"languages": ["vi", "xx"]}}, ["shared.languages", "'xx'", "supported"]),
        ({"train_arca": {"lr": -1}}, ["train_arca.lr = -1", "greater than 0"]),
        ({"train_arca": {"epochs": "many"}}, ["train_arca.epochs = 'many'", "integer"]),
        ({"train_lasr": {"bogus": 1}}, ["train_lasr.bogus", "unknown key", "allowed keys here", "corr_queue"]),
        ({"nonsense": {}}, ["nonsense", "unknown key", "train_arca"]),
        ({"build_dataset": {"split": {"train": 0.5, "dev": 0.2, "test": 0.2}}}, ["build_dataset.split", "must be 1.0"]),
        ({"build_dataset": {"sources": [{"kind": "beir", "path": "x"}]}}, ["needs `language`"]),
        ({"translate": {"agents": [{"name": "a", "backend": "simulated"}, {"name": "a", "backend": "simulated"}]}}, ["unique", "'a'"]),
        ({"shared": {"anchor_language": "vi"}}, ["also in languages"]),
        ({"shared": {"encoders": {"lrl": {"spec": "s3://bucket"}}}}, ["shared.encoders.lrl.spec", "pattern"]),
    ],
)
def test_bad_params_fail_naming_key_value_and_what_is_allowed(data, needles):
    with pytest.raises(ConfigError) as e:
        parse_params(data, "params.yaml")
    msg = str(e.value)
    assert msg.startswith("params.yaml: invalid params")
    for needle in needles:
        assert needle in msg, msg


def test_load_params_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "p.yaml"
    bad.write_text("shared: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_params(bad)


def test_presets_and_overrides(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"shared": {"preset": "large"}}))
    p = load_params(f)
    assert p.encoder("lrl").spec == "hf:intfloat/multilingual-e5-large"
    assert p.resolved()["shared"]["encoders"]["lrl"]["spec"] == "hf:intfloat/multilingual-e5-large"
    p2 = load_params(f, dotted_overrides(["train_arca.lr=0.01", "shared.languages=[th, vi]"]))
    assert p2.train_arca.lr == 0.01 and p2.shared.languages == ["th", "vi"]
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        dotted_overrides(["novalue"])
