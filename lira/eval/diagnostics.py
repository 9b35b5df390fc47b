"""The paper's error bound, made measurable (the paper's theory section).

LiRA bounds the gap between the downstream output on the low-resource input and on its English
anchor by

    ||f(z) - f(z*)|| <= L_loc * (eps1 + C * sqrt(2 * eps2))

with eps1 the anchoring error, eps2 the translation distortion, C the kernel bound and L_loc the
local Lipschitz constant of the downstream scorer f. This module estimates each term from arrays
(embeddings, a callable f) and assembles them, next to the observed gap, into a per-language report.
All functions are pure; embeddings are ``[N, d]`` numpy arrays (call ``.cpu().numpy()`` on tensors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "anchoring_error",
    "bound_report",
    "empirical_lipschitz",
    "error_bound",
    "kernel_bound",
    "output_gap",
    "translation_distortion",
]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected [N, d], got shape {x.shape}")
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


def _check_pair(x: np.ndarray, y: np.ndarray) -> None:
    if np.shape(x) != np.shape(y):
        raise ValueError(f"paired embeddings differ in shape: {np.shape(x)} vs {np.shape(y)}")


def anchoring_error(e_lr: np.ndarray, e_en: np.ndarray) -> float:
    """eps1: mean Euclidean distance between L2-normalised paired embeddings.

    ``eps1 = (1/N) sum_i || u_lr,i - u_en,i ||_2``  with  ``u = e / ||e||``,
    equivalently ``mean_i sqrt(2 * (1 - cos(e_lr,i, e_en,i)))``.

    Why this form: the bound adds eps1 to a distance (``C * sqrt(2 * eps2)``), so eps1 must be a
    distance too, not the ``1 - cos`` of the training loss (``lira.losses.anchoring_error``, whose
    value is ``eps1_i^2 / 2`` per pair). Normalising first makes it scale-free - the heads score by
    cosine, so only directions matter - and bounds it by 2. Measure it on held-out pairs.
    """
    _check_pair(e_lr, e_en)
    return float(np.linalg.norm(_unit_rows(e_lr) - _unit_rows(e_en), axis=1).mean())


def translation_distortion(e_chosen: np.ndarray, e_reference: np.ndarray) -> float:
    """eps2 proxy: mean cosine distance between the chosen and the reference translation.

    ``eps2 = (1/N) sum_i (1 - cos(e_chosen,i, e_reference,i))``

    computed on English embeddings of the translation the Actor picked and of a reference (human)
    translation. On unit vectors ``||u - v|| = sqrt(2 (1 - cos))``, so ``sqrt(2 * eps2)`` is a
    chordal distance; by Jensen it upper-bounds the mean per-pair chordal distance.
    """
    _check_pair(e_chosen, e_reference)
    cos = np.sum(_unit_rows(e_chosen) * _unit_rows(e_reference), axis=1)
    # Rounding can push cos of identical rows a hair above 1; eps2 feeds a sqrt.
    return float(np.mean(np.clip(1.0 - cos, 0.0, 2.0)))


def empirical_lipschitz(
    f: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    deltas: Sequence[float] = (3.0, 4.0, 5.0),
    n_dirs: int = 8,
    quantile: float = 0.95,
    seed: int = 0,
) -> dict:
    """Empirical local Lipschitz constant of ``f`` around the inputs ``x`` (the paper's calibration).

    For every input ``x_i``, direction ``v`` (uniform on the unit sphere, ``n_dirs`` per input) and
    radius ``delta``:

        ratio = || f(x_i + delta v) - f(x_i) ||_2 / || delta v ||_2

    ``L_emp`` is the ``quantile`` (P95) of all ratios - a robust stand-in for the sup, which a
    finite sample can only under-estimate anyway. The same directions are reused for every delta
    (common random numbers), so differences between ``per_delta`` values reflect the curvature of
    ``f``, not sampling noise; for a linear ``f`` they are identical.

    Args:
        f: batched map ``[M, d] -> [M, ...]`` (outputs are flattened per row). Wrap a torch
            module as ``lambda a: m(torch.from_numpy(a)).detach().numpy()``.
        x: ``[N, d]`` inputs (e.g. LaSR input embeddings of held-out examples).
        deltas: perturbation norms; the paper uses delta in [3, 5]. The value only makes sense
            relative to the scale of ``x`` (unit-norm embeddings vs. layer-normed ones ~ sqrt(d)).
        n_dirs: random directions per input and delta.
        quantile: the quantile reported (0.95 in the paper).
        seed: seed of the directions.

    Returns:
        ``{"l_emp": P_q over all ratios, "per_delta": {delta: P_q}, "max": max ratio}``.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be [N, d], got {x.shape}")
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    x = x.astype(dtype, copy=False)
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((n_dirs, *x.shape))
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)

    y0 = np.asarray(f(x), dtype=np.float64).reshape(n, -1)
    per_delta: dict[float, float] = {}
    all_ratios = []
    for delta in deltas:
        ratios = []
        for v in dirs:
            u = (float(delta) * v).astype(dtype)
            y = np.asarray(f(x + u), dtype=np.float64).reshape(n, -1)
            # ||u|| recomputed (not taken as delta) so a float32 cast cannot bias the ratio.
            ratios.append(np.linalg.norm(y - y0, axis=1) / np.linalg.norm(u.astype(np.float64), axis=1))
        ratios = np.concatenate(ratios)
        per_delta[float(delta)] = float(np.quantile(ratios, quantile))
        all_ratios.append(ratios)
    all_ratios = np.concatenate(all_ratios)
    return {
        "l_emp": float(np.quantile(all_ratios, quantile)),
        "per_delta": per_delta,
        "max": float(all_ratios.max()),
    }


def error_bound(l_emp: float, eps1: float, eps2: float, c: float = 1.0) -> float:
    """The paper's bound ``L_emp * (eps1 + C * sqrt(2 * eps2))``."""
    if eps2 < 0:
        raise ValueError(f"eps2 must be >= 0, got {eps2}")
    return float(l_emp * (eps1 + c * np.sqrt(2.0 * eps2)))


def kernel_bound(e: np.ndarray) -> float:
    """C estimate: the largest row norm, ``C = max_s ||e_s||_2``.

    For the linear kernel ``k(s, s') = <e_s, e_s'>`` this gives ``C^2 = max_s k(s, s)``, the
    smallest C with ``k(s, s) <= C^2`` on the sample (``sqrt(k(s, s)) = ||phi(s)||`` is the
    feature-map norm the paper's C bounds). L2-normalised embeddings give ``C = 1``. It is a
    sample maximum, so it can only under-estimate the population sup.
    """
    e = np.asarray(e, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] == 0:
        raise ValueError(f"expected non-empty [N, d], got {e.shape}")
    return float(np.linalg.norm(e, axis=1).max())


def output_gap(y_lr: np.ndarray, y_en: np.ndarray) -> float:
    """Observed left-hand side of the bound: ``mean_i || f(z_lr,i) - f(z_en,i) ||_2``.

    ``y_lr``/``y_en`` are the downstream outputs ``[N, ...]`` (flattened per row) on the
    low-resource input and on its English anchor.
    """
    y_lr = np.asarray(y_lr, dtype=np.float64)
    y_en = np.asarray(y_en, dtype=np.float64)
    _check_pair(y_lr, y_en)
    n = y_lr.shape[0]
    return float(np.linalg.norm((y_lr - y_en).reshape(n, -1), axis=1).mean())


def bound_report(
    e_lr: np.ndarray,
    e_en: np.ndarray,
    e_chosen: np.ndarray,
    e_reference: np.ndarray,
    l_emp: float | Mapping,
    observed: float,
    c: float | None = None,
) -> dict[str, float]:
    """One language's bound diagnostics.

    Args:
        e_lr, e_en: ``[N, d]`` Arca embeddings of held-out LRL texts and of their English anchors.
        e_chosen, e_reference: ``[M, d]`` English embeddings of the chosen and of a reference
            translation (pairs with a reference only).
        l_emp: ``L_emp`` as a float, or the dict returned by :func:`empirical_lipschitz`.
        observed: the measured gap ``mean ||f(z_lr) - f(z_en)||`` (see :func:`output_gap`).
        c: kernel bound; ``None`` estimates it with :func:`kernel_bound` on ``e_reference`` - the
            space in which eps2 is a distance. With L2-normalised embeddings that is 1.

    Returns:
        ``{"eps1", "eps2", "l_emp", "c", "bound", "observed", "slack", "holds"}`` with
        ``slack = bound - observed`` and ``holds = 1.0`` if ``observed <= bound`` else ``0.0``
        (floats throughout, so the dict logs as metrics as is). Callers build
        ``{lang: bound_report(...)}``.
    """
    lip = float(l_emp["l_emp"]) if isinstance(l_emp, Mapping) else float(l_emp)
    eps1 = anchoring_error(e_lr, e_en)
    eps2 = translation_distortion(e_chosen, e_reference)
    c_val = kernel_bound(e_reference) if c is None else float(c)
    bound = error_bound(lip, eps1, eps2, c_val)
    observed = float(observed)
    return {
        "eps1": eps1,
        "eps2": eps2,
        "l_emp": lip,
        "c": c_val,
        "bound": bound,
        "observed": observed,
        "slack": bound - observed,
        "holds": float(observed <= bound),
    }
