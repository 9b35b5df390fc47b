import numpy as np
import pytest
from scipy import stats

from lira.eval.bootstrap import BootstrapResult, paired_bootstrap
from lira.eval.metrics import mc_accuracy


def _pearson(pred, gold):
    return stats.pearsonr(pred, gold).statistic


def test_planted_difference_is_covered_and_significant():
    rng = np.random.default_rng(1)
    b = rng.uniform(0.2, 0.8, 400)  # per-query nDCG of system B, widely spread
    a = b + 0.05 + rng.normal(0, 0.05, 400)  # A = B + 0.05 on average
    res = paired_bootstrap(np.mean, a, b, n_resamples=1000, seed=0)
    assert res.diff == pytest.approx(np.mean(a) - np.mean(b))
    assert res.low < 0.05 < res.high
    assert res.low > 0
    assert res.p_value < 0.01


def test_pairing_matters():
    # The items' spread (sd ~0.29, se ~0.03) dwarfs the 0.02 gap: an unpaired bootstrap would
    # straddle 0; paired, every resample sees exactly the 0.02 gap.
    rng = np.random.default_rng(1)
    b = rng.uniform(0.0, 1.0, 100)
    a = b + 0.02
    res = paired_bootstrap(np.mean, a, b, n_resamples=500, seed=0)
    assert res.low == pytest.approx(0.02) and res.high == pytest.approx(0.02)
    assert res.p_value == 0.0


def test_identical_systems_contain_zero():
    x = np.random.default_rng(2).uniform(size=100)
    res = paired_bootstrap(np.mean, x, x.copy(), n_resamples=200)
    assert res.as_dict() == {"diff": 0.0, "low": 0.0, "high": 0.0, "p_value": 1.0}
    # noisy but equal-in-expectation systems: the CI straddles 0
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 300), rng.normal(0, 1, 300)
    res = paired_bootstrap(np.mean, a, b, n_resamples=500)
    assert res.low < 0 < res.high and res.p_value > 0.05


def test_non_decomposable_pearson_with_shared_gold():
    rng = np.random.default_rng(4)
    gold = rng.uniform(0, 5, 300)
    good = gold + rng.normal(0, 0.5, 300)
    bad = gold + rng.normal(0, 3.0, 300)
    res = paired_bootstrap(_pearson, good, bad, gold, n_resamples=500, seed=0)
    assert res.diff == pytest.approx(_pearson(good, gold) - _pearson(bad, gold))
    assert 0 < res.low < res.diff < res.high
    # pairing: resampling gold independently of the predictions would destroy the correlation,
    # so a CI this high above 0 is only possible if gold rows travel with their predictions.
    assert res.low > 0.2


def test_multidimensional_items_mc_logits():
    rng = np.random.default_rng(5)
    answers = rng.integers(0, 4, 200)
    noise = rng.normal(0, 1, (200, 4))
    strong = noise + 3.0 * np.eye(4)[answers]
    weak = noise + 0.3 * np.eye(4)[answers]
    acc = lambda logits, ans: mc_accuracy(logits, ans).mean()
    res = paired_bootstrap(acc, strong, weak, answers, n_resamples=300)
    assert res.diff == pytest.approx(acc(strong, answers) - acc(weak, answers))
    assert res.low > 0 and res.p_value < 0.01


def test_deterministic_under_seed():
    rng = np.random.default_rng(6)
    a, b = rng.normal(0.1, 1, 80), rng.normal(0, 1, 80)
    r1 = paired_bootstrap(np.mean, a, b, n_resamples=300, seed=7)
    r2 = paired_bootstrap(np.mean, a, b, n_resamples=300, seed=7)
    r3 = paired_bootstrap(np.mean, a, b, n_resamples=300, seed=8)
    assert r1 == r2
    assert (r1.low, r1.high) != (r3.low, r3.high)
    assert isinstance(r1, BootstrapResult)


def test_length_mismatch_raises():
    with pytest.raises(ValueError):
        paired_bootstrap(np.mean, np.ones(5), np.ones(4))
