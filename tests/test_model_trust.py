"""Loading a model folder runs no code from it: remote code only when the caller asks, and the
backbone it names must have the content hash recorded when the model was saved."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "tracking"))

from lira_testkit import build_lira_folder

from lira.integrity import IntegrityError
from lira.model import LiraModel

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
