"""Loading a model folder runs no code from it: remote code only when the caller asks, and the
backbone it names must have the content hash recorded when the model was saved."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "tracking"))

from lira_testkit import build_lira_folder

from lira.integrity import IntegrityError
from lira.model import LiraModel

GATE = {"format": "lira-gate/2", "test_set_sha256": "ab" * 32, "query_ids": ["q1", "q2", "q3"],
        "metrics": {"retrieval.ndcg@10": [0.5, 0.6, 0.7]}, "baselines": {"frozen": {"retrieval.ndcg@10": [0.4, 0.5, 0.5]}}}

EVIL = '''
import pathlib
pathlib.Path({marker!r}).write_text("code from the model folder ran")
from transformers import BertConfig, BertModel


class EvilConfig(BertConfig):
    model_type = "bert"


class EvilModel(BertModel):
    config_class = EvilConfig
'''


@pytest.fixture()
def bert(tiny_bert_dir, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_bert_dir, tmp_path / "bert"))


@pytest.fixture()
def folder(tmp_path, bert) -> Path:
    return build_lira_folder(tmp_path / "model", bert)


def _evil_backbone(tmp_path: Path, bert: Path, marker: Path) -> Path:
    evil = Path(shutil.copytree(bert, tmp_path / "evil"))
    (evil / "evil.py").write_text(EVIL.format(marker=str(marker)))
    cfg = json.loads((evil / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (evil / "config.json").write_text(json.dumps(cfg))
    return evil


def _rewrite_meta(folder: Path, **enc) -> None:
    meta_path = folder / "lira_model.json"
    meta = json.loads(meta_path.read_text())
    for path in ("lrl", "en"):
        meta["encoders"][path].update(enc)
    meta_path.write_text(json.dumps(meta))
    from lira.model import write_manifest

    write_manifest(folder)  # the manifest in the same folder is rewritten too: it cannot stop this


def test_a_folder_asking_for_remote_code_runs_none(tmp_path, bert, folder, monkeypatch):
    marker = tmp_path / "pwned"
    evil = _evil_backbone(tmp_path, bert, marker)
    _rewrite_meta(folder, spec=f"hf:{evil}", trust_remote_code=True)
    monkeypatch.setenv("LIRA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="trust_remote_code"):
        LiraModel.load(folder, tmp_path / "cache")
    assert not marker.exists()

    from typer.testing import CliRunner

    from lira.cli import app

    res = CliRunner().invoke(app, ["embed", "--model", str(folder), "--text", "x", "--lang", "vi",
                                   "--params", str(tmp_path / "none.yaml")])
    assert res.exit_code != 0 and "--trust-remote-code" in res.output
    assert not marker.exists()


def test_the_backbone_is_checked_by_content_hash(tmp_path, bert, folder):
    import torch
    from transformers import BertModel

    meta = json.loads((folder / "lira_model.json").read_text())
    assert len(meta["encoders"]["lrl"]["backbone_sha256"]) == 64
    LiraModel.load(folder, tmp_path / "cache")  # unchanged: loads
    model = BertModel.from_pretrained(bert)
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    model.save_pretrained(bert)  # the same path, other weights
    with pytest.raises(IntegrityError, match=re.escape(f"backbone of encoder 'hf:{bert}'")):
        LiraModel.load(folder, tmp_path / "cache")


def test_explicit_trust_still_checks_the_backbone(tmp_path, bert, folder):
    marker = tmp_path / "pwned"
    evil = _evil_backbone(tmp_path, bert, marker)
    _rewrite_meta(folder, spec=f"hf:{evil}", trust_remote_code=True)
    with pytest.raises(IntegrityError, match="backbone"):
        LiraModel.load(folder, tmp_path / "cache", trust_remote_code=True)
    assert not marker.exists()


# ------------------------------------------------------------------------------ item 3: manifest
def test_a_tampered_file_is_refused_naming_it(tmp_path, folder):
    from safetensors.torch import load_file, save_file

    LiraModel.load(folder, tmp_path / "cache")
    weights = load_file(str(folder / "net.safetensors"))
    save_file({k: v.flip(0) if v.ndim else v for k, v in weights.items()}, str(folder / "net.safetensors"))
    with pytest.raises(IntegrityError, match=re.escape(str(folder / "net.safetensors"))):
        LiraModel.load(folder, tmp_path / "cache")


def test_unlisted_and_missing_files_and_no_manifest_are_refused(tmp_path, bert):
    f1 = build_lira_folder(tmp_path / "m1", bert)
    (f1 / "extra.py").write_text("print('hi')")
    with pytest.raises(IntegrityError, match="extra.py: not listed"):
        LiraModel.load(f1, tmp_path / "cache")
    f2 = build_lira_folder(tmp_path / "m2", bert)
    (f2 / "net.safetensors").unlink()
    with pytest.raises(IntegrityError, match="net.safetensors: listed in manifest.json but missing"):
        LiraModel.load(f2, tmp_path / "cache")
    f3 = build_lira_folder(tmp_path / "m3", bert)
    (f3 / "manifest.json").unlink()
    with pytest.raises(IntegrityError, match="manifest.json: missing"):
        LiraModel.load(f3, tmp_path / "cache")


def _with_adapter(folder: Path, bert: Path) -> Path:
    """Give a model folder a LoRA adapter on its LRL encoder (random, non-zero), re-saved with its manifest."""
    import torch

    from lira.encoders import Encoder, EncoderSettings
    from lira.encoders.lora import adapter_sha256, lora_state_dict, save_adapter
    from lira.model import save_lira_model

    net = LiraModel.load(folder).net
    enc = Encoder(EncoderSettings(spec=f"hf:{bert}"))
    enc.add_lora(r=2, alpha=4.0, dropout=0.0, target_modules=["query", "value"])
    torch.manual_seed(1)
    state = {k: torch.randn_like(v) for k, v in lora_state_dict(enc.model).items()}
    save_adapter(folder / "lora_lrl", enc.lora_config, state)
    meta = json.loads((folder / "lira_model.json").read_text())
    meta.pop("format")
    meta["encoders"]["lrl"].update(adapter="lora_lrl", adapter_sha256=adapter_sha256(folder / "lora_lrl"))
    save_lira_model(folder, net, meta)
    return folder


def test_the_registry_tag_closes_the_same_folder_loophole(tmp_path, bert, folder, monkeypatch):
    """A tampered adapter whose hash is rewritten in the same folder (lira_model.json and the
    manifest) passes a plain folder load, but a registry load checks the manifest against the tag."""
    import yaml
    from lira_testkit import fresh_store
    from safetensors.torch import load_file, save_file

    from lira import api
    from lira.config import load_params
    from lira.encoders.lora import adapter_sha256
    from lira.model import write_manifest
    from lira.tracking import runs
    from lira.tracking.model import TAG_MANIFEST, log_lira_model

    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "LIRA_MLFLOW_PARENT_RUN_ID"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(api, "_LOADED", {})
    _with_adapter(folder, bert)
    params_path = tmp_path / "proj" / "params.yaml"
    params_path.parent.mkdir()
    params_path.write_text(yaml.safe_dump({
        "shared": {"languages": ["vi", "th"]},
        "tracking": {"tracking_uri": fresh_store(tmp_path / "store"), "registered_model": "lira-trust"},
    }))
    params, root = load_params(params_path), params_path.parent
    run_id = runs.log_stage(params.tracking, root, "evaluate", {}, config=params.resolved(), paths=params.shared.paths)
    version = log_lira_model(params.tracking, root, folder, run_id, GATE)
    tag = runs.client(params.tracking, root).get_model_version("lira-trust", version).tags[TAG_MANIFEST]
    assert len(tag) == 64
    uri = f"models:/lira-trust/{version}"
    want = LiraModel.load(folder).embed(["Điện thoại"], "vi")
    np.testing.assert_allclose(api.embed(["Điện thoại"], uri, lang="vi", params_path=params_path), want, atol=1e-5)

    (local,) = {p.parent for p in (root / ".cache" / "lira" / "registry").glob("**/lira_model.json")}
    adapter = local / "lora_lrl" / "adapter_model.safetensors"
    w = load_file(str(adapter))
    save_file({k: v * 3 for k, v in w.items()}, str(adapter))
    meta = json.loads((local / "lira_model.json").read_text())
    meta["encoders"]["lrl"]["adapter_sha256"] = adapter_sha256(local / "lora_lrl")
    (local / "lira_model.json").write_text(json.dumps(meta))
    write_manifest(local)
    LiraModel.load(local)  # the same-folder rewrite is consistent: a plain folder load cannot tell
    monkeypatch.setattr(api, "_LOADED", {})
    with pytest.raises(IntegrityError, match="manifest.json: sha256 .* recorded when this model was registered"):
        api.embed(["Điện thoại"], uri, lang="vi", params_path=params_path)
