"""XLA:CPU temporary memory and speed of a proxy's scoring program, per scheduler.

  python scripts/bench_memory.py --space darts --space-args channels=8,num_cells=3 \\
      --proxies snip --batch 64 [--materialised] [--time 4]
  python scripts/bench_memory.py --space nb201 --proxies snip+grad_norm+plain

Compiles `score_population` of the proxy (a `+`-joined list is one fused `proxies.stack`
program) for one architecture of the space (a seeded sample), one initialisation, a
batch of `--batch` N(0, 1) 32x32 images (`data.synthetic_batch`), and prints XLA's
temporary buffer size (`compiled.memory_analysis().temp_size_in_bytes`: what the program
allocates besides its arguments and outputs) and the compile time. `--materialised` does
the same for that architecture's materialised network (`space.materialize`, a fixed
network: what the data-driven one should approach); `--time N` also times N cells after
compilation.

Each measurement runs in its own process twice, with XLA:CPU's concurrency-optimised
scheduler on (XLA's default) and off (`xla_settings.prefer_memory_schedule()`, the
jaxnas default), since `XLA_FLAGS` is read once per process.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from jaxnas import data, network, proxies, xla_settings  # noqa: E402
from jaxnas.proxies import base  # noqa: E402
from jaxnas.spaces import SPACES  # noqa: E402

SCHEDULES = {"concurrency (XLA default)": "true", "memory (jaxnas default)": "false"}


def space_kwargs(text):
    """`channels=8,num_cells=3` -> {"channels": 8, "num_cells": 3} (ints where possible)."""
    out = {}
    for item in filter(None, text.split(",")):
        name, value = item.split("=")
        out[name] = int(value) if value.lstrip("-").isdigit() else value
    return out


def measure(args):
    """One measurement in this process: a dict of figures."""
    space = SPACES[args.space](**space_kwargs(args.space_args))
    cells = jnp.asarray(space.sample(jax.random.key(args.seed), 1 + args.time))
    batch = data.synthetic_batch(jax.random.key(1), args.batch)
    names = args.proxies.split("+")
    fns = [proxies.get_proxy(name) for name in names]
    proxy = fns[0] if len(fns) == 1 else proxies.stack(*fns)
    if args.which == "materialised":
        net = network.from_linen(space.materialize(cells[0]), train=True)
        fn = jax.jit(lambda key: base.score_network(proxy, net, batch, key))
        operand = jax.random.key(0)
    else:
        keys = jax.random.split(jax.random.key(0), 1)
        fn = jax.jit(lambda p: proxies.score_population(proxy, space, p, batch, keys))
        operand = cells[:1]
    start = time.perf_counter()
    compiled = fn.lower(operand).compile()
    out = {
        "compile_s": time.perf_counter() - start,
        "temp_gb": compiled.memory_analysis().temp_size_in_bytes / 1e9,
    }
    if args.time and args.which == "data-driven":
        jax.block_until_ready(compiled(cells[:1]))
        start = time.perf_counter()
        for i in range(1, 1 + args.time):
            jax.block_until_ready(compiled(cells[i : i + 1]))
        out["s_per_cell"] = (time.perf_counter() - start) / args.time
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="darts", choices=sorted(SPACES))
    parser.add_argument("--space-args", default="", help="e.g. channels=8,num_cells=3")
    parser.add_argument("--proxies", default="snip", help="one proxy or a+b (fused)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--materialised", action="store_true")
    parser.add_argument("--time", type=int, default=0, help="cells to time after compile")
    parser.add_argument("--which", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.which:
        print(json.dumps(measure(args)))
        return
    programs = ["data-driven"] + (["materialised"] if args.materialised else [])
    print(
        f"{args.proxies} on {args.space}({args.space_args}), one cell, batch {args.batch}; "
        f"jax {jax.__version__}, {os.cpu_count()} CPUs"
    )
    print(f"{'program':<14}{'scheduler':<28}{'temp GB':>9}{'compile s':>11}{'s/cell':>8}")
    for program in programs:
        for label, value in SCHEDULES.items():
            env = dict(os.environ)
            flags = env.get("XLA_FLAGS", "")
            env["XLA_FLAGS"] = f"{flags} --{xla_settings.CONCURRENCY_SCHEDULER}={value}".strip()
            child = subprocess.run(
                [sys.executable, *sys.argv, "--which", program],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if child.returncode:
                print(f"{program:<14}{label:<28} failed: {child.stderr.strip()[-300:]}")
                continue
            r = json.loads(child.stdout.strip().splitlines()[-1])
            per_cell = f"{r['s_per_cell']:.3f}" if "s_per_cell" in r else "-"
            print(
                f"{program:<14}{label:<28}{r['temp_gb']:>9.3f}{r['compile_s']:>11.0f}{per_cell:>8}"
            )


if __name__ == "__main__":
    main()
