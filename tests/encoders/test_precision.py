"""Encoder precision: the engines really run at their precision, the parity check measures cosines,
``auto`` follows a fixed rule (CPU flags + parity results, never timings), its cache is reused, an
engine that fails parity is never chosen, and the feature key names the engine auto resolved to."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lira.encoders import Encoder, EncoderSettings
from lira.encoders import precision as P

TEXTS = ["áo thun cotton màu đỏ", "เสื้อยืดสีแดง", "a red t-shirt", "kemeja merah lengan panjang ukuran besar sekali"]


def _linear_modules(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)]


def _min_cosine(a, b):
    return float(np.min(np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))


def test_bf16_engine_runs_bf16_weights_within_parity_and_fp32_does_not(encoder, tiny_bert_dir, tmp_path, output_dtypes):
    ref = encoder.embed(TEXTS)
    seen = output_dtypes(_linear_modules(encoder.model), lambda: encoder.embed(TEXTS))
    assert seen and all(d == torch.float32 for d in seen)
    bf16 = Encoder(EncoderSettings(spec=f"hf:{tiny_bert_dir}", max_length=32, precision="bf16"), cache_dir=tmp_path)
    bf16.freeze()
    assert bf16.engine.name == "bf16" and bf16.settings.precision == "bf16"
    emb = bf16.embed(TEXTS)  # the first inference forward makes the bf16 weights
    seen = output_dtypes(_linear_modules(bf16.engine.model), lambda: bf16.embed(TEXTS))
    assert seen and all(d == torch.bfloat16 for d in seen)
    assert emb.dtype == np.float32 and np.abs(emb - ref).max() > 1e-6  # really bf16, and not far off
    assert _min_cosine(ref, emb) >= P.MIN_COSINE
    # Frozen: converted in place, no fp32 weights kept beside the bf16 ones - but for the word-embedding
    # table, left as loaded (memory-mapped) and looked up into bf16 rows.
    assert bf16.engine.model is bf16.model
    table = bf16.model.get_input_embeddings().weight
    assert table.dtype == torch.float32
    assert {p.dtype for p in bf16.model.parameters() if p is not table} == {torch.bfloat16}
    ids = torch.tensor([[1, 5, 7]])
    torch.testing.assert_close(bf16.model.get_input_embeddings()(ids), table[ids].to(torch.bfloat16), rtol=0, atol=0)
    with pytest.raises(ValueError, match="fresh Encoder"):
        bf16.add_lora(r=2, alpha=4.0, dropout=0.0, target_modules=["query", "value"])


def test_training_forward_stays_fp32_beside_the_bf16_weights(tiny_bert_dir, tmp_path, output_dtypes):
    enc = Encoder(EncoderSettings(spec=f"hf:{tiny_bert_dir}", max_length=32, precision="bf16"), cache_dir=tmp_path)
    enc.embed(TEXTS)  # not frozen: the bf16 weights are a copy
    assert enc.engine.model is not enc.model and {p.dtype for p in enc.model.parameters()} == {torch.float32}
    seen = output_dtypes(_linear_modules(enc.model), lambda: enc.token_states(TEXTS, "query"))  # grad on
    assert seen and all(d == torch.float32 for d in seen)
    hidden, _ = enc.token_states(TEXTS, "query")
    hidden.sum().backward()
    grads = [p.grad for n, p in enc.model.named_parameters() if not n.startswith("pooler.")]  # the pooler is unused
    assert grads and all(g is not None and g.dtype == torch.float32 for g in grads)
    # The copy shares the (fp32) word-embedding table; freezing afterwards drops the fp32 model for it.
    fp32_table = enc.model.get_input_embeddings().weight
    assert enc.engine.model.get_input_embeddings().weight is fp32_table
    enc.freeze()
    assert enc.model is enc.engine.model
    assert {p.dtype for p in enc.model.parameters() if p is not fp32_table} == {torch.bfloat16}


def test_lora_on_a_bf16_encoder_runs_fp32(tiny_bert_dir, tmp_path, output_dtypes):
    enc = Encoder(EncoderSettings(spec=f"hf:{tiny_bert_dir}", max_length=32, precision="bf16"), cache_dir=tmp_path)
    enc.add_lora(r=2, alpha=4.0, dropout=0.0, target_modules=["query", "value"])
    assert enc.engine.name == "fp32" and enc.settings.precision == "fp32"
    with torch.no_grad():
        seen = output_dtypes(_linear_modules(enc.model), lambda: enc.token_states(TEXTS, "query"))
    assert seen and all(d == torch.float32 for d in seen)


def test_int8_engine_is_a_quantised_copy(encoder, tmp_path):
    eng = P.engine_for(encoder, "int8", tmp_path)
    kinds = {type(m).__module__ for m in eng.model.modules()}
    assert any("quantized" in k for k in kinds), kinds
    assert any(isinstance(m, torch.nn.Linear) and type(m) is torch.nn.Linear for m in encoder.model.modules())  # original untouched
    # the copy looks up the same word-embedding table (not a second copy of it)
    assert eng.model.get_input_embeddings().weight.data_ptr() == encoder.model.get_input_embeddings().weight.data_ptr()


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


ALL = frozenset({"avx512_bf16", "avx512_vnni", "avx2"})


def _results(**passed):
    return {e: {"passed": ok, "seconds": 1.0} for e, ok in {"fp32": True, **passed}.items()}


def test_native_engines_follow_the_cpu_flags():
    assert P.native_engines(ALL) == ("fp32", "bf16", "int8")
    assert P.native_engines({"amx_bf16"}) == ("fp32", "bf16")
    assert P.native_engines({"avx_vnni", "avx2"}) == ("fp32", "int8")
    assert P.native_engines(set()) == ("fp32",)


def test_auto_rule_is_flags_and_parity_in_a_fixed_order():
    assert P.choose(ALL, _results(bf16=True, int8=True)) == "bf16"
    assert P.choose(ALL, _results(bf16=False, int8=True)) == "int8"
    assert P.choose(ALL, _results(bf16=False, int8=False)) == "fp32"
    # An engine the CPU has no kernels for is never chosen, whatever its parity.
    assert P.choose({"avx512_vnni"}, _results(bf16=True, int8=True)) == "int8"
    assert P.choose(set(), _results(bf16=True, int8=True)) == "fp32"
    with pytest.raises(ValueError, match="no encoder precision passed"):
        P.choose(ALL, {"bf16": {"passed": False, "seconds": 1.0}})


def test_auto_ignores_timings_never_picks_a_failing_engine_and_warns_when_slower(tmp_path, caplog):
    langs = ["vi", "th"] * 10
    msgs = []
    # int8 fastest but far off; bf16 passes though measured slower than fp32 (a loaded machine): bf16.
    measure, calls = _fake_measure({"fp32": 1.0, "bf16": 3.0, "int8": 0.5}, {"fp32": 0.0, "bf16": 1e-3, "int8": 0.3})
    with caplog.at_level("WARNING", logger=P.__name__):
        got = P.resolve("auto", "model-a", tmp_path, measure, langs, flags=ALL, emit=msgs.append)
    # bf16 passed first: int8 (after it in PREFERENCE) is never measured, and the log says so.
    assert got == "bf16" and calls == ["fp32", "bf16"]
    assert "int8: not measured (bf16 passed before it)" in msgs[0] and "bf16: pass" in msgs[0] and "auto -> bf16" in msgs[0]
    assert "slower than fp32" in msgs[1] and "slower than fp32" in caplog.text
    # The same cosines with other timings: the same choice.
    measure, _ = _fake_measure({"fp32": 3.0, "bf16": 1.0, "int8": 0.5}, {"fp32": 0.0, "bf16": 1e-3, "int8": 0.3})
    assert P.resolve("auto", "model-b", tmp_path, measure, langs, flags=ALL, emit=msgs.append) == "bf16"
    # bf16 off budget: int8 is measured next and, within budget, chosen; off budget too: fp32.
    measure, calls = _fake_measure({"fp32": 1.0, "bf16": 0.5, "int8": 0.7}, {"fp32": 0.0, "bf16": 0.3, "int8": 1e-3})
    assert P.resolve("auto", "model-d", tmp_path, measure, langs, flags=ALL, emit=msgs.append) == "int8"
    assert calls == ["fp32", "bf16", "int8"] and "bf16: FAIL" in msgs[-1] and "int8: pass" in msgs[-1]
    measure, calls = _fake_measure({"fp32": 1.0, "bf16": 0.5, "int8": 0.7}, {"fp32": 0.0, "bf16": 0.3, "int8": 0.3})
    assert P.resolve("auto", "model-e", tmp_path, measure, langs, flags=ALL, emit=msgs.append) == "fp32"
    assert calls == ["fp32", "bf16", "int8"] and "int8: FAIL" in msgs[-1]
    # A CPU without bf16 kernels: bf16 is not even measured; int8 within budget is chosen.
    measure, calls = _fake_measure({"fp32": 1.0, "bf16": 1.0, "int8": 2.0}, {"fp32": 0.0, "bf16": 1e-3, "int8": 1e-3})
    assert P.resolve("auto", "model-c", tmp_path, measure, langs, flags={"avx512_vnni"}, emit=msgs.append) == "int8"
    assert calls == ["fp32", "int8"]
    measure, calls = _fake_measure({"fp32": 1.0}, {"fp32": 0.0})
    assert P.resolve("auto", "model-c", tmp_path, measure, langs, flags=set(), emit=msgs.append) == "fp32"
    assert calls == ["fp32"]


def test_auto_cache_is_reused_and_keyed_by_model_and_machine(tmp_path, monkeypatch):
    langs = ["vi"] * 20
    measure, calls = _fake_measure({"fp32": 2.0, "bf16": 1.0, "int8": 0.5}, {"fp32": 0.0, "bf16": 1e-3, "int8": 0.3})
    msgs = []
    assert P.cached_choice("model-a", tmp_path, flags=ALL) is None
    assert P.resolve("auto", "model-a", tmp_path, measure, langs, flags=ALL, emit=msgs.append) == "bf16"
    assert calls == ["fp32", "bf16"]
    files = list((tmp_path / "precision").glob("*.json"))
    assert len(files) == 1
    doc = json.loads(files[0].read_text())
    assert doc["choice"] == "bf16" and doc["results"]["bf16"]["passed"] is True and doc["model_sha256"] == "model-a"
    assert "int8" not in doc["results"] and doc["candidates"] == ["fp32", "bf16", "int8"]
    # Second time: read from the cache, nothing measured, still logged with its cosines.
    assert P.resolve("auto", "model-a", tmp_path, None, None, flags=ALL, emit=msgs.append) == "bf16"
    assert calls == ["fp32", "bf16"] and "cached" in msgs[-1] and "cosine min" in msgs[-1] and "int8: not measured" in msgs[-1]
    assert P.cached_choice("model-a", tmp_path, flags=ALL) == "bf16"  # what a feature key resolves with
    # Another model, or another machine: measured again.
    assert P.resolve("auto", "model-b", tmp_path, measure, langs, flags=ALL, emit=msgs.append) == "bf16"
    assert len(calls) == 4
    monkeypatch.setattr(P, "cpu_fingerprint", lambda: {"cpu": "other", "flags_sha256": "x", "machine": "y", "torch": "z"})
    assert P.cached_choice("model-a", tmp_path, flags=ALL) is None
    assert P.resolve("auto", "model-a", tmp_path, measure, langs, flags=ALL, emit=msgs.append) == "bf16"
    assert len(calls) == 6
    # A corrupt cache file is measured again, never trusted.
    monkeypatch.undo()
    files[0].write_text('{"results": {"fp32": {"passed": "yes"}}}')
    assert P.cached_choice("model-a", tmp_path, flags=ALL) is None
    assert P.resolve("auto", "model-a", tmp_path, measure, langs, flags=ALL, emit=msgs.append) == "bf16"
    assert len(calls) == 8


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


def test_precision_is_part_of_the_feature_key_but_fp32_keeps_its_key_and_auto_has_none(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # the key hashes the backbone's files
    spec = f"hf:{tmp_path}"
    fp32 = EncoderSettings(spec=spec, precision="fp32")
    assert fp32.key.startswith("hf-") and "-fp32" not in fp32.key  # the key fp32 caches always had
    assert len({fp32.key, EncoderSettings(spec=spec, precision="bf16").key, EncoderSettings(spec=spec, precision="int8").key}) == 3
    with pytest.raises(ValueError, match="no feature key"):
        _ = EncoderSettings(spec=spec).key  # the default, auto: only the engine it resolves to has one


def test_auto_feature_key_names_the_resolved_engine_without_loading(tiny_bert_dir, tmp_path, monkeypatch):
    from pathlib import Path

    from lira import encoders
    from lira.config import load_params

    enc = {"spec": f"hf:{tiny_bert_dir}", "max_length": 32}
    shared = load_params(Path(__file__).resolve().parents[2] / "params.yaml", {"shared": {
        "paths": {"cache": str(tmp_path / "cache")}, "encoders": {"lrl": enc, "en": enc}}}).shared
    assert shared.encoders.lrl.precision == "auto"
    encoders.release_encoders()
    # No parity check cached: resolved by loading the encoder once (which runs it).
    got = encoders.feature_settings(shared, "lrl", tmp_path)
    enc = encoders.load_encoder(shared, "lrl", tmp_path)
    assert got.precision == enc.engine.name != "auto"
    assert got.key == EncoderSettings.of(shared.encoders.lrl).model_copy(update={"precision": got.precision}).key
    # Cached now: resolved from the parity JSON, no encoder loaded.
    encoders.release_encoders()
    monkeypatch.setattr(encoders, "load_encoder", lambda *a, **k: pytest.fail("loaded the encoder to resolve a key"))
    assert encoders.feature_settings(shared, "lrl", tmp_path) == got
    # Another machine whose auto resolves to fp32 gets another key (here: the parity check says bf16 fails).
    monkeypatch.setattr(P, "choose", lambda flags, results: "fp32")
    other = encoders.feature_settings(shared, "lrl", tmp_path)
    assert other.precision == "fp32" and (other.key != got.key) == (got.precision != "fp32")


def test_parity_rounds_are_interleaved_and_keep_each_engines_fastest_pass():
    calls = []
    times = iter([3.0, 2.0, 9.0, 1.0, 2.5, 0.5])  # round 1: fp32, bf16, int8; round 2: the same

    def measure(engine):
        calls.append(engine)
        return np.eye(4), next(times)

    out = P.run_parity(measure, ["a"] * 4, ("fp32", "bf16", "int8"), rounds=2)
    assert calls == ["fp32", "bf16", "int8"] * 2
    assert {e: r["seconds"] for e, r in out.items()} == {"fp32": 1.0, "bf16": 2.0, "int8": 0.5}
    # until_pass: the rounds measure only the engines up to the first that passed (bf16 here).
    calls.clear()
    times = iter([3.0, 2.0, 1.0, 2.5])
    out = P.run_parity(measure, ["a"] * 4, ("fp32", "int8", "bf16"), rounds=2, until_pass=True)
    assert calls == ["fp32", "bf16"] * 2 and set(out) == {"fp32", "bf16"}


def test_model_id_follows_the_backbone_and_the_adapter():
    assert P.model_id("a") == P.model_id("a", None) != P.model_id("a", "lora1")
    assert P.model_id("a") != P.model_id("b")
