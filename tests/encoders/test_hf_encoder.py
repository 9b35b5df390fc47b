from __future__ import annotations

import numpy as np
import pytest
import torch

from lira.encoders import Encoder, EncoderSettings, FeatureCache, cached_features, resolve_spec
from lira.encoders import features as features_mod

TEXTS = ["áo thun cotton màu đỏ", "เสื้อยืดสีแดง", "a red t-shirt", "kemeja merah lengan panjang ukuran besar sekali"]


def test_resolve_spec_rejects_unknown_scheme():
    with pytest.raises(ValueError, match="expected one of"):
        resolve_spec("s3:bucket/model", ".")
    assert resolve_spec("hf:some/model", ".") == "some/model"


def test_missing_local_model_names_the_spec(tmp_path):
    with pytest.raises(ValueError, match="cannot load"):
        Encoder(EncoderSettings(spec=f"hf:{tmp_path / 'nope'}"))


def test_token_states_and_mask(encoder):
    hidden, mask = encoder.token_states(TEXTS, "query")
    assert hidden.shape[:2] == mask.shape and hidden.shape[-1] == 32
    assert mask.sum(1).min() >= 3  # [CLS] + prefix tokens + [SEP]
    # The prefix is applied: "query:" adds tokens compared with no prefix.
    _, mask_none = encoder.token_states(TEXTS, None)
    assert (mask.sum(1) > mask_none.sum(1)).all()


def test_embed_is_masked_mean_normalised_and_batch_invariant(encoder):
    e = encoder.embed(TEXTS, "query")
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    # Batching and length sorting must not change the result: embed one at a time.
    single = np.concatenate([encoder.embed([t], "query") for t in TEXTS])
    np.testing.assert_allclose(e, single, atol=1e-5)
    hidden, mask = encoder.token_states(TEXTS[:1], "query")
    manual = (hidden[0] * mask[0, :, None]).sum(0) / mask[0].sum()
    np.testing.assert_allclose(e[0], torch.nn.functional.normalize(manual, dim=0).detach().numpy(), atol=1e-5)


def test_feature_cache_computes_once(encoder, tmp_path, monkeypatch):
    calls = []
    real = features_mod.encode_features

    def counting(enc, texts, *a, **k):
        calls.append(len(texts))
        return real(enc, texts, *a, **k)

    monkeypatch.setattr(features_mod, "encode_features", counting)
    cache = FeatureCache(tmp_path, encoder.settings.key, s_feat=2, shard_size=3)
    f1 = cached_features(encoder, cache, TEXTS + TEXTS[:1], "query")
    assert sum(calls) == len(TEXTS)  # duplicates encoded once
    assert f1.slots.shape == (5, 2, 32)
    f2 = cached_features(encoder, FeatureCache(tmp_path, encoder.settings.key, s_feat=2), TEXTS, "query")
    assert sum(calls) == len(TEXTS)  # a fresh cache object reads the shards: nothing recomputed
    np.testing.assert_allclose(f1.mean[:4], f2.mean, atol=1e-6)
    np.testing.assert_allclose(f1.slots[:4], f2.slots, atol=2e-3)  # slots are stored as float16
    cached_features(encoder, cache, ["a new text"], "query")
    assert sum(calls) == len(TEXTS) + 1


def test_crash_mid_write_leaves_no_partial_shard(encoder, tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path, encoder.settings.key, s_feat=1, shard_size=2)
    real = features_mod.encode_features
    n = {"calls": 0}

    def dying(enc, texts, *a, **k):
        n["calls"] += 1
        if n["calls"] == 2:
            raise KeyboardInterrupt("killed")
        return real(enc, texts, *a, **k)

    monkeypatch.setattr(features_mod, "encode_features", dying)
    with pytest.raises(KeyboardInterrupt):
        cached_features(encoder, cache, TEXTS, "query")
    shards = list(cache.dir.glob("*"))
    assert len(shards) == 1 and shards[0].suffix == ".npz"  # the finished batch, no temp file
    monkeypatch.setattr(features_mod, "encode_features", real)
    fresh = FeatureCache(tmp_path, encoder.settings.key, s_feat=1, shard_size=2)
    assert len(fresh.missing([features_mod.text_key("query: ", t) for t in TEXTS])) == 2


def test_lora_trains_only_adapters(tiny_bert_dir):
    enc = Encoder(EncoderSettings(spec=f"hf:{tiny_bert_dir}", max_length=32))
    enc.add_lora(r=4, alpha=8, dropout=0.0, target_modules=["query", "value"])
    trainable = [n for n, p in enc.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    hidden, mask = enc.token_states(TEXTS[:2], "query")
    hidden.sum().backward()
    assert all(p.grad is not None for n, p in enc.model.named_parameters() if p.requires_grad)


def test_loading_a_local_folder_draws_no_weights_bar(tiny_bert_dir, tmp_path, capfd):
    """Observed: every `lira embed`/`search` printed "Loading weights 0/199 ... 199/199" to stderr."""
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()
    capfd.readouterr()
    Encoder(EncoderSettings(spec=f"hf:{tiny_bert_dir}"), tmp_path)
    err = capfd.readouterr().err
    assert "Loading weights" not in err, err
    # the bars are back afterwards: a download (a model id) or other long work still shows progress
    assert hf_logging.is_progress_bar_enabled()


def test_encoders_of_one_backbone_share_its_tokenizer_until_the_last_goes(tiny_bert_dir, tmp_path):
    import gc
    import shutil

    from lira.encoders import base

    own = shutil.copytree(tiny_bert_dir, tmp_path / "own")  # no other test's encoder holds this one's tokenizer
    settings = EncoderSettings(spec=f"hf:{own}", max_length=32, batch_size=2, precision="fp32")
    a, b = Encoder(settings), Encoder(settings.model_copy(update={"max_length": 16}))
    assert a.tokenizer is b.tokenizer
    long = [" ".join(["word"] * 40)]
    assert a.tokenize(long, "query")["input_ids"].shape[1] == 32 and b.tokenize(long, "query")["input_ids"].shape[1] == 16
    # A copy of the folder elsewhere is another tokenizer; so is the folder rewritten in place.
    other = shutil.copytree(own, tmp_path / "copy")
    c = Encoder(EncoderSettings(spec=f"hf:{other}", max_length=32, batch_size=2, precision="fp32"))
    assert c.tokenizer is not a.tokenizer
    (other / "tokenizer_config.json").write_text((other / "tokenizer_config.json").read_text() + "\n")
    assert Encoder(EncoderSettings(spec=f"hf:{other}", max_length=32, batch_size=2, precision="fp32")).tokenizer is not c.tokenizer
    held = [k for k in base._TOKENIZERS.keys() if k[0] == str(own)]
    assert len(held) == 1
    del a, b
    gc.collect()
    assert not [k for k in base._TOKENIZERS.keys() if k[0] == str(own)]
    # the most recently loaded one stays for the next encoder of its backbone, even with none alive
    last = Encoder(EncoderSettings(spec=f"hf:{other}", max_length=32, batch_size=2, precision="fp32")).tokenizer
    gc.collect()
    assert Encoder(EncoderSettings(spec=f"hf:{other}", max_length=32, batch_size=2, precision="fp32")).tokenizer is last
