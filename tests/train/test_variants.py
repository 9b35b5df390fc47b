"""Variants are configs built by validation: a change that names no field, or a bad value, fails."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lira.arca.config import ArcaConfig
from lira.lasr.config import LasrConfig
from lira.train import lasr_run
from lira.train.lasr_run import VARIANTS, variant_configs


def test_every_variant_flips_what_it_names_and_nothing_else():
    arca, lasr = ArcaConfig(), LasrConfig()
    for name, (arca_changes, lasr_changes) in VARIANTS.items():
        a, lz = variant_configs(arca, lasr, name)
        assert {k for k, v in a.model_dump().items() if v != arca.model_dump()[k]} == set(arca_changes), name
        assert {k for k, v in lz.model_dump().items() if v != lasr.model_dump()[k]} == set(lasr_changes), name
    a, lz = variant_configs(arca, lasr, "separate_adaptors")
    assert a.shared_adaptor is False and lz == lasr
    a, lz = variant_configs(arca, lasr, "drop_english")
    assert lz.use_english is False and a == arca


def test_a_mistyped_variant_key_fails_instead_of_being_ignored(monkeypatch):
    monkeypatch.setitem(lasr_run.VARIANTS, "typo", ({}, {"doc_queu": 0}))
    with pytest.raises(ValidationError, match="doc_queu"):
        variant_configs(ArcaConfig(), LasrConfig(), "typo")
    monkeypatch.setitem(lasr_run.VARIANTS, "bad", ({"shared_adaptor": "maybe"}, {}))
    with pytest.raises(ValidationError, match="shared_adaptor"):
        variant_configs(ArcaConfig(), LasrConfig(), "bad")


@pytest.mark.parametrize("cls", [ArcaConfig, LasrConfig])
def test_every_field_has_help_text(cls):
    missing = [name for name, f in cls.model_fields.items() if not f.description]
    assert not missing, f"{cls.__name__}: fields without a description: {missing}"


def test_lasr_variance_target_is_a_field_with_the_former_default():
    assert LasrConfig().var_target == 0.5
    with pytest.raises(ValidationError):
        LasrConfig(var_target=0)
