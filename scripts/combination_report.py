"""Proxy combination on held-apart cells: LIBRA-NAS, log-rank, vote, rank sum, ridge, MLP.

  python scripts/combination_report.py [--out docs/combination.md] \\
      [--png docs/combination.png] [--splits docs/combination_splits.json] \\
      [--bootstrap 1000] [--repeats 10] [--num-bins 8]

The score matrix is the published NAS-Bench-Suite-Zero proxy columns of the shared tables
(an honest matrix for measuring combiners: scores computed by their authors, not by us):

  benchmark      table (../shared/data)                              cells  eval / calib.
  NB201 C10      nb201_zc_suitezero_cifar10_9445 (final release)     9,445  1,000 / 1,000
  NB201 C100     nb201_zc_suitezero_subset725_3datasets (early run)    725    363 / 362
  NB201 IN16     same file, imagenet16_120 rows                        724    362 / 362
  NB101 C10      nb101_zc_suitezero_subset250_cifar10                  250    125 / 125
  NB301 C10      nb301_zc_suitezero_subset363_cifar10                  363    182 / 181

Target: each table's `val_acc` (as Suite-Zero and L-SWAG Table 1). Every column the table
has is a candidate proxy (flops and params included, as in Suite-Zero); L-SWAG and
AZ-NAS's components are not in these tables. Per benchmark one seeded permutation
(`--seed`, saved to `--splits`) gives disjoint evaluation and calibration cells.

Rows: rank sum of all proxies (TE-NAS's rule), log-rank of all proxies (AZ-NAS's rule),
vote of synflow + jacov + snip (zero-cost-nas's trio), the best single proxy chosen on
the calibration cells, and LIBRA (Alg. 1 on the calibration cells; fused by rank sum,
and by log-rank). *Held-apart*: chosen on calibration cells, Spearman on evaluation
cells. *In-sample* (the paper's protocol): chosen and measured on the evaluation cells.
`--repeats` further split seeds give LIBRA's held-apart spread and how often each triple
is chosen. Few-shot predictors: ridge (`combine.fit_ridge`, lambda by leave-one-out on
the k cells) and an MLP ensemble (`combine.fit_mlp`, settings fixed in advance) on
signed-log proxy scores, with and without the genotype one-hot, fitted on
k cells drawn from the calibration cells, Spearman on the evaluation cells, mean and std
over `--repeats` draws; where k exceeds the calibration set (NB101, NB301 at k = 200) the
k cells are drawn from all cells and evaluated on the others (marked †).
"""

import argparse
import csv
import datetime
import gzip
import json
import os
import platform
import re
import sys

import jax
import numpy as np
from scipy import stats

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from jaxnas import benchmarks, configs, errors, evaluation  # noqa: E402
from jaxnas.proxies import combine  # noqa: E402

KS = (10, 20, 50, 100, 200)
VOTE_TRIO = ("synflow", "jacov", "snip")
# L-SWAG (CVPR'25) Table 1, Spearman on 1000 nets (shared/docs/reference.md §C.7).
PAPER = {
    "NB201 C10": {"LIBRA": 0.89, "AZ-NAS": 0.91, "TE-NAS": 0.70},
    "NB201 C100": {"LIBRA": 0.90, "AZ-NAS": 0.90, "TE-NAS": 0.67},
    "NB201 IN16": {"LIBRA": 0.87, "AZ-NAS": 0.89, "TE-NAS": 0.64},
    "NB101 C10": {"LIBRA": 0.77, "AZ-NAS": 0.54, "TE-NAS": 0.12},
    "NB301 C10": {"LIBRA": 0.74, "AZ-NAS": 0.70, "TE-NAS": 0.37},
}
NOT_PROXIES = {"index", "val_acc", "dataset"}


def _ints(text):
    return [int(v) for v in re.findall(r"\d+", text)]


NB101_OPS = ("input", "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3", "output")


def _nb101_codes(adjacency_rows, ops):
    rows = adjacency_rows.split("/")
    bits = [int(rows[i][j]) for i in range(7) for j in range(i + 1, 7)]
    return bits + [NB101_OPS.index(op) for op in ops.split("|")]


def _load(path, dataset=None):
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    if dataset is not None:
        rows = [r for r in rows if r["dataset"] == dataset]
    return rows


def benchmark_data(data_dir):
    """name -> (rows, proxy names, f64[N, M] scores, f64[N] accuracy, i64[N, L] codes, sizes)."""

    def path(table):
        return os.path.join(data_dir, table.folder, table.file)

    specs = [
        (
            "NB201 C10",
            path(configs.NB201_SUITE_ZERO),
            None,
            "naslib_ops",
            (1000, 1000),
        ),
        (
            "NB201 C100",
            path(configs.NB201_SUITE_ZERO_3DATASETS),
            "cifar100",
            "naslib_ops",
            None,
        ),
        (
            "NB201 IN16",
            path(configs.NB201_SUITE_ZERO_3DATASETS),
            "imagenet16_120",
            "naslib_ops",
            None,
        ),
        (
            "NB101 C10",
            path(configs.NB101_SUITE_ZERO),
            None,
            "nb101",
            None,
        ),
        (
            "NB301 C10",
            path(configs.NB301_SUITE_ZERO),
            None,
            "naslib_compact",
            None,
        ),
    ]
    out = {}
    for name, table, dataset, encoding, sizes in specs:
        if not os.path.exists(table):
            raise errors.BenchmarkError(f"benchmark file not found: {table}")
        rows = _load(table, dataset)
        header = list(rows[0])
        proxies = [
            c
            for c in header
            if c not in NOT_PROXIES and not c.endswith("_time_s") and _is_number(rows[0][c])
        ]
        scores = np.asarray([[float(r[c]) for c in proxies] for r in rows], np.float64)
        acc = np.asarray([float(r["val_acc"]) for r in rows], np.float64)
        if encoding == "nb101":
            codes = [_nb101_codes(r["adjacency_rows"], r["ops"]) for r in rows]
        else:
            codes = [_ints(r[encoding]) for r in rows]
        n = len(rows)
        sizes = sizes or ((n + 1) // 2, n // 2)
        out[name] = {
            "file": os.path.relpath(table, data_dir) + (f" [{dataset}]" if dataset else ""),
            "proxies": proxies,
            "scores": scores,
            "acc": acc,
            "codes": np.asarray(codes, np.int64),
            "sizes": sizes,
        }
    return out


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def spearman(a, b):
    return float(stats.spearmanr(a, b)[0])


def libra_rows(d, ev, cal, nboot, bins):
    names, s, y = d["proxies"], d["scores"], d["acc"]
    params = s[:, names.index("params")]
    held = combine.libra_select(s[cal], y[cal], params[cal], names, num_bins=bins)
    insample = combine.libra_select(s[ev], y[ev], params[ev], names, num_bins=bins)
    rows = []

    def corr(values):
        return evaluation.rank_correlations(values, y[ev], num_bootstrap=nboot)

    best_held = names.index(held.names[0])
    rows.append(
        (
            "best single proxy (chosen on calibration)",
            names[best_held],
            corr(s[ev, best_held]),
            None,
        )
    )
    for fusion in ("rank_sum", "log_rank"):
        h = np.asarray(combine.libra(s[ev], held.columns, fusion))
        i = np.asarray(combine.libra(s[ev], insample.columns, fusion))
        label = f"LIBRA, {fusion.replace('_', '-')} fusion"
        rows.append(
            (label, "+".join(held.names), corr(h), ("+".join(insample.names), spearman(i, y[ev])))
        )
    return held, insample, rows


def fixed_rows(d, ev, nboot):
    names, s, y = d["proxies"], d["scores"], d["acc"]
    rows = []
    for label, fn in (
        ("rank sum, all proxies (TE-NAS rule)", combine.rank_sum),
        ("log-rank, all proxies (AZ-NAS rule)", combine.log_rank),
    ):
        rows.append(
            (
                label,
                f"{len(names)} proxies",
                evaluation.rank_correlations(np.asarray(fn(s[ev])), y[ev], num_bootstrap=nboot),
                None,
            )
        )
    trio = [names.index(p) for p in VOTE_TRIO if p in names]
    rows.append(
        (
            "vote (zero-cost-nas rule)",
            "+".join(names[m] for m in trio),
            evaluation.rank_correlations(
                np.asarray(combine.vote(s[ev][:, trio])), y[ev], num_bootstrap=nboot
            ),
            None,
        )
    )
    return rows


def libra_repeats(d, repeats, seed, bins):
    names, s, y = d["proxies"], d["scores"], d["acc"]
    params = s[:, names.index("params")]
    values, triples = [], {}
    for r in range(repeats):
        ev, cal = combine.disjoint_split(len(y), *d["sizes"], seed=seed + 1 + r)
        sel = combine.libra_select(s[cal], y[cal], params[cal], names, num_bins=bins)
        values.append(spearman(np.asarray(combine.libra(s[ev], sel.columns)), y[ev]))
        key = "+".join(sel.names)
        triples[key] = triples.get(key, 0) + 1
    return float(np.mean(values)), float(np.std(values)), triples


PREDICTORS = ("ridge", "MLP")
FEATURES = ("proxies", "proxies + one-hot")
LABELS = tuple(f"{m}, {f}" for m in PREDICTORS for f in FEATURES)


def predictor_curve(d, ev, cal, repeats, seed):
    s, y = d["scores"], d["acc"]
    proxy_x = np.asarray(combine.signed_log(s))
    both_x = np.concatenate([proxy_x, combine.one_hot_codes(d["codes"])], axis=1)
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    out = {}
    everything = np.arange(len(y))
    # A fit needs finite features: cells with a failed proxy (or NASWOT's -inf floor)
    # are never drawn for training; order is kept, so the draws are otherwise unchanged.
    finite = np.all(np.isfinite(proxy_x), axis=1)
    for k in KS:
        # A calibration set smaller than k: draw from all cells, evaluate on the others.
        all_cells = k > np.count_nonzero(finite[cal])
        pool = everything[finite] if all_cells else cal[finite[cal]]
        if k > len(y) - 50:
            continue
        res = {label: [] for label in LABELS}
        for r in range(repeats):
            train = rng.choice(pool, size=k, replace=False)
            test = np.setdiff1d(everything, train) if all_cells else ev
            for features, x in zip(FEATURES, (proxy_x, both_x)):
                member_key = jax.random.fold_in(key, k * 1000 + r)
                fits = {
                    "ridge": combine.fit_ridge(x[train], y[train]),
                    "MLP": combine.fit_mlp(x[train], y[train], member_key),
                }
                for name, model in fits.items():
                    # A cell with a non-finite feature (a failed proxy, or NASWOT's -inf
                    # floor) gets a non-finite prediction: ranked worst, by both models.
                    predicted = np.asarray(model.predict(x[test]))
                    predicted = np.where(np.isfinite(predicted), predicted, -np.inf)
                    res[f"{name}, {features}"].append(spearman(predicted, y[test]))
        out[k] = {label: (float(np.mean(v)), float(np.std(v))) for label, v in res.items()}
        out[k]["all_cells"] = bool(all_cells)
    return out


def _fmt(r):
    return f"{r['spearman']:.3f} [{r['spearman_ci'][0]:.3f}, {r['spearman_ci'][1]:.3f}]"


def render(results, command, env):
    lines = [
        "# Proxy combination on held-apart cells",
        "",
        f"Written by `scripts/combination_report.py`; command: `{command}`; {env}. "
        "Score matrix: the published NAS-Bench-Suite-Zero proxy columns of the shared "
        "tables (honest for measuring combiners; not our own proxy scores). Target: the "
        "table's `val_acc`. Intervals: 95 % bootstrap. *Held-apart*: selection / fit on "
        "calibration cells, Spearman on disjoint evaluation cells (split in "
        "`docs/combination_splits.json`). *In-sample*: the paper's protocol, selection "
        "and Spearman on the same evaluation cells. Paper: L-SWAG (CVPR'25) Table 1, "
        "1000 nets, their proxy set (incl. L-SWAG).",
        "",
        "## Combiners",
        "",
    ]
    for name, r in results.items():
        paper = PAPER[name]
        lines += [
            f"### {name} (`{r['file']}`; {r['n_eval']} evaluation / {r['n_cal']} "
            f"calibration cells)",
            "",
            "| combiner | proxies (held-apart choice) | held-apart ρ [CI] | Kendall τ | "
            "in-sample choice: ρ | paper ρ (Table 1 row) |",
            "|---|---|---|---|---|---|",
        ]
        for label, proxies, corr, ins in r["rows"]:
            paper_v = (
                f"LIBRA {paper['LIBRA']:.2f}"
                if label.startswith("LIBRA, rank")
                else f"TE-NAS {paper['TE-NAS']:.2f} (its NTK + regions)"
                if label.startswith("rank sum")
                else f"AZ-NAS {paper['AZ-NAS']:.2f} (its 4 components)"
                if label.startswith("log-rank")
                else ""
            )
            ins_text = f"{ins[0]}: {ins[1]:.3f}" if ins else "same (no calibration)"
            if label.startswith("best single"):
                ins_text = "—"
            lines.append(
                f"| {label} | {proxies} | {_fmt(corr)} | {corr['kendall']:.3f} | {ins_text} | "
                f"{paper_v} |"
            )
        mean, std, triples = r["repeats"]
        sel = r["selection"]
        lines += [
            "",
            f"LIBRA held-apart over {sum(triples.values())} further split seeds: "
            f"ρ {mean:.3f} ± {std:.3f}; triples chosen: "
            + ", ".join(f"{k} ×{v}" for k, v in sorted(triples.items(), key=lambda kv: -kv[1]))
            + f". Paper's AZ-NAS row: {paper['AZ-NAS']:.2f} (AZ-NAS's own components are not "
            "in these tables; see WORKSPACE_NOTES.md for our live AZ-NAS figures).",
            "",
            f"LIBRA selection on the calibration cells (n={sel.num_calibration}, band "
            f"{sel.margin}, {sel.num_bins} equal-frequency bins): z1 = **{sel.names[0]}**, "
            f"z2 = **{sel.names[1]}**, z3 = **{sel.names[2]}**; candidates "
            f"{', '.join(sel.candidates)}{' (band widened)' if sel.widened else ''}; "
            f"accuracy bias {sel.accuracy_bias:.3f}.",
            "",
            "| proxy | Spearman (calib.) | IG given z1 (bits) | bias |",
            "|---|---|---|---|",
        ]
        for p in sorted(sel.spearman, key=lambda k: -np.nan_to_num(sel.spearman[k], nan=-9)):
            ig = sel.info_gain.get(p)
            lines.append(
                f"| {p} | {sel.spearman[p]:.3f} | {'' if ig is None else f'{ig:.3f}'} | "
                f"{sel.bias[p]:.3f} |"
            )
        lines.append("")
    lines += [
        "## Few-shot predictors (ridge, MLP) vs k",
        "",
        "Spearman on the evaluation cells, mean ± std over the draws of k calibration "
        "cells; `proxies` = signed-log Suite-Zero scores, `+ one-hot` adds the genotype. "
        f"Ridge: lambda by leave-one-out on the k cells. MLP: `combine.MLPSettings()` "
        f"({combine.MLPSettings()}), fixed in advance, not tuned on these cells. "
        "A cell with a non-finite feature (a failed proxy or NASWOT's -inf floor) is "
        "ranked worst by both predictors. "
        "†: k exceeds the calibration set, so the k cells are drawn from all cells and "
        "the Spearman is over the cells not drawn (still held apart, other cells).",
        "",
        "| benchmark | predictor, features | " + " | ".join(f"k={k}" for k in KS) + " |",
        "|---|---|" + "---|" * len(KS),
    ]
    for name, r in results.items():
        for label in LABELS:
            cells = [
                f"{r['curve'][k][label][0]:.3f} ± {r['curve'][k][label][1]:.3f}"
                + (" †" if r["curve"][k]["all_cells"] else "")
                if k in r["curve"]
                else "n/a"
                for k in KS
            ]
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("![predictor curves](combination.png)")
    return "\n".join(lines) + "\n"


def plot(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (the `plot` extra): no PNG")
        return
    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.4), sharey=True)
    for ax, (name, r) in zip(axes, results.items()):
        for label, style in zip(LABELS, ("o-", "s--", "^-", "v--")):
            ks = [k for k in KS if k in r["curve"]]
            mean = [r["curve"][k][label][0] for k in ks]
            std = [r["curve"][k][label][1] for k in ks]
            ax.errorbar(ks, mean, yerr=std, fmt=style, capsize=3, label=label)
        libra = next(c for lbl, _, c, _ in r["rows"] if lbl.startswith("LIBRA, rank"))
        ax.axhline(libra["spearman"], color="k", lw=1, label="LIBRA (held-apart)")
        ax.axhline(PAPER[name]["LIBRA"], color="r", lw=1, ls=":", label="LIBRA (paper)")
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel("k labelled cells")
    axes[0].set_ylabel("Spearman ρ (evaluation cells)")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/combination.md")
    parser.add_argument("--png", default="docs/combination.png")
    parser.add_argument("--splits", default="docs/combination_splits.json")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-bins", type=int, default=8, help="LIBRA's entropy bins")
    args = parser.parse_args()
    command = " ".join(["python scripts/combination_report.py", *sys.argv[1:]])
    env = (
        f"{datetime.date.today()}; {platform.machine()}, {os.cpu_count()} cores "
        f"(shared); jax {jax.__version__}"
    )
    try:
        data = benchmark_data(benchmarks.shared_data_dir())
    except (OSError, errors.JaxnasError) as exc:
        sys.exit(f"error: {exc}")
    results, splits = {}, {}
    for name, d in data.items():
        ev, cal = combine.disjoint_split(len(d["acc"]), *d["sizes"], seed=args.seed)
        splits[name] = {
            "file": d["file"],
            "seed": args.seed,
            "evaluation_rows": ev.tolist(),
            "calibration_rows": cal.tolist(),
        }
        held, _, rows = libra_rows(d, ev, cal, args.bootstrap, args.num_bins)
        results[name] = {
            "file": d["file"],
            "n_eval": len(ev),
            "n_cal": len(cal),
            "rows": fixed_rows(d, ev, args.bootstrap) + rows,
            "selection": held,
            "repeats": libra_repeats(d, args.repeats, args.seed, args.num_bins),
            "curve": predictor_curve(d, ev, cal, args.repeats, args.seed),
        }
        print(f"{name}: done", flush=True)
    text = render(results, command, env)
    with open(args.out, "w") as f:
        f.write(text)
    with open(args.splits, "w") as f:
        json.dump(splits, f)
    plot(results, args.png)
    print(text)


if __name__ == "__main__":
    main()
