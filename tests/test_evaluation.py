"""Rank correlations with bootstrap intervals."""

import numpy as np
from scipy import stats

from jaxnas import evaluation


def test_matches_scipy_and_intervals_contain_the_estimate():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=300)
    scores = targets + rng.normal(size=300)
    r = evaluation.rank_correlations(scores, targets, num_bootstrap=200)
    np.testing.assert_allclose(r["spearman"], stats.spearmanr(scores, targets)[0])
    np.testing.assert_allclose(r["kendall"], stats.kendalltau(scores, targets)[0])
    for name in ("spearman", "kendall"):
        lo, hi = r[f"{name}_ci"]
        assert lo < r[name] < hi and hi - lo < 0.3


def test_failed_scores_are_excluded_and_counted_and_minus_inf_ranks_last():
    scores = np.asarray([1.0, 2.0, np.nan, -np.inf, 3.0])
    targets = np.asarray([2.0, 3.0, 9.0, 1.0, 4.0])
    r = evaluation.rank_correlations(scores, targets, num_bootstrap=50)
    assert r["n"] == 4 and r["n_failed"] == 1
    np.testing.assert_allclose(r["spearman"], 1.0)
    assert "failed=1" in evaluation.format_correlation("x", r)


def test_spearman_difference_is_paired_and_drops_failed_items():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=200)
    good = targets + 0.3 * rng.normal(size=200)
    bad = targets + 3.0 * rng.normal(size=200)
    result = evaluation.spearman_difference(good, bad, targets, num_bootstrap=200)
    expected = stats.spearmanr(good, targets)[0] - stats.spearmanr(bad, targets)[0]
    assert result["n"] == 200
    np.testing.assert_allclose(result["difference"], expected)
    lo, hi = result["difference_ci"]
    assert 0 < lo < expected < hi
    same = evaluation.spearman_difference(good, good, targets, num_bootstrap=50)
    assert same["difference"] == 0 and same["difference_ci"] == (0.0, 0.0)
    good[:10] = np.nan
    assert evaluation.spearman_difference(good, bad, targets, num_bootstrap=10)["n"] == 190
