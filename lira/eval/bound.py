"""The paper's error bound made measurable on the test split, per language.

eps1 (anchoring error of the trained adaptors), an eps2 proxy (distortion of the chosen
translation against the reference), L_emp (P95 empirical Lipschitz constant of the LRL-only head
over perturbation radii delta), the bound and the observed deviation it bounds. The math is in
:mod:`lira.eval.diagnostics`; this module gathers its inputs from the model and the feature cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lira.config import SharedParams
from lira.encoders import features_for
from lira.eval.diagnostics import empirical_lipschitz, error_bound, translation_distortion
from lira.lasr.net import LiraNet
from lira.train.arca_run import ArcaInputs
from lira.train.inputs import kind_of
from lira.train.lasr import LasrData
from lira.train.tables import text_features


def lipschitz_diagnostics(net: LiraNet, ld: LasrData, inputs: ArcaInputs, shared: SharedParams, root: Path, choice: np.ndarray,
                          deltas: Sequence[float]) -> dict:
    """Per language: eps1, eps2 proxy, L_emp (P95 over the radii ``deltas``: ``evaluate.lipschitz_deltas``), the bound, the observed gap."""
    texts = inputs.texts
    rows = np.flatnonzero((texts["split"] == "test").to_numpy() & (choice >= 0) & texts["en_ref"].notna().to_numpy())
    if len(rows) == 0:
        return {}
    ref = text_features(shared, root, texts.iloc[rows], column="en_ref", path="en")[1]
    chosen = np.stack([inputs.ct.text[r, choice[r]] for r in rows])
    chosen_mean = np.zeros_like(ref)
    for kind in ("query", "passage"):
        sel = np.flatnonzero(texts.iloc[rows]["role"].map(kind_of).to_numpy() == kind)
        if len(sel):
            chosen_mean[sel] = features_for(shared, chosen[sel].tolist(), "en", kind, root).mean
    r = torch.as_tensor(rows)
    with torch.no_grad():
        e_lr, e_en = net.anchored(ld.lr[r], ld.en[r])
    s, d = e_lr.shape[1], e_lr.shape[2]
    lang = ld.lang[r]

    def f_for(li: int):
        def f(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                xt = torch.as_tensor(x, dtype=torch.float32).reshape(-1, s, d)
                return net.head.lrl_only(xt, torch.full((len(xt),), li, dtype=torch.long)).numpy()
        return f

    out = {}
    for li, lang_code in enumerate(shared.languages):
        sel = (lang == li).numpy()
        if sel.sum() < 2:
            continue
        x_lr = e_lr[sel].reshape(int(sel.sum()), -1).numpy()
        x_en = e_en[sel].reshape(int(sel.sum()), -1).numpy()
        f = f_for(li)
        eps1 = float(np.linalg.norm(x_lr - x_en, axis=1).mean())
        eps2 = translation_distortion(chosen_mean[sel], ref[sel])
        lip = empirical_lipschitz(f, x_lr, deltas=tuple(deltas), seed=shared.seed)
        observed = float(np.linalg.norm(f(x_lr) - f(x_en), axis=1).mean())
        out[lang_code] = {"eps1": eps1, "eps2": eps2, "l_emp_p95": lip["l_emp"], "bound": error_bound(lip["l_emp"], eps1, eps2, 1.0),
                          "observed": observed}
    return out
