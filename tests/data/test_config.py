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


# ------------------------------------------------------------------ strict values (issue 17, item 13)
@pytest.mark.parametrize(
    "data, needles",
    [
        ({"train_arca": {"epochs": True}}, ["train_arca.epochs", "valid integer"]),
        ({"train_lasr": {"batch_size": 3.0}}, ["train_lasr.batch_size", "valid integer"]),
        ({"shared": {"encoders": {"lrl": {"trust_remote_code": "yes"}}}}, ["shared.encoders.lrl.trust_remote_code", "valid boolean"]),
        ({"tracking": {"enabled": 1}}, ["tracking.enabled", "valid boolean"]),
        ({"train_lasr": {"d_model": 128, "n_heads": 3}}, ["train_lasr", "n_heads = 3 must divide d_model = 128"]),
        ({"evaluate": {"retrieval_k": [1, 0, 10]}}, ["evaluate.retrieval_k.1", "greater than or equal to 1"]),
        ({"critic_score": {"checks": {"meta_patterns": ["(unclosed"]}}}, ["critic_score.checks.meta_patterns", "not a valid regex"]),
    ],
)
def test_strict_values_fail_instead_of_being_coerced(data, needles):
    with pytest.raises(ConfigError) as e:
        parse_params(data, "p.yaml")
    for needle in needles:
        assert needle in str(e.value), str(e.value)


def test_yaml_exponent_floats_still_read_as_numbers(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("train_arca:\n  lr: 1e-3\n")  # YAML 1.1 reads this as the string "1e-3"
    assert load_params(f).train_arca.lr == 0.001
    f.write_text("train_arca:\n  lr: fast\n")
    with pytest.raises(ConfigError, match="train_arca.lr"):
        load_params(f)


def test_empty_and_non_utf8_params_files_are_refused(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("# nothing but a comment\n")
    with pytest.raises(ConfigError, match="empty"):
        load_params(f)
    f.write_bytes("shared:\n  seed: 1 # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_params(f)


def test_bad_override_values_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        dotted_overrides(["train_arca.lr=[unclosed"])
    with pytest.raises(ConfigError, match="cannot also hold keys"):
        dotted_overrides(["train_arca=1", "train_arca.lr=0.1"])
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"shared": {"seed": 1}}))
    with pytest.raises(ConfigError, match="train_arca.epochs"):
        load_params(f, dotted_overrides(["train_arca.epochs=yes"]))


def test_residual_adaptor_width_mismatch_names_the_param():
    import torch

    from lira.train.arca import ArcaData, build_modules

    n = 4
    data = ArcaData(lang=torch.zeros(n, dtype=torch.long), lr=torch.zeros(n, 2, 16), cand=torch.zeros(n, 3, 2, 16),
                    feats=torch.zeros(n, 3, 5), mask=torch.ones(n, 3, dtype=torch.bool), reward=torch.zeros(n, 3),
                    train_idx=torch.arange(n), dev_idx=torch.arange(0))
    params = parse_params({"train_arca": {"residual": True, "d": 8}})
    with pytest.raises(ConfigError, match=r"train_arca.d = 8: the residual adaptor .* encoder width \[16\] or null"):
        build_modules(data, params.train_arca, 0)
    ok = parse_params({"train_arca": {"residual": True, "d": None}})
    adaptors, _ = build_modules(data, ok.train_arca, 0)
    assert adaptors.d == 16


def test_a_mistyped_key_or_section_gets_a_did_you_mean(tmp_path):
    """Observed: `-S train_arca.lrr=1` listed 23 allowed keys and left the user to find `lr`."""
    from lira.config import load_params

    path = tmp_path / "params.yaml"
    path.write_text("shared: {}\n")
    with pytest.raises(ConfigError) as e:
        load_params(path, ["train_arca.lrr=0.01", "trian_lasr.epochs=3", "train_arca.zzzz=1"])
    msg = str(e.value)
    assert "train_arca.lrr: unknown key (value 0.01); did you mean 'lr'?" in msg
    assert "trian_lasr: unknown key" in msg and "did you mean 'train_lasr'?" in msg
    zzzz = next(line for line in msg.splitlines() if "zzzz" in line)
    assert "did you mean" not in zzzz and "allowed keys here" in zzzz  # nothing close: no guess


def test_a_mistyped_stage_or_command_gets_a_did_you_mean():
    from typer.testing import CliRunner

    from lira.cli import app

    out = CliRunner().invoke(app, ["stage", "evalute"])
    assert out.exit_code == 2 and "did you mean 'evaluate'?" in out.output
    out = CliRunner().invoke(app, ["embedd"])  # click's own suggestion for commands
    assert out.exit_code == 2 and "Did you mean 'embed'?" in out.output
    out = CliRunner().invoke(app, ["config", "shwo"])
    assert out.exit_code == 2 and "Did you mean 'show'?" in out.output
