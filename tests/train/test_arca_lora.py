"""Arca with LoRA on the LRL encoder: the live path, the trainer, and the saved adapter.

A tiny BERT (width 32, tokenizer trained by the test session) stands in for the backbone.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lira.arca.config import ArcaConfig
from lira.encoders import Encoder, EncoderSettings, encode_features
from lira.encoders.lora import adapter_sha256, save_adapter
from lira.train.arca import ArcaData, train_arca
from lira.train.common import Checkpointer, Interrupt
from lira.train.live import LiveEncoderPath

WORDS = ("phone battery good red cotton shirt women power bank capacity very this has a for with "
         "điện thoại pin tốt ponsel baterai bagus telefon sangat").split()


def texts(n: int, seed: int = 0) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    return [" ".join(WORDS[i] for i in torch.randint(len(WORDS), (int(torch.randint(3, 9, (1,), generator=g)),), generator=g))
            for _ in range(n)]


def lora_encoder(tiny_bert_dir, seed: int = 0) -> Encoder:
    enc = Encoder(EncoderSettings(spec=f"hf:{tiny_bert_dir}", batch_size=8))
    torch.manual_seed(seed)
    enc.add_lora(r=4, alpha=8.0, dropout=0.0, target_modules=["query", "value"])
    return enc


def data_for(enc: Encoder, src: list[str], s: int = 2, k: int = 2) -> ArcaData:
    """LRL = the texts; candidate 0 = the same text reversed (a 'translation'), 1 = an unrelated text."""
    n = len(src)
    base = Encoder(enc.settings)  # the frozen backbone: what the feature cache would hold
    lr = torch.from_numpy(encode_features(base, src, "query", s).slots)
    other = texts(n, seed=99)
    c0 = torch.from_numpy(encode_features(base, [" ".join(t.split()[::-1]) for t in src], "query", s).slots)
    c1 = torch.from_numpy(encode_features(base, other, "query", s).slots)
    idx = torch.arange(n)
    return ArcaData(lang=idx % 2, lr=lr, cand=torch.stack([c0, c1], 1),
                    feats=torch.tensor([[1.0, 0.0], [0.0, 1.0]]).expand(n, k, 2).clone(),
                    mask=torch.ones(n, k, dtype=torch.bool), reward=torch.tensor([0.9, 0.1]).expand(n, k).clone(),
                    train_idx=idx[: int(0.75 * n)], dev_idx=idx[int(0.75 * n):])


CFG = dict(d=16, residual=False, epochs=4, batch_size=8, patience=4, lr=5e-3, dropout=0.0, lambda_nce=0.5, lora_epochs=4,
           lambda_rank=0.0)  # the LoRA mechanics; the ranking term and lora_epochs have their own tests
SEED = 3


def test_live_path_matches_the_frozen_features_at_init_and_trains_only_adapters(tiny_bert_dir):
    enc = lora_encoder(tiny_bert_dir)
    src = texts(12)
    live = LiveEncoderPath(enc, src, ["query"] * 6 + ["passage"] * 6, s_feat=2, precision="fp32")
    frozen = Encoder(enc.settings)
    want = torch.cat([torch.from_numpy(encode_features(frozen, src[:6], "query", 2).slots),
                      torch.from_numpy(encode_features(frozen, src[6:], "passage", 2).slots)])
    # lora_B starts at zero: the adapted encoder is the frozen one until it trains
    assert torch.allclose(live.refreshed(torch.zeros_like(want), torch.arange(12)), want, atol=1e-5)
    # a batch mixing kinds comes back in the order asked for
    idx = torch.tensor([7, 0, 11, 3])
    live.train(False)
    assert torch.allclose(live.slots(idx), want[idx], atol=1e-5)

    live.slots(idx).pow(2).sum().backward()
    grads = {n: p.grad for n, p in enc.model.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in n for n in grads)
    assert any(float(g.abs().sum()) > 0 for n, g in grads.items() if "lora_A" in n or "lora_B" in n)


def test_trainer_tunes_the_adapters_and_resume_equals_uninterrupted(tiny_bert_dir, tmp_path):
    src = texts(32, seed=1)
    kinds = ["query"] * 32
    base = lora_encoder(tiny_bert_dir)
    data = data_for(base, src)
    frozen_weight = {n: p.clone() for n, p in base.model.named_parameters() if "lora_" not in n}
    cfg = ArcaConfig(**CFG)

    live = LiveEncoderPath(base, src, kinds, 2, precision="fp32")
    moved = []  # whether each epoch left B off its zero init (early stopping may still keep the start)
    full = train_arca(data, cfg, 2, SEED, checkpointer=Checkpointer(tmp_path / "a", "k"), live=live,
                      on_epoch=lambda e, r: moved.append(not live.adapters_are_zero()))
    assert full.lora is not None and full.lora_config is not None
    assert moved and all(moved)  # every LoRA epoch tuned the adapters
    for n, p in base.model.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, frozen_weight[n]), n  # the backbone itself never changes

    def kill(epoch, row):
        if epoch == 1:
            raise Interrupt()

    ck = Checkpointer(tmp_path / "b", "k")
    with pytest.raises(Interrupt):
        train_arca(data, cfg, 2, SEED, checkpointer=ck, on_epoch=kill, live=LiveEncoderPath(lora_encoder(tiny_bert_dir), src, kinds, 2, precision="fp32"))
    resumed = train_arca(data, cfg, 2, SEED, checkpointer=ck, live=LiveEncoderPath(lora_encoder(tiny_bert_dir), src, kinds, 2, precision="fp32"))
    assert resumed.resumed_from == 1
    assert [r["loss"] for r in resumed.history if r["epoch"] >= 0] == pytest.approx([r["loss"] for r in full.history if r["epoch"] >= 0])
    assert full.lora.keys() == resumed.lora.keys()
    for k in full.lora:
        assert torch.equal(full.lora[k], resumed.lora[k]), k


def test_saved_adapter_reloads_merged_and_keys_its_own_features(tiny_bert_dir, tmp_path):
    src = texts(24, seed=2)
    enc = lora_encoder(tiny_bert_dir)
    live = LiveEncoderPath(enc, src, ["query"] * 24, 2, precision="fp32")
    g = torch.Generator().manual_seed(0)  # adapters off their zero init (what training does; the tiny run may keep its start)
    live.load_state_dict({k: torch.randn(v.shape, generator=g) * 0.2 if "lora_B" in k else v for k, v in live.state_dict().items()})
    folder = save_adapter(tmp_path / "lora_lrl", live.lora_config, live.state_dict())
    settings = enc.settings.with_adapter(folder)
    assert settings.adapter_sha256 == adapter_sha256(folder) and settings.key != enc.settings.key

    merged = Encoder(settings)
    want = live.refreshed(torch.zeros(24, 2, 32), torch.arange(24))
    got = torch.from_numpy(encode_features(merged, src, "query", 2).slots)
    assert torch.allclose(got, want, atol=1e-4)
    frozen = torch.from_numpy(encode_features(Encoder(enc.settings), src, "query", 2).slots)
    assert not torch.allclose(got, frozen, atol=1e-4)  # the adapter did change the path

    (folder / "adapter_model.safetensors").write_bytes((folder / "adapter_model.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match="content hash"):
        Encoder(settings)


def test_lora_on_the_english_anchor_is_refused_and_on_the_lrl_path_accepted():
    from lira.config import ConfigError, parse_params

    with pytest.raises(ConfigError, match="English encoder is the frozen anchor"):
        parse_params({"shared": {"encoders": {"en": {"lora": {"enabled": True}}}}})
    p = parse_params({"shared": {"encoders": {"lrl": {"lora": {"enabled": True, "lr": 1e-3}}}}})
    assert p.encoder("lrl").lora.enabled and p.encoder("lrl").lora.lr == 1e-3


def test_unknown_target_modules_name_the_layers_there_are(tiny_bert_dir):
    enc = Encoder(EncoderSettings(spec=f"hf:{tiny_bert_dir}"))
    with pytest.raises(ValueError, match="linear layers are named"):
        enc.add_lora(r=4, alpha=8.0, dropout=0.0, target_modules=["q_proj"])


def test_adapter_hash_ignores_the_order_peft_writes_target_modules_in(tmp_path):
    import json

    from lira.encoders.lora import lora_config

    state = {"base_model.model.encoder.layer.0.attention.self.query.lora_A.weight": torch.ones(2, 4)}
    a = save_adapter(tmp_path / "a", lora_config(2, 4.0, 0.0, ["query", "value"]), state)
    b = save_adapter(tmp_path / "b", lora_config(2, 4.0, 0.0, ["value", "query"]), state)
    assert adapter_sha256(a) == adapter_sha256(b)
    cfg = json.loads((a / "adapter_config.json").read_text())
    cfg["target_modules"] = ["value", "query"]  # as peft itself may write it in another process
    (a / "adapter_config.json").write_text(json.dumps(cfg))
    assert adapter_sha256(a) == adapter_sha256(b)
    assert adapter_sha256(save_adapter(tmp_path / "c", lora_config(2, 4.0, 0.0, ["query"]), state)) != adapter_sha256(b)


def test_adapters_of_two_model_locations_hash_equal_and_record_no_path(tmp_path, tiny_bert_dir):
    import json
    import shutil

    other = shutil.copytree(tiny_bert_dir, tmp_path / "elsewhere" / "bert")
    saved = []
    for i, where in enumerate((tiny_bert_dir, other)):
        enc = lora_encoder(where)
        assert str(where) in str(enc.lora_config.base_model_name_or_path)  # peft records the load path
        live = LiveEncoderPath(enc, ["a"], ["query"], 2, precision="fp32")
        saved.append(save_adapter(tmp_path / f"adapter{i}", enc.lora_config, live.state_dict()))
    assert adapter_sha256(saved[0]) == adapter_sha256(saved[1])
    for folder in saved:
        assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] is None


def test_gradient_checkpointing_gives_the_same_adapter_gradients(tiny_bert_dir):
    src = texts(8, seed=4)

    def grads(checkpointing: bool) -> dict[str, torch.Tensor]:
        enc = lora_encoder(tiny_bert_dir)
        if checkpointing:
            enc.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            layers = enc.model.base_model.model.encoder.layer
            assert all(getattr(layer, "gradient_checkpointing", False) for layer in layers)
        live = LiveEncoderPath(enc, src, ["query"] * 8, 2, precision="fp32")
        live.train(True)  # checkpointing acts in training mode only (dropout is 0 here)
        out = live.slots(torch.arange(8))
        (out[:, 0] * out[:, 1]).sum().backward()
        return {n: p.grad.clone() for n, p in enc.model.named_parameters() if p.grad is not None}

    plain, ckpt = grads(False), grads(True)
    assert plain.keys() == ckpt.keys() and plain
    for n in plain:
        assert torch.allclose(plain[n], ckpt[n], atol=1e-6), n


def test_a_released_path_keeps_its_lora_state_and_runs_nothing(tiny_bert_dir):
    src = texts(8, seed=5)
    live = LiveEncoderPath(lora_encoder(tiny_bert_dir), src, ["query"] * 8, 2, precision="fp32")
    assert live.adapters_are_zero()  # peft starts B at zero: the path is the frozen encoder
    state = {k: (v + 1.0 if "lora_B" in k else v) for k, v in live.state_dict().items()}
    live.load_state_dict(state)
    assert not live.adapters_are_zero()
    config = live.lora_config
    live.release()
    assert live.encoder is None and live.lora_config is config
    assert all(torch.equal(live.state_dict()[k], state[k]) for k in state)
    live.load_state_dict({k: v * 2 for k, v in state.items()})
    assert all(torch.equal(live.state_dict()[k], state[k] * 2) for k in state)
    with pytest.raises(ValueError, match="does not fit"):
        live.load_state_dict({"nope": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="LoRA state only"):
        live.slots(torch.arange(2))


def test_freeze_lrl_runs_once_after_the_lora_epochs_and_its_features_train_the_rest(tiny_bert_dir):
    src = texts(32, seed=1)
    enc = lora_encoder(tiny_bert_dir)
    data = data_for(enc, src)
    live = LiveEncoderPath(enc, src, ["query"] * 32, 2, precision="fp32")
    calls, epochs_seen = [], []

    def freeze(lv):
        calls.append((len(epochs_seen), lv.state_dict()))
        out = lv.refreshed(data.lr, torch.arange(len(data.lr)))
        lv.release()
        return out

    cfg = ArcaConfig(**{**CFG, "epochs": 3, "lora_epochs": 1})
    res = train_arca(data, cfg, 2, SEED, live=live, freeze_lrl=freeze, on_epoch=lambda e, r: epochs_seen.append(e))
    assert [c[0] for c in calls] == [1] and epochs_seen == [0, 1, 2]  # once, as epoch 1 began
    assert live.encoder is None  # released by the hook; the trainer went on without it
    kept = calls[0][1] if res.best_epoch >= 0 else None
    if kept is not None:  # the adapter returned is the one the frozen epochs trained on
        assert all(torch.equal(res.lora[k], kept[k]) for k in kept)
    plain = train_arca(data_for(lora_encoder(tiny_bert_dir), src), cfg, 2, SEED,
                       live=LiveEncoderPath(lora_encoder(tiny_bert_dir), src, ["query"] * 32, 2, precision="fp32"))
    # the hook above returns what the default computes: the same run
    assert [r["loss"] for r in res.history if r["epoch"] >= 0] == pytest.approx([r["loss"] for r in plain.history if r["epoch"] >= 0])


def test_tuned_features_are_computed_merged_and_cached_for_the_stage_after(tiny_bert_dir, tmp_path, monkeypatch):
    import pandas as pd

    from lira.config import parse_params
    from lira.encoders import base as encoder_base
    from lira.encoders import release_encoders
    from lira.train import arca_run

    spec = {"spec": f"hf:{tiny_bert_dir}", "precision": "fp32", "max_length": 32, "batch_size": 8}
    shared = parse_params({"shared": {"s_feat": 2, "paths": {"cache": str(tmp_path / "cache")},
                                      "encoders": {"lrl": {**spec, "lora": {"enabled": True, "r": 4, "alpha": 8.0, "train_precision": "fp32"}},
                                                   "en": spec}}}).shared
    src = texts(10, seed=6)
    frame = pd.DataFrame({"text": src, "role": ["query"] * 5 + ["item"] * 5})
    inputs = arca_run.ArcaInputs(frame, None, np.zeros((10, 2, 32), np.float32), None, np.zeros(10, int))
    live = arca_run.live_path(shared, tmp_path, inputs)
    state = {k: (torch.randn_like(v) * 0.1 if "lora_B" in k else v) for k, v in live.state_dict().items()}
    live.load_state_dict(state)
    want = live.refreshed(torch.zeros(10, 2, 32), torch.arange(10))  # the live fp32 path, for comparison

    torch.manual_seed(123)
    rng = torch.random.get_rng_state()
    got = arca_run.tuned_lrl_slots(shared, tmp_path, inputs, live, progress=False)
    # loading the merged encoder drew nothing from the global RNG the later epochs' dropout uses:
    # a run is the same whether these features were computed or read from the cache
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert live.encoder is None and not list((tmp_path / "cache").glob("lora-after-epochs-*"))  # released, no leftovers
    # the merged adapter computes the live path's function (to the feature cache's fp16 slots)
    frozen = torch.from_numpy(arca_run.text_features(shared, tmp_path, frame)[0])
    assert torch.allclose(got, want, rtol=1e-3, atol=1e-3) and not torch.allclose(got, frozen, atol=1e-2)
    # The stage saves the same adapter under models/arca: its features are read back, no encoder loads.
    release_encoders()
    loads = []
    monkeypatch.setattr(encoder_base.Encoder, "__init__", lambda self, *a, **k: loads.append(a) or (_ for _ in ()).throw(AssertionError("loaded")))
    final = save_adapter(tmp_path / "models" / "arca" / "lora_lrl", live.lora_config, live.state_dict())
    again = arca_run.with_lrl_adapter(shared, tmp_path, inputs, final, progress=False).lr_slots
    assert loads == [] and np.array_equal(again, got.numpy())


def test_a_finished_run_reloads_from_its_checkpoint_without_an_encoder(tiny_bert_dir, tmp_path):
    from lira.encoders.lora import lora_config
    from lira.train.arca_run import finished_lora_state

    src = texts(24, seed=7)
    enc = lora_encoder(tiny_bert_dir)
    data = data_for(enc, src)
    cfg = ArcaConfig(**{**CFG, "epochs": 2, "lora_epochs": 1})
    ck = Checkpointer(tmp_path / "ck", "k")
    first = train_arca(data, cfg, 2, SEED, checkpointer=ck, live=LiveEncoderPath(enc, src, ["query"] * 24, 2, precision="fp32"))
    state = finished_lora_state(ck, cfg)
    assert state is not None and finished_lora_state(Checkpointer(tmp_path / "none", "k"), cfg) is None
    assert finished_lora_state(ck, ArcaConfig(**{**CFG, "epochs": 5, "lora_epochs": 1})) is None  # more epochs to run
    held = LiveEncoderPath.from_state(state, lora_config(4, 8.0, 0.0, ["query", "value"]), src, ["query"] * 24, 2,
                                      precision="fp32")
    again = train_arca(data, cfg, 2, SEED, checkpointer=ck, live=held)
    assert held.encoder is None and again.best_epoch == first.best_epoch and again.history == first.history
    # the adapter saved from the reloaded run is the same folder, byte for byte (config included)
    a = save_adapter(tmp_path / "a", first.lora_config, first.lora)
    b = save_adapter(tmp_path / "b", again.lora_config, again.lora)
    assert adapter_sha256(a) == adapter_sha256(b)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
