"""Compile and run time of every proxy on nb201, nb101 and darts -> a Markdown table.

  python scripts/bench_all.py [--proxies naswot snip ...] [--spaces nb201 nb101 darts] \
      [--small] [--batch-size 64] [--out docs/performance.md]

Each (proxy, space) runs in its own worker process (`scripts/bench_compile.py`'s worker:
cold compile, persistent cache off): tracing + lowering, XLA compile, steady seconds per
cell over the calls after the first, peak resident memory. `--small` uses reduced networks
(NB201 C=4 N=1, NB101 16-channel stem 1 cell per stack, DARTS C=4 2 cells) for a quick
check on a busy machine; the default is each space's benchmark network. The header records
the machine, its load before and after, and the command.

PyTorch side by side (NB201, when torch is installed: `pip install -e '.[torch]'`): right
after each NB201 worker, this process scores the worker's own cells (the ones it timed
after its first call) with the independent PyTorch oracles at the same size and batch
(`torch_nb201_oracle.py`: the full network and NASWOT's reference protocol, forward +
backward then a hooked forward; `torch_suitezero_oracle.py`: zero-cost-nas's measures,
each on a copy of the network as zero-cost-nas scores), per cell building the network
from scratch as a PyTorch user does, on `--torch-threads` (all cores), and records
seconds per cell and the ratio PyTorch / jaxnas (above 1: jaxnas is faster). NB101 and
DARTS have no PyTorch column. A failing cell is written as its one-line error.
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_compile  # noqa: E402  (scripts/bench_compile.py, beside this script)

SMALL = {
    "nb201": {"channels": 4, "cells_per_stage": 1},
    "nb101": {"stem_channels": 16, "cells_per_stack": 1},
    "darts": {"channels": 4, "num_cells": 2, "reductions": [1]},
}
TORCH_PROXIES = ("naswot", "snip", "grad_norm", "plain", "synflow", "grasp", "fisher", "jacob_cov")


def torch_seconds_per_cell(proxy, cells, batch_size, small, threads):
    """Seconds per NB201 cell of the PyTorch oracle of `proxy` over `cells` (the first
    is a warm-up), or None when no oracle exists or torch is not installed."""
    if proxy not in TORCH_PROXIES:
        return None
    try:
        import torch
    except ImportError:
        return None
    import torch_nb201_oracle as nb201
    import torch_suitezero_oracle as suitezero

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, 32, 32, generator=generator)
    y = torch.randint(0, 10, (batch_size,), generator=generator)
    size = SMALL["nb201"] if small else {}

    def score(genotype):
        model = nb201.build(genotype, **size).train()
        if proxy == "naswot":
            return nb201.naswot(model, x, protocol="reference", match="relu")
        if proxy == "synflow":
            return suitezero.synflow(model, x.shape)
        if proxy == "jacob_cov":
            try:
                return suitezero.jacob_cov(model, x)
            except np.linalg.LinAlgError:  # a zero input Jacobian (no path): timed all the same
                return float("nan")
        return getattr(suitezero, proxy)(model, x, y)

    score(cells[0])
    start = time.perf_counter()
    for genotype in cells[1:]:
        score(genotype)
    return (time.perf_counter() - start) / max(len(cells) - 1, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", nargs="+", default=["naswot", "snip", "grad_norm", "synflow"])
    parser.add_argument("--spaces", nargs="+", default=["nb201", "nb101", "darts"])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-archs", type=int, default=8)
    parser.add_argument("--archs-per-call", type=int, default=4)
    parser.add_argument("--out", default="docs/performance.md")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=os.cpu_count(),
        help="PyTorch's intra-op threads (all cores; 1 suits tiny networks on a busy machine)",
    )
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    rows = []
    for space in args.spaces:
        for proxy in args.proxies:
            worker_args = argparse.Namespace(
                space=space,
                space_kwargs=json.dumps(SMALL[space] if args.small else {}),
                batch_size=args.batch_size,
                num_archs=args.num_archs,
                archs_per_call=args.archs_per_call,
                seed=0,
            )
            try:
                r = bench_compile.run_worker(bench_compile.ROOT, worker_args, proxy)
                cells = (
                    f"{r['trace_s']:.1f} | {r['compile_s']:.1f} | "
                    f"{r['steady_s_per_cell']:.3f} | {r['peak_rss_gb']:.2f}"
                )
                # The worker's full calls after its first, plus one warm-up cell before them.
                n = args.archs_per_call
                timed = np.asarray(r["cells"][n - 1 : len(r["cells"]) // n * n])
                torch_s = (
                    torch_seconds_per_cell(
                        proxy, timed, args.batch_size, args.small, args.torch_threads
                    )
                    if space == "nb201"
                    else None
                )
                cells += (
                    " | |"
                    if torch_s is None
                    else f" | {torch_s:.3f} | {torch_s / r['steady_s_per_cell']:.2f}"
                )
            except RuntimeError as exc:
                cells = f"error: {str(exc).strip().splitlines()[-1][:120]} | | | | |"
            rows.append(f"| {proxy} | {space} | {cells} |")
            print(rows[-1], flush=True)
    header = [
        "# Performance",
        "",
        f"Command: `python {' '.join(sys.argv)}`  ",
        f"Machine: {platform.machine()} CPU, {os.cpu_count()} cores, {platform.system()}; "
        f"load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).  ",
        f"Networks: {'reduced (--small)' if args.small else 'benchmark size'}; batch "
        f"{args.batch_size}; {args.num_archs} cells in calls of {args.archs_per_call}.",
        "",
        "Figures taken under load are inflated; compare rows of one run only.",
        "",
        "PyTorch s/cell: the independent PyTorch oracle on the same cells and batch size,",
        f"building each network, {args.torch_threads} threads (NB201 only); ratio: PyTorch / "
        "jaxnas steady seconds.",
        "",
        "| proxy | space | trace s | compile s | steady s/cell | peak RSS GB | "
        "PyTorch s/cell | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(header + rows) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
