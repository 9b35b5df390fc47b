import math

import numpy as np
import pytest

from lira.eval.diagnostics import (
    anchoring_error,
    bound_report,
    empirical_lipschitz,
    error_bound,
    kernel_bound,
    output_gap,
    translation_distortion,
)


def test_anchoring_error_is_mean_chordal_distance():
    e_en = np.array([[1.0, 0.0], [0.0, 2.0]])
    e_lr = np.array([[5.0, 0.0], [3.0, 0.0]])  # same direction / orthogonal; norms irrelevant
    assert anchoring_error(e_lr, e_en) == pytest.approx((0.0 + math.sqrt(2)) / 2)
    assert anchoring_error(-e_en, e_en) == pytest.approx(2.0)


def test_translation_distortion_and_chord_identity():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 8)), rng.standard_normal((50, 8))
    eps2 = translation_distortion(a, b)
    ua = a / np.linalg.norm(a, axis=1, keepdims=True)
    ub = b / np.linalg.norm(b, axis=1, keepdims=True)
    assert eps2 == pytest.approx(np.mean(1 - np.sum(ua * ub, axis=1)))
    # sqrt(2*eps2) upper-bounds the mean chordal distance (Jensen) - that is the eps1-like term
    assert math.sqrt(2 * eps2) >= anchoring_error(a, b)
    assert translation_distortion(a, a) == pytest.approx(0.0, abs=1e-12)


def test_lipschitz_of_linear_map_between_singular_values():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((5, 3))
    sv = np.linalg.svd(A, compute_uv=False)
    x = rng.standard_normal((64, 3))
    out = empirical_lipschitz(lambda z: z @ A.T, x, n_dirs=16, seed=0)
    assert sv[-1] - 1e-9 <= out["l_emp"] <= sv[0] + 1e-9
    assert out["max"] <= sv[0] + 1e-9
    # linear: the ratio does not depend on delta (same directions for every delta)
    vals = list(out["per_delta"].values())
    np.testing.assert_allclose(vals, vals[0], rtol=1e-10)
    assert set(out["per_delta"]) == {3.0, 4.0, 5.0}


def test_lipschitz_close_to_spectral_norm_in_2d():
    A = np.diag([3.0, 1.0])
    x = np.random.default_rng(2).standard_normal((200, 2))
    out = empirical_lipschitz(lambda z: z @ A.T, x, n_dirs=8, seed=0)
    assert 0.95 * 3.0 < out["l_emp"] <= 3.0 + 1e-9


def test_lipschitz_sees_curvature_and_is_seeded():
    x = np.zeros((20, 4))
    square = lambda z: z**2  # ratio = ||u^2|| / ||u|| grows linearly with delta
    out = empirical_lipschitz(square, x, deltas=(3.0, 5.0), seed=3)
    assert out["per_delta"][5.0] / out["per_delta"][3.0] == pytest.approx(5.0 / 3.0)
    assert empirical_lipschitz(square, x, seed=3) == empirical_lipschitz(square, x, seed=3)
    assert empirical_lipschitz(square, x, seed=3) != empirical_lipschitz(square, x, seed=4)


def test_lipschitz_works_with_a_wrapped_torch_module():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 2, bias=True)
    f = lambda a: lin(torch.from_numpy(a)).detach().numpy()
    x = np.random.default_rng(0).standard_normal((10, 6)).astype(np.float32)
    out = empirical_lipschitz(f, x, n_dirs=4)
    smax = torch.linalg.matrix_norm(lin.weight.detach(), ord=2).item()
    assert 0 < out["l_emp"] <= smax * (1 + 1e-4)


def test_error_bound_formula():
    assert error_bound(2.0, 0.1, 0.02, c=1.5) == pytest.approx(2.0 * (0.1 + 1.5 * math.sqrt(0.04)))
    assert error_bound(1.0, 0.3, 0.0) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        error_bound(1.0, 0.1, -0.1)


def test_kernel_bound_is_max_row_norm():
    e = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, -2.0]])
    c = kernel_bound(e)
    assert c == pytest.approx(5.0)
    assert np.all(np.sum(e * e, axis=1) <= c**2 + 1e-12)  # k(s, s) <= C^2 for the linear kernel


def test_bound_report_assembles_terms():
    rng = np.random.default_rng(4)
    e_en = rng.standard_normal((30, 8))
    e_lr = e_en + 0.1 * rng.standard_normal((30, 8))
    ref = rng.standard_normal((20, 8))
    chosen = ref + 0.2 * rng.standard_normal((20, 8))
    y_en = rng.standard_normal((30, 3))
    observed = output_gap(y_en + 0.01, y_en)
    assert observed == pytest.approx(0.01 * math.sqrt(3))
    rep = bound_report(e_lr, e_en, chosen, ref, l_emp={"l_emp": 2.0, "per_delta": {}}, observed=observed)
    assert rep["eps1"] == pytest.approx(anchoring_error(e_lr, e_en))
    assert rep["eps2"] == pytest.approx(translation_distortion(chosen, ref))
    assert rep["c"] == pytest.approx(kernel_bound(ref))
    assert rep["bound"] == pytest.approx(error_bound(2.0, rep["eps1"], rep["eps2"], rep["c"]))
    assert rep["holds"] == 1.0 and rep["slack"] == pytest.approx(rep["bound"] - observed)
    tight = bound_report(e_lr, e_en, chosen, ref, l_emp=1e-6, observed=observed, c=1.0)
    assert tight["c"] == 1.0 and tight["holds"] == 0.0
    assert all(isinstance(v, float) for v in rep.values())
