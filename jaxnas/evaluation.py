"""Evaluation protocol: rank correlations with bootstrap intervals, search summaries.

Edge code (NumPy/SciPy on host), not jitted. Non-finite handling follows the proxy
convention: NaN scores are failures and are excluded (and counted); -inf is a valid
worst score and takes the lowest rank.
"""

import warnings

import numpy as np
from scipy import stats


def _rank_pairs(scores: np.ndarray, targets: np.ndarray):
    scores = np.asarray(scores, np.float64)
    targets = np.asarray(targets, np.float64)
    if scores.shape != targets.shape or scores.ndim != 1:
        raise ValueError(
            f"scores and targets must be equal-length vectors, got {scores.shape}, {targets.shape}"
        )
    failed = np.isnan(scores)
    keep = ~failed & ~np.isnan(targets)
    # Ranks make -inf (worst score) usable by both statistics.
    return stats.rankdata(scores[keep]), targets[keep], int(failed.sum())


def rank_correlations(
    scores,
    targets,
    *,
    num_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Spearman rho and Kendall tau (tau-b) of scores vs targets, with bootstrap CIs.

    Args:
      scores: f64[N] proxy scores (NaN = failed, excluded; -inf allowed).
      targets: f64[N] ground truth (NaN rows excluded).
      num_bootstrap: resamples (with replacement) for the percentile intervals.
      confidence: interval coverage.
      seed: seed of the NumPy generator used for resampling.

    Returns:
      {"n", "n_failed", "spearman", "spearman_ci", "kendall", "kendall_ci"}.
    """
    ranks, targets, n_failed = _rank_pairs(scores, targets)
    n = ranks.shape[0]
    result = {"n": n, "n_failed": n_failed}
    if n < 3:
        return {
            **result,
            "spearman": np.nan,
            "spearman_ci": (np.nan, np.nan),
            "kendall": np.nan,
            "kendall_ci": (np.nan, np.nan),
        }
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, n, (num_bootstrap, n))
    alpha = (1.0 - confidence) / 2.0
    for name, fn in (("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
        value = float(fn(ranks, targets)[0])
        with warnings.catch_warnings():
            # A resample of a small population can be constant; its NaN is left out below.
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            boot = np.asarray([fn(ranks[s], targets[s])[0] for s in samples], np.float64)
        lo, hi = np.nanquantile(boot, [alpha, 1.0 - alpha])
        result[name] = value
        result[f"{name}_ci"] = (float(lo), float(hi))
    return result


def format_correlation(name: str, result: dict) -> str:
    """One line: `name: Spearman 0.790 [0.770, 0.808]  Kendall 0.600 [...]  (n=1000)`."""
    return (
        f"{name}: Spearman {result['spearman']:.3f} "
        f"[{result['spearman_ci'][0]:.3f}, {result['spearman_ci'][1]:.3f}]  "
        f"Kendall {result['kendall']:.3f} "
        f"[{result['kendall_ci'][0]:.3f}, {result['kendall_ci'][1]:.3f}]  "
        f"(n={result['n']}, failed={result['n_failed']})"
    )


def mean_std(values) -> tuple[float, float]:
    """Mean and (population) standard deviation, as search tables report them."""
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std())


def spearman_difference(
    scores_a, scores_b, targets, *, num_bootstrap: int = 1000, confidence: float = 0.95, seed=0
) -> dict:
    """Spearman(a, targets) - Spearman(b, targets) on the same items, paired bootstrap CI.

    Items where either score is NaN (failed) or the target is NaN are left out of both,
    so the two correlations are over the same architectures.

    Returns:
      {"n", "difference", "difference_ci"}.
    """
    a, b, t = (np.asarray(v, np.float64) for v in (scores_a, scores_b, targets))
    keep = ~np.isnan(a) & ~np.isnan(b) & ~np.isnan(t)
    a, b, t = stats.rankdata(a[keep]), stats.rankdata(b[keep]), t[keep]
    n = t.shape[0]
    if n < 3:
        return {"n": n, "difference": np.nan, "difference_ci": (np.nan, np.nan)}

    def diff(s):
        return stats.spearmanr(a[s], t[s])[0] - stats.spearmanr(b[s], t[s])[0]

    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        boot = np.asarray([diff(rng.integers(0, n, n)) for _ in range(num_bootstrap)])
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.nanquantile(boot, [alpha, 1.0 - alpha])
    return {"n": n, "difference": float(diff(slice(None))), "difference_ci": (float(lo), float(hi))}
