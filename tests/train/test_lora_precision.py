"""shared.encoders.lrl.lora.train_precision: the live LoRA path under CPU bf16 autocast.

bf16 is a property of the forward's matmuls only: the adapters, their gradients and the pooled
slots the losses see stay fp32. How close bf16's gradients are to fp32's on the real encoder is
measured in bench/lora_precision.py, not asserted here.
"""

from __future__ import annotations

import pytest
import torch

from lira.encoders import Encoder, EncoderSettings
from lira.encoders.config import LoraConfig
from lira.train.live import LiveEncoderPath

TEXTS = ["phone battery good", "red cotton shirt for women", "power bank capacity very good", "this has a phone",
         "điện thoại pin tốt", "ponsel baterai bagus sangat"]


def lora_encoder(tiny_bert_dir) -> Encoder:
    enc = Encoder(EncoderSettings(spec=f"hf:{tiny_bert_dir}", batch_size=8))
    torch.manual_seed(0)
    enc.add_lora(r=4, alpha=8.0, dropout=0.0, target_modules=["query", "value"])
    with torch.no_grad():  # lora_B starts at 0, and with it lora_A's gradient: make both non-trivial
        for n, p in enc.model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.1)
    return enc


def lora_linears(enc: Encoder) -> list[torch.nn.Module]:
    return [m for n, m in enc.model.named_modules() if n.endswith(("lora_A.default", "lora_B.default"))]


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_grad_forward_runs_the_lora_matmuls_at_the_precision_and_keeps_fp32_gradients(tiny_bert_dir, precision, dtype, output_dtypes):
    enc = lora_encoder(tiny_bert_dir)
    assert lora_linears(enc)
    live = LiveEncoderPath(enc, TEXTS, ["query"] * 3 + ["passage"] * 3, s_feat=2, precision=precision)
    live.train(True)
    out: list[torch.Tensor] = []
    assert set(output_dtypes(lora_linears(enc), lambda: out.append(live.slots(torch.tensor([4, 0, 5, 1]))))) == {dtype}
    slots = out[0]
    assert slots.dtype == torch.float32 and slots.requires_grad
    (slots[:, 0] * slots[:, 1]).sum().backward()
    grads = {n: p.grad for n, p in enc.model.named_parameters() if p.requires_grad}
    assert grads and all("lora_" in n for n in grads)
    for n, g in grads.items():
        assert g is not None and g.dtype == torch.float32 and bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0, n
    assert all(p.dtype == torch.float32 for p in live.parameters())  # the adapters themselves are never cast


def test_bf16_refresh_runs_in_bf16_and_returns_fp32_slots_close_to_fp32(tiny_bert_dir, output_dtypes):
    enc = lora_encoder(tiny_bert_dir)
    kinds = ["query"] * 3 + ["passage"] * 3
    base = torch.zeros(len(TEXTS), 2, enc.hidden_size)
    idx = torch.tensor([0, 2, 5])
    ref = LiveEncoderPath(enc, TEXTS, kinds, s_feat=2, precision="fp32").refreshed(base, idx)
    live = LiveEncoderPath(enc, TEXTS, kinds, s_feat=2, precision="bf16")
    out: list[torch.Tensor] = []
    assert set(output_dtypes(lora_linears(enc), lambda: out.append(live.refreshed(base, idx)))) == {torch.bfloat16}
    got = out[0]
    assert got.dtype == torch.float32 and not got.requires_grad
    assert torch.equal(got[[1, 3, 4]], base[[1, 3, 4]])  # rows not asked for are the base's
    # bf16 keeps ~3 significant digits: the same vectors, not the same bits.
    cos = torch.nn.functional.cosine_similarity(got[idx], ref[idx], dim=-1)
    assert float(cos.min()) > 0.99 and not torch.equal(got[idx], ref[idx])


def test_bf16_path_is_refused_off_the_cpu_and_the_setting_is_typed(tiny_bert_dir):
    enc = lora_encoder(tiny_bert_dir)
    enc.device = "cuda"  # as Encoder(device="cuda") records it; nothing runs, so no GPU is needed
    with pytest.raises(ValueError, match="CPU bf16 autocast"):
        LiveEncoderPath(enc, TEXTS, ["query"] * 6, s_feat=1, precision="bf16")
    LiveEncoderPath(enc, TEXTS, ["query"] * 6, s_feat=1, precision="fp32")  # fp32 runs anywhere
    with pytest.raises(ValueError, match="train precision"):
        LiveEncoderPath(enc, TEXTS, ["query"] * 6, s_feat=1, precision="fp16")
    with pytest.raises(ValueError):
        LoraConfig(train_precision="fp16")
    assert LoraConfig(train_precision="fp32").train_precision == "fp32"


def test_the_trainer_runs_bf16_on_the_cpu_and_fp32_elsewhere(caplog):
    from lira.train.arca_run import train_precision

    assert train_precision("bf16", "cpu") == "bf16" and train_precision("fp32", "cpu") == "fp32"
    assert train_precision("fp32", "cuda") == "fp32" and not caplog.records
    with caplog.at_level("WARNING"):
        assert train_precision("bf16", "cuda") == "fp32"
    assert "run fp32" in caplog.text and "cuda" in caplog.text
