"""A local Hugging Face model through ``generate``: causal LMs and seq2seq models alike.

``agent.model`` is a local folder or a hub id (offline runs need it in the local cache). The model
kind comes from its config (``is_encoder_decoder``). Causal models get the tokenizer's chat
template when it has one (with the generation prompt), else the plain rendering of the prompt, and
are left-padded so every row's new tokens start at the same position. Decoding is greedy at
``temperature == 0`` and sampled otherwise (seeded per batch from the run seed, so reruns agree).
Batches of ``agent.batch_size``.
"""

from __future__ import annotations

from typing import Any

from lira.translate.agents import ChatBackend
from lira.translate.prompts import Messages, render_plain


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("shared.device is 'cuda' but torch sees no CUDA device")
    return device


class TransformersBackend(ChatBackend):
    name = "transformers"

    def __init__(self, agent: Any, **kwargs: Any) -> None:
        super().__init__(agent, **kwargs)
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        self.torch_device = resolve_device(self.device)
        config = AutoConfig.from_pretrained(agent.model)
        self.seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        self.tokenizer = AutoTokenizer.from_pretrained(agent.model)
        cls = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
        self.lm = cls.from_pretrained(agent.model).to(self.torch_device).eval()
        if self.tokenizer.pad_token_id is None:
            # Many causal LMs ship without a pad token; padding positions are masked anyway.
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not self.seq2seq:
            self.tokenizer.padding_side = "left"
        self._calls = 0

    def _prompt(self, conv: Messages) -> str:
        if not self.seq2seq and getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        return render_plain(conv)

    def generate_chat(self, messages: list[Messages], *, response_format: dict | None = None,
                      max_new_tokens: int | None = None) -> list[str | None]:
        import torch

        out: list[str | None] = []
        bs = self.agent.batch_size
        for i in range(0, len(messages), bs):
            prompts = [self._prompt(c) for c in messages[i : i + bs]]
            # A chat template already holds the special tokens; don't add BOS twice.
            has_template = not self.seq2seq and bool(getattr(self.tokenizer, "chat_template", None))
            enc = self.tokenizer(prompts, return_tensors="pt", padding=True, truncation=True,
                                 add_special_tokens=not has_template).to(self.torch_device)
            gen_kwargs: dict[str, Any] = {
                "max_new_tokens": max_new_tokens or self.agent.max_new_tokens,
                "pad_token_id": self.tokenizer.pad_token_id,
            }
            if self.agent.temperature > 0:
                torch.manual_seed(self.seed + self._calls)
                gen_kwargs.update(do_sample=True, temperature=self.agent.temperature)
            else:
                gen_kwargs.update(do_sample=False)
            self._calls += 1
            with torch.inference_mode():
                ids = self.lm.generate(**enc, **gen_kwargs)
            if not self.seq2seq:
                ids = ids[:, enc["input_ids"].shape[1] :]  # keep only the new tokens
            out.extend(self.tokenizer.batch_decode(ids, skip_special_tokens=True))
        return out

    def close(self) -> None:
        self.lm = None  # let the weights go before the next agent loads its model
