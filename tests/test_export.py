"""lira export --format sentence-transformers: a folder that sentence-transformers loads alone (no lira
import, no remote code) and that gives lira embed's vectors; LiRA models are refused (their LaSR head
is not a stock module) unless their encoder stage is asked for; the MTEB wrapper's interface."""

from __future__ import annotations

import enum
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "tracking"))

from lira_testkit import build_lira_folder

from lira import api
from lira.cli import app
from lira.encoders import Encoder, EncoderSettings
from lira.encoders.precision import MIN_COSINE
from lira.export import MTEBEncoder, export_sentence_transformers
from lira.model import LiraModel

TEXTS = ["Điện thoại này có pin rất tốt.", "โทรศัพท์เครื่องนี้แบตเตอรี่ดีมาก", "sạc dự phòng 20000 mAh"]

# Runs in a fresh interpreter: sentence-transformers alone, lira never imported.
ST_ONLY = """
import json, sys
from sentence_transformers import SentenceTransformer
m = SentenceTransformer(sys.argv[1], trust_remote_code=False, local_files_only=True, device="cpu")
texts = json.loads(sys.argv[2]); task = sys.argv[3] or None
kw = {"task": task} if task else {}
q = m.encode(texts, **kw)
p = m.encode(texts, prompt_name="passage", **kw)
assert not [k for k in sys.modules if k == "lira" or k.startswith("lira.")], "lira was imported"
print(json.dumps({"query": q.tolist(), "passage": p.tolist()}))
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LIRA_CACHE", str(tmp_path / "cache"))


def _st_encode(folder: Path, texts: list[str], task: str = "") -> dict[str, np.ndarray]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    res = subprocess.run([sys.executable, "-c", ST_ONLY, str(folder), json.dumps(texts), task], env=env, cwd=folder.parent,
                         capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}


def _lira_embed(model: str, kind: str, params: Path, lang: str | None = None) -> np.ndarray:
    args = ["embed", "--model", model, "--kind", kind, "--params", str(params)] + (["--lang", lang] if lang else [])
    for t in TEXTS:
        args += ["--text", t]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return np.asarray(json.loads(res.stdout)["embeddings"], dtype=np.float32)


def _fp32(encoder):
    """A loaded (unfrozen) encoder switched to its fp32 engine: the weights the export writes."""
    from lira.encoders.precision import Engine

    encoder.engine = Engine("fp32")
    return encoder


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_an_encoder_exports_to_sentence_transformers_with_lira_embeds_vectors(tmp_path, tiny_bert_dir):
    spec, none = f"hf:{tiny_bert_dir}", tmp_path / "none.yaml"
    res = CliRunner().invoke(app, ["export", spec, str(tmp_path / "st"), "--format", "sentence-transformers",
                                   "--params", str(none)])
    assert res.exit_code == 0, res.output
    modules = json.loads((tmp_path / "st" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert all(m["type"].startswith("sentence_transformers.") for m in modules)  # stock modules only
    got = _st_encode(tmp_path / "st", TEXTS)
    ref = Encoder(EncoderSettings(spec=spec, precision="fp32"), tmp_path / "cache")
    for kind in ("query", "passage"):
        # The export carries the fp32 weights: lira's fp32 engine gives its vectors; lira's default
        # engine (auto: bf16 weights where the CPU has bf16 kernels) stays within the parity budget.
        np.testing.assert_allclose(got[kind], ref.embed(TEXTS, kind=kind), atol=2e-6)
        assert _cos(got[kind], _lira_embed(spec, kind, none)).min() >= MIN_COSINE
    assert _cos(got["query"], got["passage"]).max() < 0.9999  # the prompt really differs per kind


def test_a_lira_model_is_refused_unless_its_encoder_stage_is_asked_for(tmp_path, tiny_bert_dir):
    folder = build_lira_folder(tmp_path / "full", tiny_bert_dir, languages=("vi", "th"))
    none = tmp_path / "none.yaml"
    res = CliRunner().invoke(app, ["export", str(folder), str(tmp_path / "st"), "--params", str(none)])
    assert res.exit_code == 1 and "LaSR head" in res.stderr and "--encoder-only" in res.stderr
    assert not (tmp_path / "st").exists()
    summary = export_sentence_transformers(str(folder), tmp_path / "st", params_path=none, encoder_only=True)
    assert summary["exported"].startswith("LiRA encoder stage")
    got = _st_encode(tmp_path / "st", TEXTS)
    m = LiraModel.load(folder, tmp_path / "cache")
    assert _cos(got["query"], m.lrl.embed(TEXTS, "query")).min() >= MIN_COSINE  # lira's default engine
    np.testing.assert_allclose(got["query"], _fp32(m.lrl).embed(TEXTS, "query"), atol=2e-6)
    # and this is not LiRA's embedding (which the export says): the head changes the vectors
    assert not np.allclose(got["query"][:, :16], m.embed(TEXTS, "vi"), atol=1e-3)


def _two_encoder_lira(folder: Path, lrl_dir: Path, en_dir: Path) -> Path:
    import torch

    from lira.arca import AnchorAdaptors
    from lira.config import parse_params
    from lira.lasr.head import LaSRHead
    from lira.lasr.net import LiraNet
    from lira.model import save_lira_model
    from lira.train.lasr_run import model_meta

    params = parse_params({"shared": {"languages": ["vi", "th"], "s_feat": 1,
                                      "encoders": {"lrl": {"spec": f"hf:{lrl_dir}"}, "en": {"spec": f"hf:{en_dir}"}}},
                           "train_arca": {"d": 32}, "train_lasr": {"n_layers": 1, "n_heads": 2, "dropout": 0.0}})
    torch.manual_seed(0)
    net = LiraNet(AnchorAdaptors(32, 32, 32), LaSRHead(32, 2, 1, n_layers=1, n_heads=2, dropout=0.0, anchor_lang=True)).eval()
    save_lira_model(folder, net, model_meta(params.shared, "full", ["sim"]))
    return folder


def test_two_encoders_export_behind_a_router_keyed_by_language(tmp_path, tiny_bert_dir, tiny_bert_builder):
    en_dir = tiny_bert_builder(tmp_path / "en-bert", layers=1)  # another backbone: the encoders differ
    folder = _two_encoder_lira(tmp_path / "full", tiny_bert_dir, en_dir)
    none = tmp_path / "none.yaml"
    summary = export_sentence_transformers(str(folder), tmp_path / "st", params_path=none, encoder_only=True)
    assert json.loads(summary["language"].split(": ", 1)[1]) == {"vi": "lrl", "th": "lrl", "en": "en"}
    m = LiraModel.load(folder, tmp_path / "cache")
    th, en = _st_encode(tmp_path / "st", TEXTS, task="th"), _st_encode(tmp_path / "st", TEXTS, task="en")
    np.testing.assert_allclose(th["query"], _fp32(m.lrl).embed(TEXTS, "query"), atol=2e-6)
    np.testing.assert_allclose(en["passage"], _fp32(m.en).embed(TEXTS, "passage"), atol=2e-6)
    assert not np.allclose(th["query"], en["query"], atol=1e-3)


class PromptType(enum.Enum):  # mteb's enum has these values
    query = "query"
    document = "document"


def test_mteb_wrapper_encodes_with_the_prompt_type(tmp_path, tiny_bert_dir):
    spec, none = f"hf:{tiny_bert_dir}", tmp_path / "none.yaml"
    enc = MTEBEncoder(spec, params_path=none)
    q = enc.encode(TEXTS, task_name="SomeTask", prompt_type=PromptType.query, batch_size=8)
    d = enc.encode([{"title": "", "text": t} for t in TEXTS], prompt_type=PromptType.document)
    assert q.dtype == np.float32 and q.shape == (3, 32)
    np.testing.assert_allclose(q, api.embed(TEXTS, spec, kind="query", params_path=none), atol=1e-6)
    np.testing.assert_allclose(d, api.embed(TEXTS, spec, kind="passage", params_path=none), atol=1e-6)
    np.testing.assert_allclose(enc.encode(TEXTS), q, atol=1e-6)  # no prompt type (STS): query
    with pytest.raises(ValueError, match="prompt_type"):
        enc.encode(TEXTS, prompt_type="summary")
    folder = build_lira_folder(tmp_path / "full", tiny_bert_dir, languages=("vi", "th"))
    lira_enc = MTEBEncoder(str(folder), lang="vi", params_path=none)
    np.testing.assert_allclose(lira_enc.encode(TEXTS), LiraModel.load(folder, tmp_path / "cache").embed(TEXTS, "vi"),
                               atol=1e-5)
    with pytest.raises(ValueError, match="needs the texts' language"):
        MTEBEncoder(str(folder), params_path=none).encode(TEXTS)


def test_mteb_wrapper_reads_mteb2_batches_and_scores_cosine(tmp_path, tiny_bert_dir):
    """mteb 2 passes a DataLoader of batches ({"text": [...]}), not a list of strings (the wrapper
    used to embed each batch's repr as one text); the language can come from mteb's hf_subset."""
    import torch
    from torch.utils.data import DataLoader

    spec, none = f"hf:{tiny_bert_dir}", tmp_path / "none.yaml"
    enc = MTEBEncoder(spec, params_path=none)
    rows = [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]
    loader = DataLoader(rows, batch_size=2, collate_fn=lambda b: {"id": [r["id"] for r in b], "text": [r["text"] for r in b]})
    got = enc.encode(loader, task_metadata=None, hf_split="test", hf_subset="default", prompt_type=PromptType.document)
    assert got.shape == (3, 32)
    np.testing.assert_allclose(got, api.embed(TEXTS, spec, kind="passage", params_path=none), atol=1e-6)
    sim = enc.similarity(got, got[:2])
    assert isinstance(sim, torch.Tensor) and sim.shape == (3, 2)
    np.testing.assert_allclose(sim.numpy(), got @ got[:2].T, atol=1e-5)
    np.testing.assert_allclose(enc.similarity_pairwise(got, got).numpy(), np.ones(3), atol=1e-5)
    with pytest.raises(TypeError, match="not one string"):
        enc.encode("one text")
    folder = build_lira_folder(tmp_path / "full", tiny_bert_dir, languages=("vi", "th"))
    lira_enc = MTEBEncoder(str(folder), params_path=none)
    np.testing.assert_allclose(lira_enc.encode(TEXTS, hf_subset="th"),
                               LiraModel.load(folder, tmp_path / "cache").embed(TEXTS, "th"), atol=1e-5)
    with pytest.raises(ValueError, match="needs the texts' language"):
        lira_enc.encode(TEXTS, hf_subset="default")  # a subset that is no language of the model
