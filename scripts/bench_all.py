"""Compile and run time of every proxy on nb201, nb101 and darts -> a Markdown table.

  python scripts/bench_all.py [--proxies naswot snip ...] [--spaces nb201 nb101 darts] \
      [--small] [--batch-size 64] [--out docs/performance.md]

Each (proxy, space) runs in its own worker process (`scripts/bench_compile.py`'s worker:
cold compile, persistent cache off): tracing + lowering, XLA compile, steady seconds per
cell over the calls after the first, peak resident memory. `--small` uses reduced networks
(NB201 C=4 N=1, NB101 16-channel stem 1 cell per stack, DARTS C=4 2 cells) for a quick
check on a busy machine; the default is each space's benchmark network. The header records
the machine, its load before and after, and the command.

Not yet in the table: the ratio to the PyTorch oracles side by side (scripts/
bench_naswot.py and bench_synflow.py measure those for their proxies); a failing cell is
written as its one-line error.
"""

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_compile  # noqa: E402  (scripts/bench_compile.py, beside this script)

SMALL = {
    "nb201": {"channels": 4, "cells_per_stage": 1},
    "nb101": {"stem_channels": 16, "cells_per_stack": 1},
    "darts": {"channels": 4, "num_cells": 2, "reductions": [1]},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", nargs="+", default=["naswot", "snip", "grad_norm", "synflow"])
    parser.add_argument("--spaces", nargs="+", default=["nb201", "nb101", "darts"])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-archs", type=int, default=8)
    parser.add_argument("--archs-per-call", type=int, default=4)
    parser.add_argument("--out", default="docs/performance.md")
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
            except RuntimeError as exc:
                cells = f"error: {str(exc).strip().splitlines()[-1][:120]} | | |"
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
        "| proxy | space | trace s | compile s | steady s/cell | peak RSS GB |",
        "|---|---|---|---|---|---|",
    ]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(header + rows) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
