"""Compile and run time of every proxy on nb201, nb101 and darts -> a Markdown table.

  python scripts/bench_all.py [--proxies naswot snip snip+grad_norm ...] \
      [--spaces nb201 nb101 darts] [--small] [--batch-size B] [--concurrent-calls 0] \
      [--out docs/performance.md]

Each (proxy, space) runs in its own worker process (`scripts/bench_compile.py`'s worker:
cold compile, persistent cache off): tracing + lowering and XLA compile of the scoring
program, the compile of its initialisation program (`scoring.Scorer`: shared by every
proxy of a space, network settings, image shape and K, so a run compiles it once),
steady seconds per cell over the calls after the first (scored as the CLI scores:
`--concurrent-calls` at once, 0 the CLI's auto), peak resident memory. A
`+`-joined spec is one fused `proxies.stack` program (the proxies must share a protocol).

Each proxy runs at its reference protocol (`proxies.PROXIES[name].protocol` on CIFAR-10):
its batch size (CIFAR-10's 64 where the protocol leaves it open), its initialisations K
(the steady time per cell covers all K), one-channel crops where it scores crops, and on
nb201 its proxy network (e.g. TE-NAS's C=3, one cell per stage, for ntk_cond). Those
proxy networks are NB201 settings, so on nb101 and darts such a proxy has a row that says
so instead of figures; every other proxy runs the space's benchmark network there.
`--batch-size` overrides every protocol's batch size. `--small` uses reduced networks
(NB201 C=4 N=1, NB101 16-channel stem 1 cell per stack, DARTS C=4 2 cells) for a quick
check on a busy machine. The header records the machine, its load before and after, and
the command.

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
# Proxies with a PyTorch oracle (scripts/torch_*_oracle.py) to time side by side.
TORCH_PROXIES = (
    "naswot",
    "snip",
    "grad_norm",
    "plain",
    "synflow",
    "grasp",
    "fisher",
    "jacob_cov",
    "epe_nas",
    "l2_norm",
    "params",
    "flops",
    "zen",
    "ntk_cond",
    "linear_regions",
    "knas",
    "zico",
    "swap",
    "lswag",
    "meco",
    "az_expressivity",
    "az_progressivity",
    "az_trainability",
)


def protocol_settings(spec, space, small, batch_size):
    """`(space kwargs, batch size, K, crop size)` of a spec's reference protocol on
    `space`, or a string saying why it has none there."""
    from jaxnas import proxies
    from jaxnas.proxies import protocols

    names = spec.split("+")
    cifar10 = protocols.NB201_DATASETS["cifar10"]
    protocol, *others = [proxies.record(name).protocol.on(cifar10) for name in names]
    if any(other != protocol for other in others):
        raise SystemExit(f"{spec}: the fused proxies have different protocols")
    if protocol.network and space != "nb201":
        return f"n/a: its protocol's proxy network ({protocol.describe()}) is an NB201 one"
    kwargs = dict(protocol.network) or (SMALL[space] if small else {})
    return kwargs, batch_size or protocol.batch_size, protocol.num_inits, protocol.crop_size


def _oracle_call(name):
    """The oracle call that times proxy `name`: one call gives all three AZ-NAS
    components ("az"), one both params and flops ("params")."""
    if name.startswith("az_"):
        return "az"
    return "params" if name == "flops" else name


def torch_seconds_per_cell(spec, cells, settings, threads):
    """Seconds per NB201 cell of the PyTorch oracles of `spec` (a fused `a+b`: each
    proxy scored on its own, as zero-cost-nas scores every measure on a fresh copy of
    the network) over `cells` (the first is a warm-up) at the row's protocol `settings`
    (all K initialisations, each a freshly built network), or None when a proxy has no
    oracle or torch is not installed."""
    names = spec.split("+")
    if any(name not in TORCH_PROXIES for name in names):
        return None
    try:
        import torch
    except ImportError:
        return None
    import torch_kernel_oracle as kernel
    import torch_nb201_oracle as nb201
    import torch_suitezero_oracle as suitezero

    torch.set_num_threads(threads)
    net_kwargs, batch_size, num_inits, crop_size = settings
    net_kwargs = dict(net_kwargs)
    generator = torch.Generator().manual_seed(0)
    channels = net_kwargs.pop("in_channels", 3)
    size = crop_size or 32
    x = torch.randn(batch_size, channels, size, size, generator=generator)
    y = torch.randint(0, 10, (batch_size,), generator=generator)
    tenas = {
        "channels": net_kwargs.pop("channels", 16),
        "cells_per_stage": net_kwargs.pop("cells_per_stage", 5),
        "num_stages": net_kwargs.pop("num_stages", 3),
        "use_stem": net_kwargs.pop("stem", True),
        "in_channels": channels,
    }
    if net_kwargs:
        raise SystemExit(f"{spec}: no PyTorch network for the settings {net_kwargs}")
    calls = dict.fromkeys(_oracle_call(name) for name in names)
    if "az" in calls:
        first = tuple(int(g) for g in cells[0])
        blocks = kernel.TenasNetwork(first, **tenas).train().blocks(x)
        block_shapes = [f.shape for f in blocks[1:]]

    def score(name, genotype):
        genotype = tuple(int(g) for g in genotype)
        if name in ("ntk_cond", "linear_regions", "meco", "az"):
            model = kernel.TenasNetwork(genotype, **tenas).train()
        else:
            model = nb201.build(
                genotype, tenas["channels"], tenas["cells_per_stage"], 10, tenas["num_stages"]
            ).train()
        if name == "naswot":
            return nb201.naswot(model, x, protocol="reference", match="relu")
        if name == "synflow":
            return suitezero.synflow(model, x.shape)
        if name == "jacob_cov":
            try:
                return suitezero.jacob_cov(model, x)
            except np.linalg.LinAlgError:  # a zero input Jacobian (no path): timed all the same
                return float("nan")
        if name == "l2_norm":
            return suitezero.l2_norm(model)
        if name == "params":
            return suitezero.stats(model, x.shape)
        if name == "zen":
            return suitezero.zen(model, x, torch.randn(x.shape, generator=generator))
        if name == "ntk_cond":
            return kernel.ntk(model, x)
        if name == "linear_regions":
            return kernel.linear_regions(model, x, 1000)
        if name == "knas":
            return kernel.knas_paper(model, x, y)
        if name in ("zico", "lswag"):
            return getattr(kernel, name)(model, x, y)
        if name == "swap":
            return kernel.swap(model, x)
        if name == "meco":
            return kernel.meco(model, x)
        if name == "az":
            signs = [torch.randint(0, 2, s, generator=generator) * 2.0 - 1 for s in block_shapes]
            return kernel.az_components(model, x, [g.numpy() for g in signs])
        return getattr(suitezero, name)(model, x, y)

    def score_cell(genotype):
        for name in calls:
            for _ in range(num_inits):
                score(name, genotype)

    score_cell(cells[0])
    start = time.perf_counter()
    for genotype in cells[1:]:
        score_cell(genotype)
    return (time.perf_counter() - start) / max(len(cells) - 1, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", nargs="+", default=["naswot", "snip", "grad_norm", "synflow"])
    parser.add_argument("--spaces", nargs="+", default=["nb201", "nb101", "darts"])
    parser.add_argument("--small", action="store_true")
    parser.add_argument(
        "--batch-size", type=int, help="every proxy's batch (default: its protocol's)"
    )
    parser.add_argument("--num-archs", type=int, default=8)
    parser.add_argument("--archs-per-call", type=int, default=4)
    parser.add_argument(
        "--concurrent-calls",
        type=int,
        default=0,
        help="compiled calls at once after the first (0: the CLI's auto)",
    )
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
            settings = protocol_settings(proxy, space, args.small, args.batch_size)
            if isinstance(settings, str):
                rows.append(f"| {proxy} | {space} | {settings} | | | | | | | |")
                print(rows[-1], flush=True)
                continue
            space_kwargs, batch_size, num_inits, crop_size = settings
            worker_args = argparse.Namespace(
                space=space,
                space_kwargs=json.dumps(space_kwargs),
                batch_size=batch_size,
                num_archs=args.num_archs,
                archs_per_call=args.archs_per_call,
                seed=0,
                num_inits=num_inits,
                crop_size=crop_size or 0,
                concurrent_calls=args.concurrent_calls,
            )
            protocol = f"{batch_size}{f' {crop_size}x{crop_size} crops' if crop_size else ''}"
            protocol += f", K={num_inits}" + "".join(f", {k}={v}" for k, v in space_kwargs.items())
            try:
                r = bench_compile.run_worker(bench_compile.ROOT, worker_args, proxy)
                cells = (
                    f"{r['trace_s']:.1f} | {r['compile_s']:.1f} | {r['init_compile_s']:.1f} | "
                    f"{r['steady_s_per_cell']:.3f} | {r['peak_rss_gb']:.2f}"
                )
                # The worker's full calls after its first, plus one warm-up cell before them.
                n = args.archs_per_call
                timed = np.asarray(r["cells"][n - 1 : len(r["cells"]) // n * n])
                torch_s = (
                    torch_seconds_per_cell(proxy, timed, settings, args.torch_threads)
                    if space == "nb201"
                    else None
                )
                cells += (
                    " | |"
                    if torch_s is None
                    else f" | {torch_s:.3f} | {torch_s / r['steady_s_per_cell']:.2f}"
                )
            except RuntimeError as exc:
                cells = f"error: {str(exc).strip().splitlines()[-1][:120]} | | | | | |"
            rows.append(f"| {proxy} | {space} | {protocol} | {cells} |")
            print(rows[-1], flush=True)
    header = [
        "# Performance",
        "",
        f"Command: `python {' '.join(sys.argv)}`  ",
        f"Machine: {platform.machine()} CPU, {os.cpu_count()} cores, {platform.system()}; "
        f"load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).  ",
        f"Networks: {'reduced (--small)' if args.small else 'benchmark size'} unless the "
        f"protocol names a proxy network; {args.num_archs} cells in calls of "
        f"{args.archs_per_call}, "
        + (
            f"{args.concurrent_calls} at once after the first."
            if args.concurrent_calls
            else "after the first as many at once as the CLI runs (auto: "
            "`dispatch.concurrent_calls`, then one call alone and two at once decide, so "
            "fewer than four calls run one at a time)."
        ),
        "",
        "Figures taken under load are inflated; compare rows of one run only.",
        "",
        "Protocol: batch (images, or one-channel crops), initialisations K per cell (the",
        "steady time per cell covers all K), proxy-network settings; `a+b`: one fused program.",
        "Init compile s: the initialisation program's compile, shared by every proxy of a",
        "space with these settings (compiled once per run and then cached).",
        "PyTorch s/cell: the independent PyTorch oracle on the same cells and batch size,",
        f"building each network, {args.torch_threads} threads (NB201 only); ratio: PyTorch / "
        "jaxnas steady seconds.",
        "",
        "| proxy | space | protocol | trace s | compile s | init compile s | steady s/cell | "
        "peak RSS GB | PyTorch s/cell | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(header + rows) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
