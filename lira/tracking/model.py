"""A LiRA model folder as an MLflow pyfunc, logged under a run and registered with its gate record.

The pyfunc wraps :class:`lira.model.LiraModel` and carries two artifacts:

* ``lira_model`` - the ``lira-model/1`` folder (adaptors + LaSR + Actor weights, encoder specs);
* ``gate`` - ``gate.json``, the per-query values of the gate metric on the evaluation queries
  (and those of the frozen-encoder baseline), which :mod:`lira.tracking.registry` compares
  between a candidate version and the champion.

Input of ``predict``: a DataFrame with columns ``text``, ``lang`` and optional ``kind``
(query | passage, default query) and ``translation`` (an English translation, empty or missing
for none). Output: the fused LiRA embeddings z, float32 ``[N, d]``, unit norm.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from lira.config import Params
from lira.tracking import runs

GATE_FILE = "gate.json"
MODEL_NAME = "model"
TAG_MANIFEST = "lira.manifest_sha256"


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or (isinstance(x, str) and not x.strip())


class LiraPyfunc(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame[text, lang, (kind), (translation)]) -> float32 [N, d]`` via LiraModel.embed."""

    def __init__(self, manifest_sha256: str | None = None):
        super().__init__()
        self.manifest_sha256 = manifest_sha256

    def load_context(self, context) -> None:
        from lira.model import LiraModel

        # the manifest hash known at logging time: the artifacts must be the files that were logged
        self.model = LiraModel.load(context.artifacts["lira_model"], manifest_sha256=getattr(self, "manifest_sha256", None))

    def __getstate__(self) -> dict[str, Any]:
        # The loaded LiraModel (encoder weights included) is rebuilt by load_context from the
        # artifacts; pickling it would put ~480 MB of tensors into python_model.pkl.
        state = self.__dict__.copy()
        state.pop("model", None)
        return state

    # the DataFrame hint tells MLflow not to warn that type hints are missing (log_lira_model
    # states the signature itself)
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        for col in ("text", "lang"):
            if col not in df.columns:
                raise ValueError(
                    f"lira pyfunc: input needs columns text and lang (and optional kind, translation); got {list(df.columns)}"
                )
        n = len(df)
        kinds = df["kind"].tolist() if "kind" in df.columns else ["query"] * n
        kinds = ["query" if _missing(k) else str(k) for k in kinds]
        bad = sorted(set(kinds) - {"query", "passage"})
        if bad:
            raise ValueError(f"lira pyfunc: kind must be query or passage, got {bad}")
        trans = df["translation"].tolist() if "translation" in df.columns else [None] * n
        trans = [None if _missing(t) else str(t) for t in trans]
        texts, langs = df["text"].astype(str).tolist(), df["lang"].astype(str).tolist()
        out = np.zeros((n, self.model.net.head.d_in), np.float32)
        # one embed call per (kind, translated?) group: the prefix depends on kind, and LiraModel
        # takes the English path only when translations are given
        groups: dict[tuple[str, bool], list[int]] = {}
        for i in range(n):
            groups.setdefault((kinds[i], trans[i] is not None), []).append(i)
        for (kind, has_en), idx in groups.items():
            out[idx] = self.model.embed(
                [texts[i] for i in idx],
                [langs[i] for i in idx],
                kind=kind,
                translations=[trans[i] for i in idx] if has_en else None,
            )
        return out


def validate_gate(gate: dict) -> dict:
    """Check a gate record: ``metric``, ``query_ids`` and as many finite ``values`` (and baselines)."""
    for key in ("metric", "query_ids", "values"):
        if key not in gate:
            raise ValueError(f"gate record needs {key!r}; got keys {sorted(gate)}")
    ids, values = list(gate["query_ids"]), list(gate["values"])
    if len(ids) != len(values):
        raise ValueError(f"gate record: {len(ids)} query_ids but {len(values)} values")
    if len(set(ids)) != len(ids):
        raise ValueError("gate record: query_ids are not unique")
    for name, base in (gate.get("baselines") or {}).items():
        if len(base) != len(ids):
            raise ValueError(
                f"gate record: baseline {name!r} has {len(base)} values for {len(ids)} query_ids"
            )
    for name, vals in [("values", values), *((gate.get("baselines") or {}).items())]:
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in vals):
            raise ValueError(f"gate record: {name} must be finite numbers")
    return {
        "metric": str(gate["metric"]),
        "query_ids": [str(q) for q in ids],
        "values": [float(v) for v in values],
        "baselines": {k: [float(v) for v in b] for k, b in (gate.get("baselines") or {}).items()},
        **{k: v for k, v in gate.items() if k not in ("metric", "query_ids", "values", "baselines")},
    }


def pip_requirements() -> list[str]:
    import torch
    import transformers

    return [
        "lira",
        f"torch=={torch.__version__.split('+')[0]}",
        f"transformers=={transformers.__version__}",
        "safetensors",
        "pandas",
        "numpy",
    ]


def input_example(model_dir: Path) -> pd.DataFrame:
    langs = json.loads((Path(model_dir) / "lira_model.json").read_text(encoding="utf-8"))["languages"]
    lang = langs[0]
    # one missing kind and one missing translation: the inferred signature then marks both
    # columns optional (a missing kind means "query", a missing translation "LRL path only")
    return pd.DataFrame(
        {
            "text": ["a short query", "a longer passage about a product", "another query"],
            "lang": [lang] * 3,
            "kind": ["query", "passage", None],
            "translation": [None, "a longer passage about a product", None],
        }
    )


def model_signature(model_dir: Path, example: pd.DataFrame):
    """The pyfunc's signature: the example's columns in, float32 ``[N, d]`` out.

    Left to itself, MLflow infers this by loading the model (an encoder, ~450 MB for mE5-small)
    and predicting on the input example; the output's dtype and width ``d`` (the adaptor width,
    which is LaSR's ``d_in``) are known from ``lira_model.json``, so the same signature is built
    from an array of that shape.
    """
    from mlflow.models import infer_signature

    d = json.loads((Path(model_dir) / "lira_model.json").read_text(encoding="utf-8"))["arca"]["d"]
    return infer_signature(example, np.zeros((len(example), d), np.float32))


def log_lira_model(params: Params, root: str | Path, model_dir: str | Path, run_id: str, gate: dict) -> str:
    """Log ``model_dir`` as the pyfunc "model" under ``run_id`` with ``gate.json``; register it.

    Returns the new version of ``tracking.registered_model`` (a string, as MLflow numbers them).
    """
    import mlflow

    model_dir = Path(model_dir)
    if not (model_dir / "lira_model.json").exists():
        raise FileNotFoundError(f"{model_dir}: not a lira model folder (no lira_model.json)")
    gate = validate_gate(gate)
    if gate["metric"] != params.tracking.gate_metric:
        raise ValueError(
            f"gate metric {gate['metric']!r} differs from tracking.gate_metric {params.tracking.gate_metric!r}"
        )
    from lira.model import manifest_sha256, verify_manifest

    verify_manifest(model_dir)  # never register a folder that does not match its own manifest
    manifest = manifest_sha256(model_dir)
    c = runs.client(params, root)
    example = input_example(model_dir)
    with tempfile.TemporaryDirectory(prefix="lira-gate-") as tmp:
        gate_path = Path(tmp) / GATE_FILE
        gate_path.write_text(json.dumps(gate, indent=2), encoding="utf-8")
        c.log_artifact(run_id, str(gate_path))
        # The fluent log_model files the model under the ACTIVE run's experiment (with no active
        # run it would land in experiment 0, whose sqlite default is the CWD's ./mlruns), so the
        # run is resumed for the call; nested keeps a caller's own active run untouched.
        with (
            runs.using_tracking_uri(runs.tracking_uri(params, root)),
            mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None),
        ):
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                registered_model_name=params.tracking.registered_model,
                python_model=LiraPyfunc(manifest),
                artifacts={"lira_model": str(model_dir), "gate": str(gate_path)},
                pip_requirements=pip_requirements(),
                input_example=example,
                signature=model_signature(model_dir, example),
                await_registration_for=0,
            )
    version = str(info.registered_model_version)
    # what loading from the registry checks the downloaded folder against (lira.api)
    c.set_model_version_tag(params.tracking.registered_model, version, TAG_MANIFEST, manifest)
    c.set_model_version_tag(params.tracking.registered_model, version, "gate.metric", gate["metric"])
    c.set_model_version_tag(
        params.tracking.registered_model, version, "gate.mean", f"{np.mean(gate['values']):.6f}"
    )
    return version
