"""Fixtures shared by the encoder tests: a frozen tiny-BERT encoder."""

import pytest

from lira.encoders import Encoder, EncoderSettings


@pytest.fixture()
def encoder(tiny_bert_dir):
    # fp32 spelled out: the reference engine (the default, auto, would run a parity check first)
    enc = Encoder(EncoderSettings(spec=f"hf:{tiny_bert_dir}", max_length=32, batch_size=2, precision="fp32"))
    enc.freeze()
    return enc

