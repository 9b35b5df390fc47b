"""Helpers shared by the tracking and API tests (imported by tests/tracking/conftest.py and
tests/test_api.py): a throwaway MLflow sqlite store and a tiny, untrained LiRA model folder."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_TEMPLATE: Path | None = None


def fresh_store(folder: Path) -> str:
    """A sqlite tracking URI in ``folder``, copied from a store migrated once per test process.

    Creating an MLflow sqlite store runs its alembic migrations (~8 s); a copy opens in 0.1 s.
    """
    global _TEMPLATE
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if _TEMPLATE is None:
        from mlflow import MlflowClient

        tmp_dir = tempfile.mkdtemp(prefix="lira-mlflow-template-")
        atexit.register(shutil.rmtree, tmp_dir, ignore_errors=True)
        tmp = Path(tmp_dir) / "template.db"
        MlflowClient(f"sqlite:///{tmp}").search_experiments()
        _TEMPLATE = tmp
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(_TEMPLATE, folder / "mlruns.db")
    return f"sqlite:///{folder / 'mlruns.db'}"


def build_lira_folder(
    folder: Path, bert_dir: Path, languages=("vi", "th"), s_feat: int = 2, d: int = 16, seed: int = 0,
    anchor_lang: bool = True, residual: bool = False,
) -> Path:
    """A random (untrained) LiRA model over the tiny BERT on both paths (the head with an
    anchor-language entry unless ``anchor_lang`` is False; ``residual``: the zero-initialised
    residual adaptor and head at the encoder's width 32, i.e. the untrained default LiRA)."""
    import torch

    from lira.arca import AnchorAdaptors
    from lira.config import parse_params
    from lira.lasr.head import LaSRHead
    from lira.lasr.net import LiraNet
    from lira.model import save_lira_model
    from lira.train.lasr_run import model_meta

    spec = f"hf:{bert_dir}"
    params = parse_params(
        {
            "shared": {
                "languages": list(languages),
                "s_feat": s_feat,
                "encoders": {"lrl": {"spec": spec}, "en": {"spec": spec}},
            },
            "train_arca": {"d": d},
            "train_lasr": {"n_layers": 1, "n_heads": 2, "dropout": 0.0},
        }
    )
    cfg = params.train_lasr
    torch.manual_seed(seed)
    width = 32 if residual else d
    adaptors = AnchorAdaptors(32, 32, width, shared=True, hidden=None, dropout=0.0, residual=residual)
    # the head runs at width d (an input projection when the adaptor is wider)
    head = LaSRHead(
        d, len(languages), s_feat, n_layers=cfg.n_layers, n_heads=cfg.n_heads, dropout=cfg.dropout, d_in=width,
        residual=residual, anchor_lang=anchor_lang,
    )
    net = LiraNet(adaptors, head).eval()
    save_lira_model(folder, net, model_meta(params.shared, "full", ["sim"]))
    return folder
