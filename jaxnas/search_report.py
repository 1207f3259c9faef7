"""Reports of R seeded search runs (host side, NumPy): mean, std and 95 % confidence
intervals, paired differences between two searches, best-so-far curves, and a PNG of
them when matplotlib (the `plot` extra) is installed."""

import json
import os

import numpy as np
from scipy import stats


def describe(values, confidence: float = 0.95) -> dict:
    """Mean, population std (as search tables print it), standard error and the Student-t
    confidence interval of the mean of f64[R] values (NaN entries left out)."""
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    n = v.size
    if n == 0:
        return {"n": 0, "mean": np.nan, "std": np.nan, "sem": np.nan, "ci95": (np.nan, np.nan)}
    mean = float(v.mean())
    sem = float(v.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sem) if n > 1 else np.nan
    return {
        "n": n,
        "mean": mean,
        "std": float(v.std()),
        "sem": sem,
        "ci95": (mean - half, mean + half),
    }


def paired_difference(a, b, confidence: float = 0.95) -> dict:
    """`describe` of a - b for runs paired by seed (f64[R] each)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired runs need equal shapes; got {a.shape} and {b.shape}")
    return describe(a - b, confidence)


def format_row(name: str, d: dict, published=None) -> str:
    """`name: 93.61 +- 0.35 (95% CI [93.54, 93.68], n=100)  paper 93.92 +- 0.30`."""
    text = (
        f"{name}: {d['mean']:.2f} +- {d['std']:.2f} "
        f"(95% CI [{d['ci95'][0]:.2f}, {d['ci95'][1]:.2f}], n={d['n']})"
    )
    if published is not None:
        mean, std = published
        text += f"  paper {mean:.2f} +- {std:.2f}"
    return text


def write_curve(workdir: str, evaluations, curves: dict, label: str = "") -> str | None:
    """Writes `curve.json` (mean and std over runs of each f64[R, G] curve against the
    evaluation counts f64[G]) and, with matplotlib, `curve.png`. Returns the PNG path or
    None."""
    x = np.asarray(evaluations, np.float64)
    out = {"num_evaluations": x.tolist()}
    for name, c in curves.items():
        c = np.asarray(c, np.float64)
        c = np.where(np.isfinite(c), c, np.nan)  # -inf: nothing valid evaluated yet
        out[name] = {"mean": np.nanmean(c, 0).tolist(), "std": np.nanstd(c, 0).tolist()}
    with open(os.path.join(workdir, "curve.json"), "w") as f:
        json.dump(out, f)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.5), squeeze=False)
    for ax, (name, c) in zip(axes[0], curves.items()):
        mean, std = np.asarray(out[name]["mean"]), np.asarray(out[name]["std"])
        ax.plot(x, mean)
        ax.fill_between(x, mean - std, mean + std, alpha=0.25)
        ax.set_xlabel("evaluations")
        ax.set_ylabel(f"best so far: {name}")
        ax.grid(alpha=0.3)
    fig.suptitle(label)
    fig.tight_layout()
    path = os.path.join(workdir, "curve.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
