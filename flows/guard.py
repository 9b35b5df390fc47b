"""What a Prefect flow run may change: an allow-list of training parameters, paths inside the project.

Anyone who can trigger a flow run (the Prefect UI's "Custom run", ``prefect deployment run
--param``) chooses its parameters, and the worker runs them with its own credentials. So a flow
run may not change how the pipeline loads code or reaches servers: ``trust_remote_code``, encoder
``spec``, translator/critic ``base_url`` / ``api_key_env``, sources and output ``paths`` belong to the
deployment's ``params.yaml`` (reviewed in git), never to a run's ``overrides``.

``ALLOWED_OVERRIDES`` lists the dotted keys a run may set; a key is allowed when it equals one of
them or lies below one (``train_arca.reward`` allows ``train_arca.reward.alpha``,
``train_lasr.ablations`` allows ``train_lasr.ablations.0``). Anything else is refused before the
workspace is touched, naming the key. The list is deliberately explicit (no ``train_arca.*``): a
parameter added to a section later is refused until someone decides it is safe to expose.

Paths: every path the run's params name (``shared.paths.*``, ``build_dataset.sources[].path``,
``evaluate.external[].path``) must be relative and stay inside the project root once resolved
(symlinks included); an absolute path or a ``..`` escape is refused. And when the worker pins its
checkout with ``$LIRA_ROOT``, a run's ``root`` parameter may not point anywhere else: a foreign
``dvc.yaml`` is a list of commands the worker would run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from lira.config import ConfigError, Params

# The training parameters a flow run may override (see the module docstring and infra/README.md).
ALLOWED_OVERRIDES: tuple[str, ...] = (
    # shared: what to train on and with which backbone size; not encoder specs, remote code or paths
    "shared.languages",
    "shared.seed",
    "shared.device",
    "shared.threads",
    "shared.preset",
    "shared.s_feat",
    "shared.encoders.lrl.lora",
    "shared.encoders.lrl.batch_size",
    "shared.encoders.en.batch_size",
    # build_dataset: the split and the smoke-test cap; not the sources (paths) or the bad-row policy
    "build_dataset.split",
    "build_dataset.max_per_language",
    # train_arca
    "train_arca.d",
    "train_arca.residual",
    "train_arca.adaptor_hidden",
    "train_arca.dropout",
    "train_arca.shared_adaptor",
    "train_arca.stop_grad_en",
    "train_arca.actor_hidden",
    "train_arca.actor_extra_features",
    "train_arca.baseline",
    "train_arca.reward",
    "train_arca.use_llm_critic",
    "train_arca.use_embedding_critic",
    "train_arca.eta",
    "train_arca.lambda_var",
    "train_arca.var_target",
    "train_arca.lambda_nce",
    "train_arca.nce_temperature",
    "train_arca.lr",
    "train_arca.weight_decay",
    "train_arca.epochs",
    "train_arca.batch_size",
    "train_arca.patience",
    # train_lasr
    "train_lasr.d_model",
    "train_lasr.residual",
    "train_lasr.n_layers",
    "train_lasr.n_heads",
    "train_lasr.dropout",
    "train_lasr.path_dropout",
    "train_lasr.corr_queue",
    "train_lasr.corr_a",
    "train_lasr.corr_tau",
    "train_lasr.doc_queue",
    "train_lasr.top_m",
    "train_lasr.ndcg_k",
    "train_lasr.ndcg_tau",
    "train_lasr.margin",
    "train_lasr.temperature",
    "train_lasr.lambda_corr",
    "train_lasr.lambda_rank",
    "train_lasr.lambda_hinge",
    "train_lasr.lambda_var",
    "train_lasr.lambda_cons",
    "train_lasr.lambda_anchor",
    "train_lasr.lr",
    "train_lasr.weight_decay",
    "train_lasr.epochs",
    "train_lasr.batch_size",
    "train_lasr.patience",
    "train_lasr.ablations",
    "train_lasr.workers",
    # evaluate: how hard to evaluate; not the external sets (paths)
    "evaluate.retrieval_k",
    "evaluate.bootstrap_resamples",
    "evaluate.confidence",
    "evaluate.baselines",
    "evaluate.distill_epochs",
    "evaluate.distill_lr",
    "evaluate.lipschitz_deltas",
)


def allowed(key: str, allow: Iterable[str] = ALLOWED_OVERRIDES) -> bool:
    return any(key == a or key.startswith(a + ".") for a in allow)


def check_overrides(flat: dict[str, Any], allow: Iterable[str] = ALLOWED_OVERRIDES) -> None:
    """Refuse any override outside the allow-list (``ConfigError`` naming every refused key)."""
    allow = tuple(allow)
    refused = sorted(k for k in flat if not allowed(k, allow))
    if refused:
        raise ConfigError(
            f"flow-run overrides may only set training parameters; refused: {refused}. "
            "Allowed keys (and keys below them): " + ", ".join(allow) + ". "
            "Anything else (encoder specs, trust_remote_code, servers, API keys, sources, paths) "
            "belongs in the deployment's params.yaml"
        )


def confine(path: str, root: Path, key: str) -> Path:
    """``root / path`` resolved, refused (``ConfigError`` naming ``key``) if absolute or outside ``root``."""
    text = str(path)
    if not text.strip():
        raise ConfigError(f"{key}: empty path")
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute() or text.startswith("~"):
        raise ConfigError(f"{key}: {text!r} is an absolute path; flow runs use paths relative to the project root")
    base = Path(root).resolve()
    target = (base / text).resolve()  # follows symlinks: a link out of the project is an escape too
    if target != base and base not in target.parents:
        raise ConfigError(f"{key}: {text!r} resolves to {target}, outside the project root {base}")
    return target


def param_paths(params: Params) -> list[tuple[str, str]]:
    """Every (dotted key, path) the params name."""
    out = [(f"shared.paths.{k}", str(v)) for k, v in params.shared.paths.model_dump().items()]
    out += [(f"build_dataset.sources.{i}.path", s.path) for i, s in enumerate(params.build_dataset.sources)]
    out += [(f"evaluate.external.{i}.path", s.path) for i, s in enumerate(params.evaluate.external)]
    return out


def confine_paths(params: Params, root: Path) -> None:
    """Every path in ``params`` stays inside ``root`` (raises ``ConfigError`` naming the first that does not)."""
    for key, path in param_paths(params):
        confine(path, root, key)


def check_root(path: Path) -> None:
    """With ``$LIRA_ROOT`` set (a worker's checkout), a flow run may not point ``root`` elsewhere."""
    pinned = os.environ.get("LIRA_ROOT")
    if pinned and Path(pinned).expanduser().resolve() != Path(path).resolve():
        raise ConfigError(
            f"root {str(path)!r} is not this worker's project ($LIRA_ROOT={pinned}); a flow run may not "
            "choose another checkout"
        )
