"""Correlation report of every registered proxy on NAS-Bench-201, next to published values.

  python scripts/proxy_report.py --num-cells 300 \\
      [--proxies synflow,snip] [--datasets cifar10,cifar100,imagenet16-120] \\
      [--out docs/proxy_correlations.md] [--png docs/proxy_correlations.png]
  python scripts/proxy_report.py --from-scores docs/proxy_scores.json   # re-render only

For each proxy of `jaxnas.proxies.PROXIES` (or `--proxies`) and each dataset, scores the
same seeded sample of NB201 cells (C=16, N=5; 10 / 100 / 120 classes) with one
initialisation per cell, and reports Spearman and Kendall (bootstrap 95 % CIs) against
the NB201 200-epoch test accuracy of that dataset (`nb201_test_acc_200ep.csv.gz`), the
published value where there is one, the number of failed (NaN) cells, and the seconds
per architecture on this machine after compilation (and the compile time).

Batches (one per dataset, shared by every cell; Suite-Zero's data settings):
  * cifar10: 64 real CIFAR-10 training images (`cifar10_jpeg_yoongikim_...npz`, JPEG-
    decoded), NASLib normalisation, random crop (padding 4) + flip, real labels.
  * cifar100: the 20 real CIFAR-100 test images available here
    (`cifar100_test_first20_foolbox.npz`), batch 20, NASLib CIFAR-100 normalisation,
    crop (padding 4) + flip, real fine labels.
  * imagenet16-120: the 20 real ImageNet-1k validation images available here, box-
    resized to 16x16 (`imagenet_val20_foolbox_resized.npz`), batch 20, ImageNet16-120
    normalisation, crop (padding 2) + flip; labels are the ImageNet-1k ids mod 120
    (ImageNet16-120 class ids are not available: a stand-in for label-based proxies).
Smaller batches change batch-size-dependent proxies (NASWOT's log-determinant is of a
20 x 20 kernel), so the CIFAR-100 / ImageNet16-120 rows are not the published protocol.

Published values (shared/docs/reference.md §C): NAS-Bench-Suite-Zero Fig. 2 Spearman
vs validation accuracy on 1000 random cells (§C.4), NASWOT Kendall (§C.2) and other
papers' numbers (§C.7-C.8); they use other samples, batches and accuracy targets, so
they are context, not a bar. Matplotlib (the `plot` extra) draws the PNG if installed.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from jaxnas import benchmarks, data, evaluation, proxies  # noqa: E402
from jaxnas.spaces import nb201  # noqa: E402

DATASETS = {
    # name: (accuracy column, classes, images file, images key, labels key, normalisation,
    #        batch, crop padding)
    "cifar10": (
        "cifar10_test",
        10,
        "cifar10_jpeg_yoongikim_train1280_test1000.npz",
        "train_images",
        "train_labels",
        "cifar10-naslib",
        64,
        4,
    ),
    "cifar100": (
        "cifar100_test",
        100,
        "cifar100_test_first20_foolbox.npz",
        "images",
        "labels",
        "cifar100-naslib",
        20,
        4,
    ),
    "imagenet16-120": (
        "imagenet16_120_test",
        120,
        "imagenet_val20_foolbox_resized.npz",
        "images_16",
        "labels_in1k",
        "imagenet16-120",
        20,
        2,
    ),
}

# (Spearman or Kendall, C10, C100, IN16, source). Keys are registry names; a proxy
# without an entry shows "-".
PUBLISHED = {
    "naswot": [
        ("spearman", 0.77, 0.80, 0.77, "Suite-Zero Fig. 2 (nwot)"),
        ("kendall", 0.574, 0.611, 0.549, "NASWOT ICML'21 Fig. 3"),
    ],
    "flops": [("spearman", 0.69, 0.71, 0.67, "Suite-Zero Fig. 2")],
    "jacob_cov": [("spearman", 0.75, 0.71, 0.71, "Suite-Zero Fig. 2 (jacov)")],
    "zen": [("spearman", 0.35, 0.35, 0.39, "Suite-Zero Fig. 2")],
    "params": [("spearman", 0.72, 0.73, 0.69, "Suite-Zero Fig. 2")],
    "l2_norm": [("spearman", 0.68, 0.72, 0.69, "Suite-Zero Fig. 2")],
    "synflow": [("spearman", 0.73, 0.76, 0.75, "Suite-Zero Fig. 2")],
    "snip": [("spearman", 0.58, 0.63, 0.57, "Suite-Zero Fig. 2")],
    "grad_norm": [("spearman", 0.58, 0.63, 0.57, "Suite-Zero Fig. 2")],
    "epe_nas": [("spearman", 0.70, 0.60, 0.33, "Suite-Zero Fig. 2")],
    "fisher": [("spearman", 0.50, 0.54, 0.48, "Suite-Zero Fig. 2")],
    "grasp": [("spearman", 0.51, 0.54, 0.55, "Suite-Zero Fig. 2")],
    "plain": [("spearman", -0.26, -0.21, -0.22, "Suite-Zero Fig. 2")],
    "ntk_cond": [("kendall", None, -0.42, None, "TE-NAS ICLR'21 Fig. 1 (kappa_N)")],
    "linear_regions": [("kendall", None, 0.50, None, "TE-NAS ICLR'21 Fig. 1 (R_N)")],
    "az_nas": [("spearman", 0.91, 0.90, 0.89, "L-SWAG CVPR'25 Table 1")],
    "lswag": [("spearman", 0.79, 0.83, 0.80, "L-SWAG CVPR'25 Table 3")],
    "swap": [("spearman", None, 0.90, None, "SWAP ICLR'24 abstract (regularised)")],
    "meco": [("spearman", 0.89, None, None, "MeCo NeurIPS'23 abstract (NATS-TSS)")],
}
COLUMN = {"cifar10": 1, "cifar100": 2, "imagenet16-120": 3}


def make_batch(dataset, seed):
    _, _, filename, images_key, labels_key, norm, batch_size, padding = DATASETS[dataset]
    path = os.path.join(benchmarks.shared_data_dir(), "images", filename)
    images, labels = data.load_npz(path, images_key, labels_key)
    if dataset == "imagenet16-120":
        labels = labels % 120
    key = jax.random.key(seed)
    return data.sample_batch(key, images, labels, batch_size, norm, padding)


def sample_cells(num_cells, seed):
    space = nb201.space()
    rows = jax.random.choice(jax.random.key(seed), space.size, (num_cells,), replace=False)
    return space.enumerate()[np.sort(np.asarray(rows))]


def score(name, dataset, cells, batch, archs_per_call, seed):
    """f32[P] scores, steady seconds per architecture, and the compile seconds."""
    space = nb201.space(num_classes=DATASETS[dataset][1])
    proxy = proxies.get_proxy(name)
    keys = jax.random.split(jax.random.key(seed + 1), 1)

    @jax.jit
    def scorer(population):
        return proxies.score_population(proxy, space, population, batch, keys)

    chunks = [cells[i : i + archs_per_call] for i in range(0, len(cells), archs_per_call)]
    pad = archs_per_call - len(chunks[-1])
    chunks[-1] = np.concatenate([chunks[-1], np.repeat(chunks[-1][:1], pad, axis=0)])
    out, times = [], []
    for chunk in chunks:
        start = time.perf_counter()
        out.append(np.asarray(jax.block_until_ready(scorer(chunk)))[:, 0])
        times.append(time.perf_counter() - start)
    steady = np.median(times[1:]) / archs_per_call if len(times) > 1 else times[0]
    compile_s = times[0] - steady * archs_per_call
    return np.concatenate(out)[: len(cells)], float(steady), float(compile_s)


def run(args):
    cells = sample_cells(args.num_cells, args.seed)
    names = args.proxies.split(",") if args.proxies else sorted(proxies.PROXIES)
    table = benchmarks.Benchmark.from_csv(
        os.path.join(benchmarks.shared_data_dir(), "nasbench201", "nb201_test_acc_200ep.csv.gz")
    )
    archs = [nb201.to_string(g) for g in cells]
    results = {
        "meta": {
            "num_cells": len(cells),
            "seed": args.seed,
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "jax": jax.__version__,
            "device": jax.devices()[0].platform,
            "command": " ".join(sys.argv),
        },
        "archs": archs,
        "targets": {
            ds: table.lookup(DATASETS[ds][0], archs).tolist() for ds in args.datasets.split(",")
        },
        "scores": {},
    }
    for dataset in args.datasets.split(","):
        batch = make_batch(dataset, args.seed)
        for name in names:
            scores, seconds, compile_s = score(
                name, dataset, cells, batch, args.archs_per_call, args.seed
            )
            results["scores"].setdefault(name, {})[dataset] = {
                "scores": [None if np.isnan(v) else float(v) for v in scores],
                "seconds_per_arch": seconds,
                "compile_seconds": compile_s,
            }
            print(f"{dataset:15s} {name:15s} {seconds:7.3f} s/arch, compile {compile_s:6.1f} s")
            if args.scores_out:
                with open(args.scores_out, "w") as f:
                    json.dump(results, f)
    return results


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def correlations(results, bootstrap):
    rows = []
    for name in sorted(results["scores"]):
        for dataset, entry in results["scores"][name].items():
            scores = np.asarray([np.nan if v is None else v for v in entry["scores"]])
            target = np.asarray(results["targets"][dataset])
            r = evaluation.rank_correlations(scores, target, num_bootstrap=bootstrap)
            rows.append((name, dataset, r, entry))
    return rows


def published(name, dataset):
    cells = []
    for kind, *values, source in PUBLISHED.get(name, []):
        value = values[COLUMN[dataset] - 1]
        if value is not None:
            cells.append(f"{'ρ' if kind == 'spearman' else 'τ'} {value:.2f} ({source})")
    return "; ".join(cells) or "-"


def write_markdown(results, rows, path, png):
    meta = results["meta"]
    lines = [
        "# Proxy correlations on NAS-Bench-201",
        "",
        "Written by `scripts/proxy_report.py` (see its docstring for the protocol). "
        f"Command: `{meta['command']}`; {meta['date']}; {meta['machine']}; "
        f"jax {meta['jax']} on {meta['device']}.",
        "",
        f"{meta['num_cells']} NB201 cells drawn uniformly without replacement "
        f"(seed {meta['seed']}) from all 15,625; C=16, N=5; one initialisation per cell. "
        "Target: NB201 200-epoch test accuracy (`nb201_test_acc_200ep.csv.gz`). "
        "Intervals: 95 % bootstrap. *failed*: NaN scores, excluded. *s/arch*: steady "
        "seconds per architecture after compilation (batch as listed), timings "
        "taken on a shared CPU and possibly inflated by other jobs.",
        "",
        "Batches: CIFAR-10 64 real training images (JPEG-decoded), CIFAR-100 the 20 real "
        "test images available, ImageNet16-120 20 real ImageNet-1k images at 16x16 "
        "(labels: ImageNet-1k id mod 120). Published values use other samples, batches "
        "and (Suite-Zero) validation accuracy: context, not a bar.",
        "",
    ]
    if png:
        lines += [f"![Spearman per proxy]({os.path.basename(png)})", ""]
    for dataset in DATASETS:
        subset = [r for r in rows if r[1] == dataset]
        if not subset:
            continue
        lines += [
            f"## {dataset}",
            "",
            "| proxy | n | failed | Spearman ρ [95 % CI] | Kendall τ [95 % CI] | published | "
            "s/arch | compile s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, _, r, entry in subset:
            lines.append(
                f"| {name} | {r['n']} | {r['n_failed']} | {r['spearman']:.3f} "
                f"[{r['spearman_ci'][0]:.3f}, {r['spearman_ci'][1]:.3f}] | "
                f"{r['kendall']:.3f} [{r['kendall_ci'][0]:.3f}, {r['kendall_ci'][1]:.3f}] | "
                f"{published(name, dataset)} | {entry['seconds_per_arch']:.3f} | "
                f"{entry['compile_seconds']:.0f} |"
            )
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_png(rows, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install -e '.[plot]'); no PNG")
        return False
    names = sorted({r[0] for r in rows})
    datasets = [d for d in DATASETS if any(r[1] == d for r in rows)]
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names) * len(datasets) / 1.5), 4.5))
    width = 0.8 / len(datasets)
    for j, dataset in enumerate(datasets):
        by_name = {r[0]: r[2] for r in rows if r[1] == dataset}
        xs = np.arange(len(names)) + j * width
        rho = [by_name[n]["spearman"] if n in by_name else np.nan for n in names]
        lo = [
            rho[i] - by_name[n]["spearman_ci"][0] if n in by_name else 0
            for i, n in enumerate(names)
        ]
        hi = [
            by_name[n]["spearman_ci"][1] - rho[i] if n in by_name else 0
            for i, n in enumerate(names)
        ]
        ax.bar(xs, rho, width, yerr=[lo, hi], label=f"ours, {dataset}", capsize=2)
        pub = [
            next((v[COLUMN[dataset]] for v in PUBLISHED.get(n, []) if v[0] == "spearman"), None)
            for n in names
        ]
        ax.scatter(
            xs,
            [np.nan if p is None else p for p in pub],
            marker="_",
            s=120,
            color="black",
            zorder=3,
            label="published ρ" if j == 0 else None,
        )
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=45, ha="right")
    ax.set_ylabel("Spearman ρ vs NB201 test accuracy")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-cells", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--proxies", default="", help="comma-separated (default: all)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--archs-per-call", type=int, default=10)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", default="docs/proxy_correlations.md")
    parser.add_argument("--png", default="docs/proxy_correlations.png")
    parser.add_argument("--scores-out", default="", help="also save raw scores (JSON)")
    parser.add_argument("--from-scores", default="", help="re-render saved scores")
    args = parser.parse_args()
    if args.from_scores:
        with open(args.from_scores) as f:
            results = json.load(f)
    else:
        results = run(args)
    rows = correlations(results, args.bootstrap)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    png = args.png if args.png and write_png(rows, args.png) else ""
    write_markdown(results, rows, args.out, png)
    print(f"wrote {args.out}" + (f" and {png}" if png else ""))


if __name__ == "__main__":
    main()
