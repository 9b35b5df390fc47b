"""Every parameter explains itself (its class's help text), and `lira config explain` prints it."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from lira.cli import app
from lira.config import ConfigError, Params, _model_in
from lira.config_help import explain


def _all_keys(model, prefix=""):
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        yield key, info
        sub = _model_in(info.annotation)
        if sub is not None:
            yield from _all_keys(sub, key + ".")


def test_every_parameter_has_help_text():
    missing = [k for k, info in _all_keys(Params) if not (info.description or "").strip()]
    assert not missing, f"fields without description= (their help text): {missing}"


def test_params_yaml_carries_values_not_explanations():
    """dvc exp run rewrites params.yaml and drops comments: nothing may be explained only there."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "params.yaml").read_text()
    body = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert not [ln for ln in body if "#" in ln], "inline comments in params.yaml: move them to the field's description"


@pytest.mark.parametrize("key", ["train_arca.lr", "shared.preset", "translate.agents.0.noise", "tracking.tracking_uri"])
def test_explain_gives_help_type_default(key):
    e = explain(key)
    assert e.help and e.type and e.key == key


def test_explain_cli_prints_help_type_default_current(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"train_arca": {"lr": 0.005}}))
    out = CliRunner().invoke(app, ["config", "explain", "train_arca.lr", "--params", str(params)])
    assert out.exit_code == 0, out.output
    assert Params.model_fields["train_arca"].annotation.model_fields["lr"].description in out.output
    assert "type:    float" in out.output and "default: 0.002" in out.output and "current: 0.005" in out.output


def test_explain_unknown_key_names_the_level_and_a_close_match():
    with pytest.raises(ConfigError, match="did you mean 'train_arca.lr'"):
        explain("train_arca.lrr")
    with pytest.raises(ConfigError, match="is a value"):
        explain("train_arca.lr.x")
    out = CliRunner().invoke(app, ["config", "explain", "nope"])
    assert out.exit_code == 2 and "unknown key" in out.output
