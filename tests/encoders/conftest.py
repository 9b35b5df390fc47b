"""Fixtures shared by the encoder tests: a frozen tiny-BERT encoder."""

import pytest

from lira.encoders import Encoder, EncoderSettings


@pytest.fixture()
def encoder(tiny_bert_dir):
    enc = Encoder(EncoderSettings(spec=f"hf:{tiny_bert_dir}", max_length=32, batch_size=2))
    enc.freeze()
    return enc

