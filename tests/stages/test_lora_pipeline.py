"""The LoRA path through the real stages: train_arca tunes the LRL encoder, train_lasr and evaluate
read the LRL path through the tuned adapter, and the model folder carries it.

A tiny BERT (built by the test session) is both encoders, so all six stages run in seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lira.config import load_params
from lira.sample import SAMPLE_DIR
from lira.stages import run_stage

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lora_project(tmp_path_factory, tiny_bert_dir):
    root = tmp_path_factory.mktemp("lora-proj")
    shutil.copytree(SAMPLE_DIR, root / "data" / "raw" / "sample", ignore=shutil.ignore_patterns("*.md"))
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["shared"]["languages"] = ["th", "vi"]
    data["shared"]["paths"]["cache"] = str(root / ".cache")
    for path in ("lrl", "en"):
        # fp32: precision auto picks per CPU, and the tiny run's numbers should not depend on the machine
        data["shared"]["encoders"][path].update(spec=f"hf:{tiny_bert_dir}", precision="fp32")
    data["shared"]["encoders"]["lrl"]["lora"] = {**data["shared"]["encoders"]["lrl"]["lora"], "enabled": True, "r": 4,
                                                 "lr": 1e-2, "train_precision": "fp32"}
    data["build_dataset"]["max_per_language"] = 10
    # LoRA both epochs; residual start (d: the encoder width). eps1 and batch 8 (twice the steps of 16)
    # so that the tiny run keeps a trained epoch: its tokenizer, trained anew each session, is not
    # deterministic (WordPiece's ties: conftest.build_tiny_bert), and at batch 16 two tokenizers in 8
    # lowered dev eps1 in no epoch (9 in 9 did at batch 8).
    data["train_arca"].update(epochs=2, lora_epochs=2, batch_size=8, d=None, stop_on="eps1")
    data["train_lasr"].update(epochs=1, batch_size=8, d_model=16, ablations=["no_queue", "no_embedding_critic"],
                              corr_queue=16, doc_queue=32)
    data["evaluate"].update(bootstrap_resamples=100, distill_epochs=2)
    data["tracking"]["enabled"] = False
    (root / "params.yaml").write_text(yaml.safe_dump(data))
    params = load_params(root / "params.yaml")
    for s in ("build_dataset", "translate", "critic_score", "train_arca", "train_lasr", "evaluate"):
        run_stage(s, params, root)
    return root, params


def test_train_arca_writes_the_tuned_adapter(lora_project):
    from lira.encoders.lora import adapter_sha256

    root, _ = lora_project
    arca = root / "models/arca"
    cfg = json.loads((arca / "config.json").read_text())
    assert cfg["lora_lrl"]["sha256"] == adapter_sha256(arca / "lora_lrl")
    # the cache holds features of the frozen encoder and, under their own key, of the tuned one
    keys = [p.name for p in (root / ".cache/features").iterdir()]
    assert any(k.endswith("-lora") or "-lora-" in k for k in keys) and any("lora" not in k for k in keys)


def test_variants_that_share_arca_share_its_adapter_and_others_train_their_own(lora_project):
    from lira.encoders.lora import adapter_sha256

    root, _ = lora_project
    sha = {v: adapter_sha256(root / f"models/lasr/{v}/lora_lrl") for v in ("full", "no_queue", "no_embedding_critic")}
    assert sha["full"] == sha["no_queue"] == adapter_sha256(root / "models/arca/lora_lrl")
    # no_embedding_critic changes what Arca sees, so it ran its own Arca (its own checkpoint key) next
    # to the one train_arca, full and no_queue share. Its adapter's bytes are not compared: where the
    # tiny run's actor picks the same translations, the LoRA steps are the same and so are the bytes.
    assert len(list((root / ".cache/checkpoints/arca").glob("*.safetensors"))) == 2
    for v, h in sha.items():
        meta = json.loads((root / f"models/lasr/{v}/lira_model.json").read_text())
        assert meta["encoders"]["lrl"]["adapter"] == "lora_lrl" and meta["encoders"]["lrl"]["adapter_sha256"] == h
        assert "adapter" not in meta["encoders"]["en"]


def test_model_folder_embeds_through_its_adapter_as_evaluate_scored_it(lora_project):
    from lira.eval.suite import model_inputs
    from lira.model import LiraModel, load_net
    from lira.train.arca_run import load_inputs

    root, params = lora_project
    arca = json.loads((root / "metrics/arca.json").read_text())
    # with the untrained start kept the adapter is zero and the last assertion below cannot hold
    assert arca["best_epoch"] >= 0, f"the tiny run kept its untrained start: {arca}"
    folder = root / "models/lasr/full"
    model = LiraModel.load(folder, cache_dir=root / ".cache")
    assert model.lrl is not model.en  # the LRL encoder is the tuned one, English stays frozen

    inputs = load_inputs(params.shared, root, progress=False)
    net, _, meta = load_net(folder)
    tuned = model_inputs(params.shared, root, inputs, folder, meta)
    rows = np.flatnonzero((inputs.texts["lang"] == "th").to_numpy() & (inputs.texts["role"] == "query").to_numpy())[:6]
    lang = torch.zeros(len(rows), dtype=torch.long)
    with torch.no_grad():
        want = net.lrl_only(torch.from_numpy(tuned.lr_slots[rows]), lang).numpy()
        frozen = net.lrl_only(torch.from_numpy(inputs.lr_slots[rows]), lang).numpy()
    got = model.embed(inputs.texts["text"].iloc[rows].tolist(), "th", kind="query")
    assert np.allclose(got, want, atol=2e-3)  # the stage's cache keeps float16 slots
    assert not np.allclose(got, frozen, atol=2e-3)

    ev = json.loads((root / "metrics/evaluate.json").read_text())
    assert {"lira", "frozen", "ablation:no_queue", "ablation:no_embedding_critic"} <= set(ev["systems"])


def test_a_changed_adapter_is_refused_at_load(lora_project, tmp_path):
    from lira.model import LiraModel

    root, _ = lora_project
    copy = tmp_path / "model"
    shutil.copytree(root / "models/lasr/full", copy)
    w = copy / "lora_lrl/adapter_model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[:-4] + bytes(b ^ 0xFF for b in data[-4:]))  # flipped: changed whatever they were
    # the manifest names the changed file before the adapter's own hash is even read
    with pytest.raises(ValueError, match="adapter_model.safetensors: content differs from its sha256 in manifest.json"):
        LiraModel.load(copy, cache_dir=root / ".cache")
