"""Correlation report of every registered proxy on NAS-Bench-201, next to published values.

  python scripts/proxy_report.py --rebuild     # docs/proxy_correlations.md from runs/
  python scripts/proxy_report.py --num-cells 300 \\
      [--proxies synflow,snip] [--datasets cifar10,cifar100,imagenet16-120] \\
      [--scores-out runs/S.json] [--out docs/proxy_correlations.md]
  python scripts/proxy_report.py --from-scores runs/S.json   # re-render only
  python scripts/proxy_report.py --from-scores S.json --runs runs/nb201_sz runs/nb101_sz

`--rebuild` renders `docs/proxy_correlations.md` (and its PNG) from the score files and
run folders listed in `docs/proxy_correlations_inputs.txt`, in that order, without
scoring; inputs that are missing are named (on the console and in the document) and
their rows left out. Each input records the command that produced it (a score file's
`meta.command`, a run folder's `command.txt`), shown in the rows it gives.

`--runs` adds CLI score runs (`python -m jaxnas.main` workdirs: config.json, report.json,
scores.jsonl) on benchmark tables, e.g. the NAS-Bench-Suite-Zero configs: per table, each
proxy's Spearman / Kendall vs the run's targets, the published score column's on the
same cells (Suite-Zero's `nwot`, `jacov`, ... next to our `naswot`, `jacob_cov`, ...),
their paired-bootstrap difference, Spearman(ours, published column), and seconds per
architecture (shared by the proxies of a fused run). Runs on NB201 tables also give
the CIFAR-10 test-accuracy row of a proxy the script did not score itself (their
scores come from the 64-image CIFAR-10 batch of the Suite-Zero settings). Where several
runs score a proxy on the same table, the one with the most cells is shown.

For each proxy of `jaxnas.proxies.PROXIES` (or `--proxies`) and each dataset, scores the
same seeded sample of NB201 cells (10 / 100 / 120 classes) and reports Spearman and
Kendall (bootstrap 95 % CIs) against the NB201 200-epoch test accuracy of that dataset
(`nb201_test_acc_200ep.csv.gz`), the published value where there is one, the number of
failed (NaN) cells, and the seconds per architecture on this machine after compilation
(and the compile time). `--scores-out` saves after every (proxy, dataset) and a rerun
with the same file skips what it holds, so a long report can be built in parts.
`--fuse` scores the proxies that share a protocol and network overrides in one
compiled program on one batch (`proxies.fuse_groups(..., dataset=...)`,
`proxies.stack`; the loss and input gradients are then computed once), and reports the
group's seconds per architecture.

Batches (one per proxy and dataset, shared by every cell): the datasets of
`jaxnas.proxies.protocols.NB201_DATASETS` (Suite-Zero's data settings: real images of
the shared data, NASLib normalisation, random crop + flip; CIFAR-10 64 training images,
CIFAR-100 the 20 test images available, ImageNet16-120 20 ImageNet-1k images at 16x16
with stand-in labels). Protocols: each proxy's registry record (`proxies.PROXIES[name]
.protocol`): by default the full network (C=16, N=5), one initialisation per cell and
the dataset's batch; proxies with a reference protocol (reference.md §A) use it, capped
at the images available; the document lists them. Labels go into the batch only when a
proxy of the group declares them (`labels`).

`az_nas (aggregate)` is AZ-NAS's rank aggregation of its three components and flops.
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
import zlib

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from jaxnas import (  # noqa: E402
    benchmarks,
    compilation_cache,
    configs,
    evaluation,
    proxies,
    scoring,
    xla_settings,
)
from jaxnas.progress import Progress  # noqa: E402
from jaxnas.proxies import aznas, protocols  # noqa: E402
from jaxnas.spaces import nb201  # noqa: E402

DATASETS = protocols.NB201_DATASETS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = "docs/proxy_correlations.md"
INPUTS = "docs/proxy_correlations_inputs.txt"

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
    "az_nas (aggregate)": [("spearman", 0.91, 0.90, 0.89, "L-SWAG CVPR'25 Table 1")],
    "lswag": [("spearman", 0.79, 0.83, 0.80, "L-SWAG CVPR'25 Table 3")],
    "swap": [("spearman", None, 0.90, None, "SWAP ICLR'24 abstract (regularised)")],
    "meco": [("spearman", 0.89, None, None, "MeCo NeurIPS'23 abstract (NATS-TSS)")],
}
COLUMN = {"cifar10": 1, "cifar100": 2, "imagenet16-120": 3}


# Published Spearman vs validation accuracy on other tables (reference.md §C.2, §C.4, §C.8),
# by table file and proxy: (value, statistic, source).
PUBLISHED_TABLES = {
    "nb201_zc_suitezero_cifar10_9445.csv.gz": {
        name: (values[0][1], "ρ", "Suite-Zero Fig. 2, NB201 C10")
        for name, values in PUBLISHED.items()
        if values[0][0] == "spearman" and values[0][4].startswith("Suite-Zero")
    },
    "nb101_zc_suitezero_subset250_cifar10.csv.gz": {
        **{
            name: (v, "ρ", "Suite-Zero Fig. 2, NB101")
            for name, v in {
                "params": 0.37,
                "flops": 0.36,
                "l2_norm": 0.50,
                "synflow": 0.31,
                "grasp": 0.27,
                "epe_nas": 0.00,
                "snip": -0.19,
                "grad_norm": -0.25,
                "jacob_cov": -0.29,
                "fisher": -0.28,
                "plain": -0.32,
                "zen": 0.59,
            }.items()
        },
        "naswot": (0.285, "τ", "NASWOT ICML'21 Fig. 3 (ρ 0.31: Suite-Zero)"),
    },
    "nb301_zc_suitezero_subset363_cifar10.csv.gz": {
        name: (v, "ρ", "Suite-Zero Fig. 2, NB301")
        for name, v in {
            "naswot": 0.47,
            "params": 0.46,
            "flops": 0.42,
            "l2_norm": 0.45,
            "synflow": 0.18,
            "grasp": 0.34,
            "epe_nas": 0.00,
            "snip": -0.05,
            "grad_norm": -0.04,
            "jacob_cov": -0.04,
            "fisher": -0.28,
            "plain": -0.32,
            "zen": 0.43,
        }.items()
    },
    "swap_darts_1000_cifar10.csv.gz": {
        "swap": (0.93, "ρ", "SWAP journal ext. abstract (regularised SWAP)"),
    },
}
TEST_ACCURACY = "nb201_test_acc_200ep.csv.gz"


def _score_value(value):
    return np.nan if value is None else float(value)


def load_run(workdir):
    """A CLI score run: its table, targets, per-proxy scores and per-group timing."""
    config = json.load(open(os.path.join(workdir, "config.json")))
    report = json.load(open(os.path.join(workdir, "report.json")))
    rows = [json.loads(line) for line in open(os.path.join(workdir, "scores.jsonl"))]
    # Runs written before a benchmark field existed used its default.
    bench = {**configs.default_config().benchmark.to_dict(), **config["benchmark"]}
    names = [k for k in rows[0] if k not in ("arch", "genotype", "index")]
    seconds = {}
    for group, t in report["timing"].items():
        rate = t["archs_per_second_after_compile"]  # None: a single (compiling) call
        for name in group.split("+"):
            seconds[name] = (1.0 / rate if rate else np.nan, group)
    command = os.path.join(workdir, "command.txt")
    return {
        "workdir": workdir,
        "command": open(command).read().strip() if os.path.exists(command) else workdir,
        "space": config["space"]["name"],
        "table": bench["path"],
        "key": bench["key"],
        "key_columns": tuple(bench["key_columns"]),
        "separator": bench["key_separator"],
        "targets": tuple(bench["targets"]),
        "archs": [r["arch"] for r in rows],
        "scores": {n: np.asarray([_score_value(r[n]["score"]) for r in rows]) for n in names},
        "seconds": seconds,
        "batch": config["data"]["batch_size"],
        "per_cell": bool(config["data"].get("batch_per_arch", False)),
    }


def run_rows(runs, bootstrap):
    """Per (table, proxy, shared batch or a batch per cell, batch size): correlations of
    the largest run scoring it."""
    best = {}
    for run in runs:
        for name, scores in run["scores"].items():
            key = (os.path.basename(run["table"]), name, run["per_cell"], run["batch"])
            if key not in best or len(scores) > len(best[key][1]):
                best[key] = (run, scores)
    tables, rows = {}, []
    for (table_name, name, per_cell, _), (run, scores) in sorted(best.items()):
        if run["table"] not in tables:
            tables[run["table"]] = benchmarks.Benchmark.from_csv(
                run["table"],
                key=run["key"],
                key_columns=run["key_columns"],
                separator=run["separator"],
            )
        table = tables[run["table"]]
        column = configs.suite_zero_column(name)
        reference = table.lookup(column, run["archs"]) if column in table.columns else None
        # A table without targets (scores only) still gets a row: ours vs its column.
        for target in run["targets"] or ((None,) if reference is not None else ()):
            truth = None if target is None else table.lookup(target, run["archs"])
            row = {
                "table": table_name,
                "space": run["space"],
                "proxy": name,
                "target": target or "-",
                "seconds": run["seconds"].get(name),
                "batch": run["batch"],
                "per_cell": per_cell,
                "workdir": run["workdir"],
                "command": run["command"],
            }
            if truth is not None:
                row["ours"] = evaluation.rank_correlations(scores, truth, num_bootstrap=bootstrap)
            if reference is not None:
                row["column"] = column
                row["agreement"] = evaluation.rank_correlations(
                    scores, reference, num_bootstrap=bootstrap
                )
                row["medians"] = (float(np.nanmedian(scores)), float(np.nanmedian(reference)))
                row["relative"] = float(
                    np.nanmedian(np.abs(scores - reference) / np.abs(reference))
                )
            if reference is not None and truth is not None:
                row["reference"] = evaluation.rank_correlations(
                    reference, truth, num_bootstrap=bootstrap
                )
                row["difference"] = evaluation.spearman_difference(
                    scores, reference, truth, num_bootstrap=bootstrap
                )
            rows.append(row)
    return rows, best


def nb201_test_rows(best, results, bootstrap):
    """CIFAR-10 test-accuracy rows from NB201 runs, for proxies `results` lacks there."""
    path = os.path.join(benchmarks.shared_data_dir(), "nasbench201", TEST_ACCURACY)
    table = None
    rows = []
    for (_, name, per_cell, _), (run, scores) in sorted(best.items()):
        scored = results["scores"].get(name, {}) if results else {}
        if run["space"] != "nb201" or "cifar10" in scored or per_cell:
            continue
        table = table or benchmarks.Benchmark.from_csv(path)
        truth = table.lookup(DATASETS["cifar10"].accuracy, run["archs"])
        r = evaluation.rank_correlations(scores, truth, num_bootstrap=bootstrap)
        seconds, group = run["seconds"].get(name, (np.nan, name))
        entry = {
            "seconds_per_arch": seconds,
            "compile_seconds": None,
            "group": group,
            "batch": run["batch"],
        }
        rows.append((name, "cifar10", r, {**entry, "source": f"`{run['command']}`"}))
    return rows


def sample_cells(num_cells, seed):
    space = nb201.space()
    rows = jax.random.choice(jax.random.key(seed), space.size, (num_cells,), replace=False)
    return space.enumerate()[np.sort(np.asarray(rows))]


def score(names, dataset, cells, archs_per_call, seed):
    """f32[P, M] scores of `names` (mean over inits), steady s/arch, compile s, batch size.

    The names share one protocol (`proxies.fuse_groups`); several are stacked
    (`proxies.stack`) into one compiled program on one batch, so shared intermediates
    are computed once. The cells are scored by the CLI's engine (`jaxnas.scoring`),
    compiled ahead of the calls so that compilation is timed apart; s/arch is the mean
    over the calls, padding of the last one included.
    """
    protocol = proxies.record(names[0]).protocol.on(DATASETS[dataset])
    space = nb201.space(**protocol.network, num_classes=DATASETS[dataset].num_classes)
    proxy = proxies.stack(*[proxies.get_proxy(n) for n in names])
    label = "+".join(names)
    key_batch, key_init = jax.random.split(
        jax.random.fold_in(jax.random.key(seed), zlib.crc32(f"{label}/{dataset}".encode()))
    )
    labels = any(proxies.record(n).labels for n in names)
    batch = protocols.protocol_batch(DATASETS[dataset], protocol, key_batch, labels)
    keys = jax.random.split(key_init, protocol.num_inits)
    mesh = proxies.population_mesh()
    scorer = scoring.make_scorer(proxy, space, mesh=mesh)
    start = time.perf_counter()
    compiled = scoring.compile_scorer(scorer, cells, batch, keys, archs_per_call, mesh)
    compile_s = time.perf_counter() - start
    progress = Progress(len(cells), f"{dataset} {label}")
    # f32[C, K, M] scores.
    scores = scoring.score_chunks(compiled, cells, batch, keys, archs_per_call, progress, mesh=mesh)
    steady = (time.perf_counter() - progress.start) / len(cells)
    mean = np.stack([proxies.aggregate(scores[..., m]) for m in range(len(names))], -1)
    return mean, float(steady), float(compile_s), batch["x"].shape[0]


def run(args):
    """Scores every (proxy, dataset) not yet in `--scores-out`, saving after each."""
    cells = sample_cells(args.num_cells, args.seed)
    names = args.proxies.split(",") if args.proxies else sorted(proxies.PROXIES)
    table = benchmarks.Benchmark.from_csv(
        os.path.join(benchmarks.shared_data_dir(), "nasbench201", TEST_ACCURACY)
    )
    archs = [nb201.to_string(g) for g in cells]
    datasets = args.datasets.split(",")
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
        "targets": {ds: table.lookup(DATASETS[ds].accuracy, archs).tolist() for ds in DATASETS},
        "scores": {},
    }
    if args.scores_out and os.path.exists(args.scores_out):
        saved = json.load(open(args.scores_out))
        if saved["archs"] == archs:
            results["scores"] = saved["scores"]
    for dataset in datasets:
        pending = [n for n in names if dataset not in results["scores"].get(n, {})]
        groups = (
            proxies.fuse_groups(pending, dataset=DATASETS[dataset])
            if args.fuse
            else [[n] for n in pending]
        )
        for group in groups:
            scores, seconds, compile_s, batch_size = score(
                group, dataset, cells, args.archs_per_call, args.seed
            )
            for m, name in enumerate(group):
                results["scores"].setdefault(name, {})[dataset] = {
                    "scores": [None if np.isnan(v) else float(v) for v in scores[:, m]],
                    "seconds_per_arch": seconds,
                    "compile_seconds": compile_s,
                    "batch": batch_size,
                    **({"group": "+".join(group)} if len(group) > 1 else {}),
                }
            print(
                f"{dataset:15s} {'+'.join(group):17s} batch {batch_size:4d} {seconds:7.3f} "
                f"s/arch, compile {compile_s:6.1f} s",
                flush=True,
            )
            if args.scores_out:
                with open(args.scores_out, "w") as f:
                    json.dump(results, f)
    return results


def with_az_nas(results):
    """Adds AZ-NAS's rank aggregate of its components and flops where all are scored."""
    parts = [f"az_{c}" for c in aznas.COMPONENTS] + ["flops"]
    for dataset in DATASETS:
        entries = [results["scores"].get(p, {}).get(dataset) for p in parts]
        if any(e is None or "targets" in e for e in entries):  # missing, or other cells
            continue
        matrix = np.asarray([[np.nan if v is None else v for v in e["scores"]] for e in entries])
        results["scores"].setdefault("az_nas (aggregate)", {})[dataset] = {
            "scores": [float(v) for v in np.asarray(aznas.rank_aggregate(matrix.T))],
            "seconds_per_arch": sum(e["seconds_per_arch"] for e in entries),
            "compile_seconds": sum(e["compile_seconds"] for e in entries),
            "batch": entries[0].get("batch"),
            "source": "rank aggregate of the " + ", ".join(parts) + " rows",
        }
    return results


def correlations(results, bootstrap):
    rows = []
    for name in sorted(results["scores"]):
        for dataset, entry in results["scores"][name].items():
            scores = np.asarray([np.nan if v is None else v for v in entry["scores"]])
            target = np.asarray(entry.get("targets", results["targets"][dataset]))
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


def _ci(r, name):
    lo, hi = r[f"{name}_ci"]
    return f"{r[name]:.3f} [{lo:.3f}, {hi:.3f}]"


def _seconds(entry):
    seconds = entry.get("seconds_per_arch")
    if seconds is None or np.isnan(seconds):
        return "-"
    group = entry.get("group", "")
    shared = f" (shared: {group})" if "+" in group else ""
    return f"{seconds:.3f}{shared}"


def _header(meta, command, inputs, missing):
    """The title and provenance; `inputs`: the input list of a `--rebuild` (or None)."""
    lines = ["# Proxy correlations", ""]
    if inputs:
        lines += [
            f"Rebuild: `python scripts/proxy_report.py --rebuild` (from the repository "
            f"root) renders this file from the score files and run folders listed in "
            f"`{inputs}` (under `runs/`, git-ignored); each row names the command that "
            "produced its input.",
            "",
        ]
    if missing:
        lines += [
            "Inputs missing at this render (their rows are absent): "
            + ", ".join(f"`{m}`" for m in missing)
            + ".",
            "",
        ]
    lines += [
        f"Written by `scripts/proxy_report.py`; command: "
        f"`{command}`; {datetime.date.today().isoformat()}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"jax {jax.__version__} on {jax.devices()[0].platform}. Intervals: 95 % bootstrap. "
        "*failed*: NaN scores, excluded. *s/arch*: steady seconds per architecture after "
        "compilation, on a shared CPU (other jobs may inflate them); a fused run computes "
        "several proxies in one program and its time is shared by them.",
        "",
    ]
    if meta:
        lines += [
            f"NB201 scoring by this script: `{meta['command']}` ({meta['date']}, "
            f"{meta['machine']}).",
            "",
        ]
    return lines


def runs_markdown(rows):
    """Tables of CLI runs on benchmark tables: ours vs the published column."""
    lines = []
    for table in sorted({r["table"] for r in rows}):
        subset = [r for r in rows if r["table"] == table]
        batches = "/".join(str(b) for b in sorted({r["batch"] for r in subset}))
        lines += [
            f"### `{table}` ({subset[0]['space']} space, batch {batches})",
            "",
            "| proxy | batch | target | n | failed | ours: Spearman ρ [CI] | Kendall τ [CI] | "
            "published column: ρ [CI] | ours − column [paired CI] | ρ(ours, column) | "
            "published elsewhere | s/arch | run |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in subset:
            o = r.get("ours") or r["agreement"]
            ours = (_ci(o, "spearman"), _ci(o, "kendall")) if "ours" in r else ("-", "-")
            ref = diff = agree = "-"
            if "reference" in r:
                ref = f"`{r['column']}` {_ci(r['reference'], 'spearman')}"
                d = r["difference"]
                lo, hi = d["difference_ci"]
                diff = f"{d['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            elif "column" in r:
                ref = (
                    f"`{r['column']}` median {r['medians'][1]:.4g} (ours "
                    f"{r['medians'][0]:.4g}; per cell |ours − column| / |column|: median "
                    f"{100 * r['relative']:.2g} %)"
                )
            if "agreement" in r:
                a = r["agreement"]
                agree = f"{a['spearman']:.3f}" if "ours" in r else _ci(a, "spearman")
            value = PUBLISHED_TABLES.get(table, {}).get(r["proxy"])
            pub = f"{value[1]} {value[0]:.2f} ({value[2]})" if value else "-"
            seconds = "-"
            if r["seconds"] is not None:
                seconds = _seconds({"seconds_per_arch": r["seconds"][0], "group": r["seconds"][1]})
            lines.append(
                f"| {r['proxy']} | {'per cell' if r['per_cell'] else 'shared'}, {r['batch']} | "
                f"{r['target']} | {o['n']} | {o['n_failed']} | "
                f"{ours[0]} | {ours[1]} | {ref} | {diff} | {agree} | "
                f"{pub} | {seconds} | `{r['command']}` |"
            )
        lines.append("")
    return lines


def protocols_markdown():
    """The reference protocols the NB201 rows were scored under, from the registry."""
    lines = [
        "Protocols of the NB201 rows (`proxies.PROXIES[name].protocol`): the benchmark "
        "network (C=16, N=5), the dataset's batch and one initialisation, except:",
        "",
        "| proxy | network; inputs; initialisations | reference |",
        "|---|---|---|",
    ]
    for name, entry in sorted(proxies.PROXIES.items()):
        if entry.protocol != protocols.DEFAULT_PROTOCOL:
            lines.append(f"| {name} | {entry.protocol.describe()} | {entry.protocol.reference} |")
    return [*lines, ""]


def write_markdown(meta, rows, run_table_rows, path, png, command, inputs=None, missing=()):
    lines = _header(meta, command, inputs, missing)
    if run_table_rows:
        lines += [
            "## Benchmark tables: ours next to the published scores",
            "",
            "CLI score runs (`python -m jaxnas.main --config=configs/..._suitezero_proxies.py`"
            " and others): each proxy on the table's own cells and target, next to the "
            "table's published column for the same proxy on the same cells (NAS-Bench-"
            "Suite-Zero's scores; its settings: batch 64 of augmented CIFAR-10, one "
            "initialisation per cell, a new batch per cell; the NB101 and NB301 tables' "
            "levels show batch 32, WORKSPACE_NOTES.md). *batch*: one seeded batch "
            "shared by all cells (our default) or a batch per cell (`per_cell=1`, "
            "Suite-Zero's protocol), and its size. *ours − column*: difference of the two "
            "Spearman ρ vs the target, paired bootstrap interval (issue 3's bar: "
            "|difference| ≤ 0.05 on 1,000 NB201 cells).",
            "",
            *runs_markdown(run_table_rows),
        ]
    if rows:
        lines += [
            "## NAS-Bench-201 test accuracy (CIFAR-10, CIFAR-100, ImageNet16-120)",
            "",
            "Rows scored by this script: its seeded sample of NB201 cells (C=16, N=5, one "
            "initialisation per cell); batches: CIFAR-10 64 real training images (JPEG-"
            "decoded), CIFAR-100 the 20 real test images available, ImageNet16-120 20 real "
            "ImageNet-1k images at 16x16 (labels: ImageNet-1k id mod 120). CIFAR-10 rows "
            "marked with a run come from that CLI run's Suite-Zero cells and batch. Target: "
            "NB201 200-epoch test accuracy (`nb201_test_acc_200ep.csv.gz`). Published "
            "values use other samples, batches and (Suite-Zero) validation accuracy: "
            "context, not a bar.",
            "",
        ]
        lines += protocols_markdown()
        if png:
            lines += [f"![Spearman per proxy]({os.path.basename(png)})", ""]
        for dataset in DATASETS:
            subset = [r for r in rows if r[1] == dataset]
            if not subset:
                continue
            lines += [
                f"### {dataset}",
                "",
                "| proxy | n | failed | Spearman ρ [95 % CI] | Kendall τ [95 % CI] | "
                "published | batch | s/arch | compile s | source |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for name, _, r, entry in subset:
                # Runs before the compile was timed on its own estimated it as the first
                # call minus a steady one, which load changes can make negative.
                compile_s = entry.get("compile_seconds")
                if compile_s is not None and compile_s < 0:
                    compile_s = None
                lines.append(
                    f"| {name} | {r['n']} | {r['n_failed']} | {_ci(r, 'spearman')} | "
                    f"{_ci(r, 'kendall')} | {published(name, dataset)} | "
                    f"{entry.get('batch', '-')} | {_seconds(entry)} | "
                    f"{'-' if compile_s is None else f'{compile_s:.0f}'} | "
                    f"{entry.get('source', 'this script')} |"
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


def read_inputs(path):
    """(score files, run folders, missing paths) listed in `path`, in its order: one path
    per line, `#` comments; `.json` files are score files, others run folders."""
    scores, runs, missing = [], [], []
    with open(path) as f:
        for line in f:
            item = line.split("#", 1)[0].strip()
            if not item:
                continue
            if not os.path.exists(item):
                missing.append(item)
            else:
                (scores if item.endswith(".json") else runs).append(item)
    return scores, runs, missing


def read_scores(paths):
    """Saved scores (`--scores-out` files) merged in order, or None; each entry names the
    command that scored it (`source`), and entries scored on other cells than the first
    file's keep their own targets."""
    results = None
    for path in paths:
        with open(path) as f:
            saved = json.load(f)
        own_cells = results is None or saved["archs"] == results["archs"]
        for by_dataset in saved["scores"].values():
            for dataset, entry in by_dataset.items():
                entry.setdefault("source", f"`{saved['meta']['command']}`")
                if not own_cells:
                    entry["targets"] = saved["targets"][dataset]
        if results is None:
            results = saved
            continue
        for name, by_dataset in saved["scores"].items():
            results["scores"].setdefault(name, {}).update(by_dataset)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-cells", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--proxies", default="", help="comma-separated (default: all)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--archs-per-call", type=int, default=10)
    parser.add_argument(
        "--fuse", action="store_true", help="score proxies of one protocol together"
    )
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", default=DOC)
    parser.add_argument("--png", default="docs/proxy_correlations.png")
    parser.add_argument("--scores-out", default="", help="also save raw scores (JSON)")
    parser.add_argument(
        "--from-scores",
        nargs="*",
        default=[],
        help="re-render saved scores (entries scored on other cells keep their own targets)",
    )
    parser.add_argument("--runs", nargs="*", default=[], help="CLI score workdirs to add")
    parser.add_argument("--no-scoring", action="store_true", help="only --runs / --from-scores")
    parser.add_argument(
        "--rebuild", action="store_true", help="render --out from the inputs in --inputs"
    )
    parser.add_argument("--inputs", default=INPUTS, help="the input list of --rebuild")
    args = parser.parse_args()
    missing = []
    if args.rebuild:
        os.chdir(ROOT)
        args.from_scores, args.runs, missing = read_inputs(args.inputs)
        args.no_scoring = True
        if not args.from_scores and not args.runs:
            parser.error(
                f"none of the inputs listed in {args.inputs} exists; {args.out} left as is"
            )
        for path in missing:
            print(f"missing input {path}: its rows are left out")
    results = read_scores(args.from_scores)
    if results is None and not args.no_scoring:
        results = run(args)
    rows = correlations(with_az_nas(results), args.bootstrap) if results else []
    runs = [load_run(workdir) for workdir in args.runs]
    run_table_rows, best = run_rows(runs, args.bootstrap)
    rows += nb201_test_rows(best, results, args.bootstrap)
    rows.sort(key=lambda r: (r[1], r[0]))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    png = args.png if rows and args.png and write_png(rows, args.png) else ""
    meta = results["meta"] if results else None
    inputs = args.inputs if args.rebuild else None
    write_markdown(meta, rows, run_table_rows, args.out, png, " ".join(sys.argv), inputs, missing)
    print(f"wrote {args.out}" + (f" and {png}" if png else ""))


if __name__ == "__main__":
    xla_settings.prefer_memory_schedule()
    compilation_cache.enable()
    main()
