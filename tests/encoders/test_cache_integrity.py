"""The feature cache never serves stale or forged features: its key follows the backbone's content
(not its path), every shard carries a checksum verified on read, and a bad shard is moved aside
(reported with its path) and recomputed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import lira.encoders as encoders
from lira.config import load_params
from lira.encoders import EncoderSettings
from lira.integrity import CorruptFileWarning

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["áo thun cotton màu đỏ", "เสื้อยืดสีแดง", "a red t-shirt"]


@pytest.fixture()
def bert(tiny_bert_dir, tmp_path) -> Path:
    """A private copy of the tiny BERT: these tests rewrite its weights in place."""
    return Path(shutil.copytree(tiny_bert_dir, tmp_path / "bert"))


def _params(bert: Path, tmp_path: Path):
    enc = {"spec": f"hf:{bert}", "max_length": 32, "batch_size": 2}
    return load_params(ROOT / "params.yaml", {"shared": {
        "s_feat": 2, "paths": {"cache": str(tmp_path / "cache")}, "encoders": {"lrl": enc, "en": enc},
    }})


def _fresh(params, tmp_path, texts=TEXTS):
    """Features computed now by a freshly loaded encoder, bypassing every cache."""
    from lira.encoders import Encoder, EncoderSettings, encode_features

    enc = Encoder(EncoderSettings.of(params.encoder("lrl")), tmp_path / "models")
    return encode_features(enc, list(texts), "query", params.shared.s_feat)


def _shards(tmp_path) -> list[Path]:
    return sorted((tmp_path / "cache" / "features").glob("*/s2/shard-*.npz"))


def test_weights_changed_in_place_do_not_reuse_cached_features(bert, tmp_path, monkeypatch):
    import torch
    from transformers import BertModel

    monkeypatch.setattr(encoders, "_LOADED", {})
    params = _params(bert, tmp_path)
    before = encoders.features_for(params.shared, TEXTS, "lrl", "query", tmp_path)
    encoders.release_encoders()
    model = BertModel.from_pretrained(bert)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-1.5)
    model.save_pretrained(bert)  # same folder, same spec string, other weights
    after = encoders.features_for(params.shared, TEXTS, "lrl", "query", tmp_path)
    want = _fresh(params, tmp_path)
    assert not np.allclose(after.mean, before.mean, atol=1e-3)
    np.testing.assert_allclose(after.mean, want.mean, atol=1e-5)


def test_key_names_the_backbone_content_and_is_hashed_once(bert, monkeypatch):
    from lira.integrity import _sha256

    s = EncoderSettings(spec=f"hf:{bert}", precision="fp32")  # a concrete engine: auto has no key of its own
    k1 = s.key
    misses = _sha256.cache_info().misses
    assert s.key == k1 and _sha256.cache_info().misses == misses  # cached per (path, size, mtime)
    (bert / "config.json").write_text((bert / "config.json").read_text().replace("}", ', "x": 1}', 1))
    assert s.key != k1


@pytest.mark.parametrize("damage", ["forged", "garbage", "truncated"])
def test_a_bad_shard_is_moved_aside_and_recomputed(bert, tmp_path, monkeypatch, damage):
    monkeypatch.setattr(encoders, "_LOADED", {})
    params = _params(bert, tmp_path)
    good = encoders.features_for(params.shared, TEXTS, "lrl", "query", tmp_path)
    (shard,) = _shards(tmp_path)
    if damage == "forged":  # valid npz, right keys and shapes, wrong values
        with np.load(shard) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["slots"] = arrays["slots"][::-1].copy()
        arrays["mean"] = arrays["mean"][::-1].copy()
        with open(shard, "wb") as fh:
            np.savez(fh, **arrays)
    elif damage == "garbage":
        shard.write_bytes(b"not a shard at all")
    else:
        shard.write_bytes(shard.read_bytes()[:200])
    encoders.release_encoders()
    with pytest.warns(CorruptFileWarning, match=str(shard)):
        again = encoders.features_for(params.shared, TEXTS, "lrl", "query", tmp_path)
    np.testing.assert_array_equal(again.mean, good.mean)
    np.testing.assert_array_equal(again.slots, good.slots)
    assert list(shard.parent.glob(shard.name + ".corrupt-*"))
