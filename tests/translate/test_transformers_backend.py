import os

import pandas as pd
import pytest
from translate_testdata import make_params, sample_texts

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant:{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A width-32 Llama with a byte-level BPE tokenizer trained on a few lines; garbage output."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(sample_texts()["text"].tolist() + ["<translation>The cat.</translation>"] * 3, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                   bos_token="<s>", eos_token="</s>")
    fast.chat_template = CHAT_TEMPLATE
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=fast.pad_token_id, bos_token_id=fast.bos_token_id,
                      eos_token_id=fast.eos_token_id)
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def test_stage_with_a_tiny_local_causal_lm(project, tiny_lm):
    from lira.stages import translate as stage

    agent = {"name": "tiny", "backend": "transformers", "model": str(tiny_lm), "max_new_tokens": 6,
             "batch_size": 10}
    summary = stage.run(make_params([agent]), project)
    df = pd.read_parquet(project / "data" / "translations" / "candidates.parquet")
    n = len(sample_texts())
    assert len(df) == n and sorted(df["text_id"]) == sorted(sample_texts()["text_id"])
    assert df["raw"].notna().all() and df["parse_flags"].notna().all()
    assert df["parse_flags"].str.contains("untagged|empty").all()  # a random model never tags
    assert summary["new"] == n and summary["backend_calls"] == 3  # 25 texts in batches of 10


def test_chat_template_and_plain_prompts(tiny_lm):
    from lira.config import AgentParams
    from lira.translate.agents import TranslationRequest, build_backend
    from lira.translate.prompts import build_messages

    backend = build_backend(AgentParams(name="t", backend="transformers", model=str(tiny_lm),
                                        max_new_tokens=4, temperature=0.7))
    conv = build_messages("xin chào", "vi", "v1")
    assert backend._prompt(conv).endswith("<s>assistant:")
    backend.tokenizer.chat_template = None
    assert backend._prompt(conv).startswith(conv[0]["content"])
    outs = backend.translate([TranslationRequest("a", "vi", "xin chào"), TranslationRequest("b", "vi", "cảm ơn")])
    assert len(outs) == 2 and all(isinstance(o.raw, str) for o in outs)
