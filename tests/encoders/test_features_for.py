"""``features_for`` loads an encoder only when some feature is missing from the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lira.encoders as encoders
from lira.config import load_params

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["áo thun cotton màu đỏ", "เสื้อยืดสีแดง", "a red t-shirt"]


@pytest.fixture()
def params(tiny_bert_dir, tmp_path):
    enc = {"spec": f"hf:{tiny_bert_dir}", "max_length": 32, "batch_size": 2}
    return load_params(ROOT / "params.yaml", {"shared": {
        "s_feat": 2, "paths": {"cache": str(tmp_path / "cache")}, "encoders": {"lrl": enc, "en": enc},
    }})


@pytest.fixture()
def loads(monkeypatch):
    """Spy on the loader, and start with no encoder held by this process."""
    calls = []
    real = encoders.load_encoder

    def spy(*a, **k):
        calls.append(a[1])
        return real(*a, **k)

    monkeypatch.setattr(encoders, "_LOADED", {})
    monkeypatch.setattr(encoders, "load_encoder", spy)
    return calls


def test_encoder_is_loaded_only_on_a_cache_miss(params, tmp_path, loads):
    first = encoders.features_for(params.shared, TEXTS, "lrl", "query", tmp_path)
    assert loads == ["lrl"]
    encoders._LOADED.clear()  # a later stage process: nothing in memory, everything on disk
    again = encoders.features_for(params.shared, list(reversed(TEXTS)) + TEXTS[:1], "lrl", "query", tmp_path)
    assert loads == ["lrl"]  # all cached: no load at all
    np.testing.assert_array_equal(again.slots, first.slots[[2, 1, 0, 0]])
    np.testing.assert_array_equal(again.mean, first.mean[[2, 1, 0, 0]])
    # Any miss (here: the same texts with another prefix) loads it, and only what is missing is encoded.
    encoders.features_for(params.shared, TEXTS, "lrl", "passage", tmp_path)
    assert loads == ["lrl", "lrl"]


def test_empty_request_loads_nothing(params, tmp_path, loads):
    assert len(encoders.features_for(params.shared, [], "en", "query", tmp_path)) == 0
    assert loads == []


def test_release_encoders_frees_the_weights(params, tmp_path, loads):
    import weakref

    encoders.features_for(params.shared, TEXTS, "lrl", "query", tmp_path)
    (enc,) = encoders._LOADED.values()
    gone = weakref.ref(enc.model)
    del enc
    encoders.release_encoders()
    assert encoders._LOADED == {} and gone() is None  # nothing else kept the model alive
    encoders.features_for(params.shared, ["one more text"], "lrl", "query", tmp_path)
    assert loads == ["lrl", "lrl"]  # a later miss loads it again


def test_both_paths_of_one_backbone_are_one_loaded_encoder(params, tmp_path, loads):
    assert params.shared.encoder("lrl").lora.enabled and not params.shared.encoder("en").lora.enabled  # their sections differ
    encoders.features_for(params.shared, TEXTS, "lrl", "query", tmp_path)
    (first,) = encoders._LOADED.values()
    encoders.features_for(params.shared, TEXTS, "en", "passage", tmp_path)  # a miss on the English path
    (second,) = encoders._LOADED.values()
    assert loads == ["lrl", "en"] and second is first and not hasattr(first, "lora_config")


def test_a_second_encoder_replaces_the_first(params, tmp_path, loads):
    import weakref

    other = params.shared.model_copy(update={"encoders": params.shared.encoders.model_copy(update={
        "en": params.shared.encoders.en.model_copy(update={"max_length": 16})})})  # another encoder for "en"
    encoders.features_for(other, TEXTS, "lrl", "query", tmp_path)
    (first,) = encoders._LOADED.values()
    gone = weakref.ref(first.model)
    del first
    encoders.features_for(other, TEXTS, "en", "passage", tmp_path)
    assert loads == ["lrl", "en"] and len(encoders._LOADED) == 1 and gone() is None  # one backbone held at a time
