"""Encoder precision: the engines really run at their precision, the parity check measures cosines,
``auto`` picks the fastest passing engine (timings injected), its cache is reused, and an engine
that fails parity is never chosen."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lira.encoders import Encoder, EncoderSettings
from lira.encoders import precision as P

TEXTS = ["áo thun cotton màu đỏ", "เสื้อยืดสีแดง", "a red t-shirt", "kemeja merah lengan panjang ukuran besar sekali"]


def _linear_input_dtypes(model, run):
    seen = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
             for m in model.modules() if isinstance(m, torch.nn.Linear)]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_bf16_engine_runs_its_matmuls_in_bf16_and_fp32_does_not(encoder, tmp_path):
    encoder.engine = P.engine_for(encoder, "bf16", tmp_path)
    assert encoder.engine.name == "bf16" and encoder.engine.model is None
    seen = _linear_input_dtypes(encoder.model, lambda: encoder.embed(TEXTS))
    assert seen and all(d == torch.bfloat16 for d in seen)
    encoder.engine = P.engine_for(encoder, "fp32", tmp_path)
    seen = _linear_input_dtypes(encoder.model, lambda: encoder.embed(TEXTS))
    assert seen and all(d == torch.float32 for d in seen)


def test_training_forward_stays_fp32_whatever_the_engine(encoder, tmp_path):
    encoder.engine = P.engine_for(encoder, "bf16", tmp_path)
    seen = _linear_input_dtypes(encoder.model, lambda: encoder.token_states(TEXTS, "query"))  # grad on
    assert seen and all(d == torch.float32 for d in seen)


def test_int8_engine_is_a_quantised_copy(encoder, tmp_path):
    eng = P.engine_for(encoder, "int8", tmp_path)
    kinds = {type(m).__module__ for m in eng.model.modules()}
    assert any("quantized" in k for k in kinds), kinds
    assert any(isinstance(m, torch.nn.Linear) and type(m) is torch.nn.Linear for m in encoder.model.modules())  # original untouched


def test_parity_check_computes_per_language_cosines(encoder):
    texts, langs = TEXTS, ["vi", "th", "en", "id"]
    results = P.run_parity(lambda e: P.measure_engine(encoder, e, texts), langs, ("fp32", "bf16", "int8"))
    assert set(results) == {"fp32", "bf16", "int8"}
    assert results["fp32"]["cosine"]["vi"]["min"] == pytest.approx(1.0)
    ref, _ = P.measure_engine(encoder, "fp32", texts)
    emb, _ = P.measure_engine(encoder, "bf16", texts)
    expected = float(np.sum(ref[1] * emb[1]) / np.linalg.norm(ref[1]) / np.linalg.norm(emb[1]))
    assert results["bf16"]["cosine"]["th"]["min"] == pytest.approx(expected, abs=1e-6)
    assert expected > 0.9 and np.abs(emb - ref).max() > 1e-6  # bf16 really differs from fp32, and not by much
    for r in results.values():
        assert r["passed"] == P.passes(r["cosine"]) and r["seconds"] > 0


def test_cosines_and_pass_rule_by_hand():
    ref = np.eye(3)[[0, 0, 1, 1]]
    emb = ref.copy()
    emb[3] = [0.0, 0.99, 0.141]  # cos = 0.99 / |emb| in language "b"
    cos = P.cosines_by_language(ref, emb, ["a", "a", "b", "b"])
    assert cos["a"] == {"min": 1.0, "mean": 1.0}
    c = 0.99 / np.hypot(0.99, 0.141)
    assert cos["b"]["min"] == pytest.approx(c) and cos["b"]["mean"] == pytest.approx((1 + c) / 2)
    assert not P.passes(cos)  # min 0.99 < 0.995
    assert P.passes({"a": {"min": 0.995, "mean": 0.999}}) and not P.passes({"a": {"min": 0.996, "mean": 0.9989}})
    assert not P.passes({})


def _fake_measure(seconds: dict[str, float], noise: dict[str, float], n: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((n, 16))
    calls = []

    def measure(engine):
        calls.append(engine)
        return ref + noise[engine] * rng.standard_normal(ref.shape), seconds[engine]

    return measure, calls


def test_auto_picks_the_fastest_engine_that_passes_and_never_a_failing_one(tmp_path):
    langs = ["vi", "th"] * 10
    # int8 is fastest but far off; bf16 passes and beats fp32.
    measure, _ = _fake_measure({"fp32": 2.0, "bf16": 1.0, "int8": 0.5}, {"fp32": 0.0, "bf16": 1e-3, "int8": 0.3})
    msgs = []
    got = P.resolve("auto", "model-a", tmp_path, measure, langs, emit=msgs.append)
    assert got == "bf16"
    assert "int8: FAIL" in msgs[0] and "bf16: pass" in msgs[0] and "auto -> bf16" in msgs[0]
    # Everything else slower than fp32: fp32.
    measure, _ = _fake_measure({"fp32": 1.0, "bf16": 1.5, "int8": 3.0}, {"fp32": 0.0, "bf16": 1e-3, "int8": 1e-3})
    assert P.resolve("auto", "model-b", tmp_path, measure, langs, emit=msgs.append) == "fp32"
    # int8 within budget and fastest: int8.
    measure, _ = _fake_measure({"fp32": 2.0, "bf16": 1.0, "int8": 0.5}, {"fp32": 0.0, "bf16": 1e-3, "int8": 1e-3})
    assert P.resolve("auto", "model-c", tmp_path, measure, langs, emit=msgs.append) == "int8"
    # Only one language off is enough to fail.
    results = {"fp32": {"passed": True, "seconds": 2.0}, "bf16": {"passed": False, "seconds": 0.1}}
    assert P.pick(results) == "fp32"


def test_auto_cache_is_reused_and_keyed_by_model_and_machine(tmp_path, monkeypatch):
    langs = ["vi"] * 20
    measure, calls = _fake_measure({"fp32": 2.0, "bf16": 1.0, "int8": 0.5}, {"fp32": 0.0, "bf16": 1e-3, "int8": 0.3})
    msgs = []
    assert P.resolve("auto", "model-a", tmp_path, measure, langs, emit=msgs.append) == "bf16"
    assert calls == ["fp32", "bf16", "int8"]
    files = list((tmp_path / "precision").glob("*.json"))
    assert len(files) == 1
    doc = json.loads(files[0].read_text())
    assert doc["choice"] == "bf16" and doc["results"]["int8"]["passed"] is False and doc["model_sha256"] == "model-a"
    # Second time: read from the cache, nothing measured, still logged with its cosines.
    assert P.resolve("auto", "model-a", tmp_path, None, None, emit=msgs.append) == "bf16"
    assert calls == ["fp32", "bf16", "int8"] and "cached" in msgs[-1] and "cosine min" in msgs[-1]
    # Another model, or another machine: measured again.
    assert P.resolve("auto", "model-b", tmp_path, measure, langs, emit=msgs.append) == "bf16"
    assert len(calls) == 6
    monkeypatch.setattr(P, "cpu_fingerprint", lambda: {"cpu": "other", "flags_sha256": "x", "machine": "y", "torch": "z"})
    assert P.resolve("auto", "model-a", tmp_path, measure, langs, emit=msgs.append) == "bf16"
    assert len(calls) == 9
    # A corrupt cache file is measured again, never trusted.
    monkeypatch.undo()
    files[0].write_text('{"results": {"fp32": {"passed": "yes"}}}')
    assert P.resolve("auto", "model-a", tmp_path, measure, langs, emit=msgs.append) == "bf16"
    assert len(calls) == 12


def test_explicit_precisions_are_not_measured_and_bad_values_fail(tmp_path):
    assert P.resolve("int8", "m", tmp_path, None) == "int8"
    with pytest.raises(ValueError, match="expected one of"):
        P.resolve("fp16", "m", tmp_path, None)
    with pytest.raises(ValueError, match="no cached parity check"):
        P.resolve("auto", "m", tmp_path, None)


def test_encoder_auto_end_to_end_on_the_probe_set(tiny_bert_dir, tmp_path):
    enc = Encoder(EncoderSettings(spec=f"hf:{tiny_bert_dir}", max_length=32, precision="auto"), cache_dir=tmp_path)
    assert enc.engine.name in P.ENGINES
    doc = json.loads(next((tmp_path / "precision").glob("*.json")).read_text())
    assert doc["choice"] == enc.engine.name
    _texts, langs = P.probe_set(4)
    assert set(doc["results"]["fp32"]["cosine"]) == set(langs) and "en" in langs and len(set(langs)) == 8
    for r in doc["results"].values():  # never chose a failing engine
        assert r["passed"] == P.passes(r["cosine"])
    assert doc["results"][doc["choice"]]["passed"]


def test_precision_is_part_of_the_feature_key_but_fp32_keeps_its_key(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # the key hashes the backbone's files
    spec = f"hf:{tmp_path}"
    base = EncoderSettings(spec=spec)
    assert base.key == EncoderSettings(spec=spec, precision="fp32").key
    assert len({base.key, EncoderSettings(spec=spec, precision="bf16").key,
                EncoderSettings(spec=spec, precision="auto").key}) == 3


def test_parity_rounds_are_interleaved_and_keep_each_engines_fastest_pass():
    calls = []
    times = iter([3.0, 2.0, 9.0, 1.0, 2.5, 0.5])  # round 1: fp32, bf16, int8; round 2: the same

    def measure(engine):
        calls.append(engine)
        return np.eye(4), next(times)

    out = P.run_parity(measure, ["a"] * 4, ("fp32", "bf16", "int8"), rounds=2)
    assert calls == ["fp32", "bf16", "int8"] * 2
    assert {e: r["seconds"] for e, r in out.items()} == {"fp32": 1.0, "bf16": 2.0, "int8": 0.5}


def test_model_key_follows_the_files_and_the_adapter(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"abc")
    k1 = P.model_key(tmp_path)
    assert P.model_key(tmp_path, "lora1") != k1
    (tmp_path / "model.safetensors").write_bytes(b"abd")
    assert P.model_key(tmp_path) != k1
