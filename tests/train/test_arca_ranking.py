"""The measured recipe wired into train_arca: translation ranking, duplicate-free batches, the
English-negative queue, LoRA for ``lora_epochs`` only, and LaSR's two-path stopping signal."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_arca_trainer import CFG, SEED, synthetic  # noqa: E402

from lira.arca.config import ArcaConfig
from lira.train.arca import ArcaData, epoch_batches, train_arca
from lira.train.arca_run import text_ids
from lira.train.common import Checkpointer, Interrupt
from lira.train.lasr import stop_value


def keyed(data: ArcaData, n_sources: int = 40) -> ArcaData:
    """``data`` with ids: source texts repeat (n rows, ``n_sources`` distinct texts), and candidate 2
    is one text shared by every row (a duplicate target, which must never be a negative)."""
    n, k = data.mask.shape
    src = torch.arange(n) % n_sources
    cand = torch.stack([torch.arange(n) * 3, torch.arange(n) * 3 + 1, torch.full((n,), 10**6)], 1)
    return ArcaData(**{**data.__dict__, "src_key": src, "cand_key": cand[:, :k]})


def test_text_ids_map_equal_texts_to_equal_ids_and_none_to_minus_one():
    assert text_ids(["a", "b", None, "a", "c", "b"]) == [0, 1, -1, 0, 2, 1]


def test_epoch_batches_hold_no_source_text_twice_and_are_full():
    data = keyed(synthetic(n=160), n_sources=30)
    batches = epoch_batches(data, 16, torch.Generator().manual_seed(0))
    assert batches and all(len(b) == 16 for b in batches)
    for b in batches:
        keys = data.src_key[b].tolist()
        assert len(set(keys)) == len(keys)
        assert set(b.tolist()) <= set(data.train_idx.tolist())
    # the same generator state draws the same batches (what resuming relies on)
    again = epoch_batches(data, 16, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    # without ids: the plain shuffle, full batches only
    plain = epoch_batches(synthetic(n=160), 32, torch.Generator().manual_seed(0))
    assert [len(b) for b in plain] == [32] * (120 // 32)


def test_ranking_term_is_trained_and_changes_the_result():
    data = keyed(synthetic())
    on = train_arca(data, ArcaConfig(**CFG, lambda_rank=1.0, rank_queue=64), n_langs=2, seed=SEED)
    off = train_arca(data, ArcaConfig(**CFG, lambda_rank=0.0), n_langs=2, seed=SEED)
    assert all(r["rank"] > 0 for r in on.history if r["epoch"] >= 0)
    assert all(r["rank"] == 0 for r in off.history if r["epoch"] >= 0)
    w_on, w_off = on.adaptors.state_dict(), off.adaptors.state_dict()
    assert any(not torch.allclose(w_on[k], w_off[k]) for k in w_on)


def test_identical_translations_are_never_negatives_in_the_batch_nor_from_the_queue():
    # Every candidate is one and the same English text: once duplicates are masked, each row's
    # only logit is its positive, so L_rank is exactly 0 - unless an in-batch or queued copy of
    # its own translation were counted as a negative.
    data = synthetic()
    same = ArcaData(**{**data.__dict__, "src_key": torch.arange(len(data.lang)),
                       "cand_key": torch.zeros_like(data.mask, dtype=torch.long)})
    res = train_arca(same, ArcaConfig(**CFG, lambda_rank=1.0, rank_queue=64, rank_symmetric=True), n_langs=2, seed=SEED)
    assert all(r["rank"] == 0.0 for r in res.history if r["epoch"] >= 0)
    distinct = train_arca(keyed(data), ArcaConfig(**CFG, lambda_rank=1.0, rank_queue=64), n_langs=2, seed=SEED)
    assert all(r["rank"] > 0 for r in distinct.history if r["epoch"] >= 0)


def test_resume_with_ranking_queue_and_duplicate_free_batches_equals_uninterrupted(tmp_path):
    data = keyed(synthetic())
    cfg = ArcaConfig(**CFG, lambda_rank=1.0, rank_queue=48)
    full = train_arca(data, cfg, n_langs=2, seed=SEED, checkpointer=Checkpointer(tmp_path / "a", "k"))

    def kill(epoch, row):
        if epoch == 2:
            raise Interrupt()

    ck = Checkpointer(tmp_path / "b", "k")
    with pytest.raises(Interrupt):
        train_arca(data, cfg, n_langs=2, seed=SEED, checkpointer=ck, on_epoch=kill)
    resumed = train_arca(data, cfg, n_langs=2, seed=SEED, checkpointer=ck)
    assert resumed.resumed_from == 2
    assert [r["loss"] for r in resumed.history if r["epoch"] >= 0] == pytest.approx([r["loss"] for r in full.history if r["epoch"] >= 0])
    for (n1, p1), (n2, p2) in zip(full.adaptors.state_dict().items(), resumed.adaptors.state_dict().items()):
        assert torch.equal(p1, p2), n1


def test_recipe_defaults_are_the_config_defaults():
    from lira.config import parse_params

    cfg = ArcaConfig()
    assert (cfg.lambda_rank, cfg.rank_scale, cfg.rank_margin, cfg.rank_symmetric, cfg.rank_queue, cfg.lora_epochs) == (
        1.0, 50.0, 0.05, True, 256, 1)
    lrl = parse_params({}).encoder("lrl").lora
    assert lrl.enabled and lrl.r == 8 and lrl.lr == 2e-4 and lrl.dropout == 0.0
    assert not parse_params({}).encoder("en").lora.enabled  # English stays the frozen anchor
    with pytest.raises(ValueError):
        ArcaConfig(rank_margin=-0.1)
    with pytest.raises(ValueError):
        ArcaConfig(rank_scale=0.0)


def test_lora_trains_for_lora_epochs_only_then_stays_fixed(tiny_bert_dir):
    from test_arca_lora import data_for, lora_encoder, texts

    from lira.train.live import LiveEncoderPath

    src = texts(32, seed=1)
    enc = lora_encoder(tiny_bert_dir)
    live = LiveEncoderPath(enc, src, ["query"] * 32, 2, precision="fp32")
    states = []
    cfg = ArcaConfig(d=16, residual=False, epochs=3, batch_size=8, patience=3, lr=5e-3, dropout=0.0, lora_epochs=1)
    train_arca(data_for(enc, src), cfg, 2, SEED, live=live, on_epoch=lambda e, r: states.append(live.state_dict()))
    assert len(states) == 3
    assert any(float(v.abs().sum()) > 0 for k, v in states[0].items() if "lora_B" in k)  # epoch 0 tuned it
    for later in states[1:]:
        assert all(torch.equal(later[k], states[0][k]) for k in states[0])  # then it no longer moves


def test_lasr_stop_value_never_keeps_an_epoch_with_a_path_below_the_start():
    start = {"epoch": -1, "dev_ndcg10": 0.80, "dev_ndcg10_lrl_only": 0.70}
    better_fused_worse_lrl = {"epoch": 0, "dev_ndcg10": 0.95, "dev_ndcg10_lrl_only": 0.69}
    both_up = {"epoch": 1, "dev_ndcg10": 0.81, "dev_ndcg10_lrl_only": 0.71}
    v0 = stop_value(start, start, "both")
    assert v0 == pytest.approx(0.75)
    assert stop_value(better_fused_worse_lrl, start, "both") < v0  # fused alone would have kept it
    assert stop_value(better_fused_worse_lrl, start, "fused") > stop_value(start, start, "fused")
    assert stop_value(both_up, start, "both") > v0
    assert stop_value({"epoch": 2, "dev_ndcg10": float("nan"), "loss": 3.0}, start, "both") == -3.0
    assert math.isfinite(stop_value({"epoch": 0, "dev_ndcg10": 0.5}, None, "both"))


def test_lasr_history_records_the_lrl_only_signal_and_the_kept_epoch_respects_it():
    from test_lasr_trainer import make_net
    from test_lasr_trainer import synthetic as lasr_synthetic

    from lira.lasr.config import LasrConfig
    from lira.train.lasr import train_lasr

    res = train_lasr(lasr_synthetic(), make_net(), LasrConfig(d_model=16, n_heads=2, epochs=3, batch_size=8, patience=3,
                                                              corr_queue=16, doc_queue=32), seed=0)
    rows = {r["epoch"]: r for r in res.history}
    assert all("dev_ndcg10_lrl_only" in r for r in res.history)
    kept, start = rows[res.best_epoch], rows[-1]
    assert kept["dev_ndcg10"] >= start["dev_ndcg10"] and kept["dev_ndcg10_lrl_only"] >= start["dev_ndcg10_lrl_only"]
