"""Device benchmark: the whole NB201 space with NASWOT, synflow and snip, jaxnas vs PyTorch.

One command on a GPU (or TPU) machine, from the repository root, with no registry and no
ml_collections / tensorflow-datasets needed (jax, flax, optax, chex, numpy, scipy; torch
for the oracle column):

  bash scripts/bench_device.sh                      # writes runs/bench_device/bench.{json,md}

Dry run on a CPU in one command (a few cells, a narrow network; about a minute):

  bash scripts/bench_device.sh --dry-run --out runs/bench_device_dry

For each proxy, on the same seeded order of all 15,625 NB201 cells (C=16, N=5, 10
classes) and one synthetic N(0, 1) batch (`--batch-size` images 32x32, uniform labels):

  * jaxnas: `score_population` with the backend's dispatch (`jaxnas.dispatch`: "mask"
    with chunks of `--chunk-size` cells vmapped on a GPU/TPU, "switch" one cell at a
    time on a CPU; `--dispatch` overrides; the chunk is halved until the program fits
    80 % of the device's memory, `dispatch.fit_chunk_size`), one initialisation per
    cell, `--per-call` cells per compiled call over every local device. Compile seconds
    are the AOT `lower().compile()` time (all sizes tried); then every call of the whole
    space runs (unless `--budget-s` seconds per proxy run out first: the table then says
    how many cells were scored and projects the whole space from the steady rate).
    Device memory is the device's peak bytes in use so far (GPU/TPU; a running peak over
    the proxies in order) and the compiled program's temporary bytes.
  * PyTorch oracle (scripts/torch_nb201_oracle.py, torch_suitezero_oracle.py; the
    reference's hook-based NASWOT and zero-cost-nas's synflow / snip), on the same device,
    one cell at a time on the first `--oracle-cells` cells of the same order, default
    PyTorch initialisation: seconds per cell, projected to the whole space, the
    speed-up of jaxnas, and the Spearman rank correlation of the two implementations'
    scores on those cells (different initialisations: a sanity check, not equality).

Writes `<out>/bench.json` (every figure, the device, versions, the command) and
`<out>/bench.md` (one table) and prints the table.
"""

import argparse
import json
import os
import platform
import resource
import shlex
import sys
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir))
sys.path.insert(0, HERE)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from jaxnas import data, dispatch, proxies, xla_settings  # noqa: E402
from jaxnas.spaces import nb201  # noqa: E402

PROXIES = ("naswot", "synflow", "snip")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_device")
    parser.add_argument("--proxies", default=",".join(PROXIES))
    parser.add_argument("--num-cells", type=int, default=nb201.space().size)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells-per-stage", type=int, default=5)
    parser.add_argument("--per-call", type=int, default=0, help="0: 1024 on GPU/TPU, 16 on CPU")
    parser.add_argument("--chunk-size", type=int, default=0, help="0: by dispatch")
    parser.add_argument("--dispatch", default="auto", choices=("auto", *dispatch.MODES))
    parser.add_argument("--budget-s", type=float, default=60.0, help="per proxy, jaxnas")
    parser.add_argument("--oracle-cells", type=int, default=64)
    parser.add_argument("--oracle-budget-s", type=float, default=20.0, help="per proxy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="CPU check of every code path: 12 cells, C=4, N=1, batch 16, 4 oracle cells",
    )
    args = parser.parse_args(argv)
    if args.dry_run:
        args.num_cells, args.channels, args.cells_per_stage = 12, 4, 1
        args.batch_size, args.per_call, args.oracle_cells = 16, 4, 4
    for name in ("num_cells", "batch_size", "channels", "cells_per_stage", "oracle_cells"):
        if getattr(args, name) < (0 if name == "oracle_cells" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive")
    unknown = sorted(set(args.proxies.split(",")) - set(PROXIES))
    if unknown:
        parser.error(f"unknown proxies {unknown}; expected some of {PROXIES}")
    return args


def device_memory():
    """Peak and limit bytes of the first local device (None on a CPU)."""
    stats_ = jax.local_devices()[0].memory_stats() or {}
    return {k: stats_.get(k) for k in ("peak_bytes_in_use", "bytes_limit")}


def bench_jaxnas(name, space, cells, batch, args, per_call, chunk):
    """Scores `cells` with `name`; seconds, memory and the scores (NaN where unscored)."""
    proxy = proxies.get_proxy(name)
    keys = jax.random.split(jax.random.key(args.seed + 1), 1)
    mesh = proxies.population_mesh(jax.local_devices())

    def compile_for(size):
        def score(population, batch, keys):
            return proxies.score_population(
                proxy, space, population, batch, keys, chunk_size=size, mesh=mesh
            )

        return jax.jit(score).lower(np.asarray(cells[:per_call]), batch, keys).compile()

    start = time.perf_counter()
    # Halves the chunk until the program fits the device's memory (GPU/TPU).
    chunk, compiled = dispatch.fit_chunk_size(compile_for, chunk)
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    temp_bytes = getattr(memory, "temp_size_in_bytes", None)

    scores = np.full(len(cells), np.nan, np.float32)
    calls, start, first_call = 0, time.perf_counter(), None
    for lo in range(0, len(cells), per_call):
        chunk_cells = cells[lo : lo + per_call]
        real = len(chunk_cells)
        if real < per_call:  # the last call, padded to the compiled shape
            chunk_cells = np.concatenate(
                [chunk_cells, np.repeat(chunk_cells[:1], per_call - real, 0)]
            )
        out = np.asarray(jax.block_until_ready(compiled(chunk_cells, batch, keys)))
        scores[lo : lo + real] = out[:real, 0]
        calls += 1
        if first_call is None:
            first_call = time.perf_counter() - start
        if time.perf_counter() - start > args.budget_s:
            break
    seconds = time.perf_counter() - start
    scored = min(calls * per_call, len(cells))
    return {
        "cells": scored,
        "complete": scored == len(cells),
        "chunk_size": chunk,
        "compile_s": compile_s,
        "first_call_s": first_call,
        "seconds": seconds,
        "s_per_cell": seconds / scored,
        "projected_all_s": seconds / scored * len(cells),
        "temp_bytes": temp_bytes,
        "device_memory": device_memory(),
        "nan": int(np.isnan(scores[:scored]).sum()),
    }, scores


def bench_oracle(name, cells, args, device):
    """Per-cell seconds of the PyTorch oracle on the first cells (and their scores)."""
    import torch
    import torch_nb201_oracle as oracle
    import torch_suitezero_oracle as suite

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn((args.batch_size, 3, 32, 32), generator=gen).to(device)
    y = torch.randint(0, 10, (args.batch_size,), generator=gen).to(device)

    def one(genotype):
        model = oracle.build(genotype, args.channels, args.cells_per_stage).to(device).train()
        if name == "naswot":
            return oracle.naswot(model, x)
        if name == "synflow":
            return suite.synflow(model, x.shape)
        return suite.snip(model, x, y)

    one(cells[0])  # warm-up: CUDA context, cuDNN autotuning
    _sync(torch, device)
    scores, start = [], time.perf_counter()
    for genotype in cells[: args.oracle_cells]:
        scores.append(one(genotype))
        if time.perf_counter() - start > args.oracle_budget_s:
            break
    _sync(torch, device)
    seconds = time.perf_counter() - start
    return {"cells": len(scores), "seconds": seconds, "s_per_cell": seconds / len(scores)}, (
        np.asarray(scores, np.float64)
    )


def _sync(torch, device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def torch_device():
    """The oracle's device (the same GPU as JAX's when there is one), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    if jax.default_backend() == "gpu" and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")


def table(result):
    """The markdown table of a result."""
    n = result["space_cells"]
    lines = [
        f"NB201 ({n} cells, C={result['channels']}, N={result['cells_per_stage']}, batch "
        f"{result['batch_size']}), {result['device']}, jax {result['versions']['jax']}, "
        f"dispatch {result['dispatch']}, {result['per_call']} cells per call, chunks of up "
        f"to {result['chunk_size']}",
        "",
        "| proxy | chunk | cells scored | jaxnas s total | jaxnas s/cell | compile s | peak device "
        "memory GB | oracle s/cell (cells) | oracle projected s | speed-up | Spearman vs "
        "oracle |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["proxies"].items():
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} |" + " |" * 9)
            continue
        j, o = r["jaxnas"], r.get("oracle")
        peak = j["device_memory"]["peak_bytes_in_use"]
        total = f"{j['seconds']:.1f}" if j["complete"] else f"{j['projected_all_s']:.1f} (proj.)"
        row = [
            name,
            str(j["chunk_size"]),
            f"{j['cells']}/{n}",
            total,
            f"{j['s_per_cell']:.2e}",
            f"{j['compile_s']:.1f}",
            "n/a" if peak is None else f"{peak / 1e9:.2f}",
        ]
        if o:
            row += [
                f"{o['s_per_cell']:.2e} ({o['cells']})",
                f"{o['s_per_cell'] * n:.0f}",
                f"{o['s_per_cell'] / j['s_per_cell']:.1f}x",
                f"{r['spearman_vs_oracle']:.3f}",
            ]
        else:
            row += ["no torch"] + ["n/a"] * 3
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    xla_settings.prefer_memory_schedule()
    backend = jax.default_backend()
    space_factory = nb201.space
    kwargs, chunk = dispatch.resolve(
        space_factory, {}, args.dispatch, args.chunk_size, 10**9, backend
    )
    per_call = args.per_call or (16 if backend == "cpu" else 1024)
    chunk = min(chunk, per_call) if chunk > 1 else chunk
    space = space_factory(channels=args.channels, cells_per_stage=args.cells_per_stage, **kwargs)
    order = np.random.default_rng(args.seed).permutation(space.size)[: args.num_cells]
    cells = space.enumerate()[order]
    batch = data.synthetic_batch(jax.random.key(args.seed), args.batch_size, (32, 32, 3))
    device = torch_device()
    result = {
        "command": shlex.join(["python", "scripts/bench_device.py", *sys.argv[1:]]),
        "device": f"{len(jax.local_devices())} x {jax.local_devices()[0].device_kind}",
        "backend": backend,
        "host": {
            "cpus": os.cpu_count(),
            "load": os.getloadavg(),
            "python": platform.python_version(),
        },
        "versions": {"jax": jax.__version__, "jaxlib": metadata.version("jaxlib")},
        "space_cells": len(cells),
        "channels": args.channels,
        "cells_per_stage": args.cells_per_stage,
        "batch_size": args.batch_size,
        "dispatch": kwargs["dispatch"],
        "per_call": per_call,
        "chunk_size": chunk,
        "proxies": {},
    }
    if device is not None:
        import torch

        result["versions"]["torch"] = torch.__version__
        result["oracle_device"] = str(device)
    for name in args.proxies.split(","):
        print(f"{name}: jaxnas on {len(cells)} cells ...", flush=True)
        try:
            ours, scores = bench_jaxnas(name, space, cells, batch, args, per_call, chunk)
        except Exception as exc:  # noqa: BLE001  (one proxy's failure must not lose the others)
            print(f"{name}: failed: {exc}", flush=True)
            result["proxies"][name] = {"error": str(exc).splitlines()[0][:200]}
            continue
        entry = {"jaxnas": ours}
        if device is not None and args.oracle_cells:
            print(f"{name}: PyTorch oracle on {args.oracle_cells} cells ...", flush=True)
            theirs, oracle_scores = bench_oracle(name, cells, args, device)
            entry["oracle"] = theirs
            rho = stats.spearmanr(scores[: theirs["cells"]], oracle_scores).statistic
            entry["spearman_vs_oracle"] = float(rho)
        result["proxies"][name] = entry
    result["host_peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump(result, f, indent=2)
    text = table(result)
    with open(os.path.join(args.out, "bench.md"), "w") as f:
        f.write(text)
    print(text)
    print(f"-> {args.out}/bench.json, {args.out}/bench.md")


if __name__ == "__main__":
    main()
