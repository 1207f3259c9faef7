"""Where a proxy's scoring program spends its time: XLA:CPU operations ranked by time.

  python scripts/profile_proxy.py [--space nb201] [--proxy snip] [--batch-size 64] \
      [--materialized] [--calls 3] [--top 25] [--trace-dir runs/profile]

Jits the proxy on one seeded cell of the space (the data-driven network through
`score_population`, as the CLI scores; or, with `--materialized`, the cell's own
network), runs it `--calls` times under `jax.profiler.trace` and ranks the profile's
XLA operations (the thunks XLA:CPU executes: convolutions, fusions, `cond` branches,
loops) by total time per call, summed over XLA's worker threads. Names are grouped by
their HLO kind (`conv_general_dilated.12` and `.40` count together). The trace stays in
`--trace-dir` for TensorBoard / XProf.
"""

import argparse
import collections
import glob
import os
import time

import jax
import numpy as np

from jaxnas import data, network, proxies, spaces


def op_kind(name: str) -> str:
    """`conv_general_dilated.12` -> `conv_general_dilated`; `fusion.3` -> `fusion`."""
    return name.split(".")[0].rstrip("0123456789_") or name


def ranked_ops(trace_dir: str, calls: int) -> list[tuple[str, float, int]]:
    """`(op kind, ms per call, events per call)` from the newest trace, slowest first."""
    from jax._src.lib import _profile_data

    path = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True))[-1]
    profile = _profile_data.ProfileData.from_file(path)
    total, count = collections.Counter(), collections.Counter()
    for plane in profile.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLAEigen"):  # XLA's worker threads
                continue
            for event in line.events:
                if event.name.startswith("ThunkExecutor"):  # the enclosing executor
                    continue
                kind = op_kind(event.name)
                total[kind] += event.duration_ns / 1e6 / calls
                count[kind] += 1
    return [(kind, ms, count[kind] // calls) for kind, ms in total.most_common()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="nb201", choices=sorted(spaces.SPACES))
    parser.add_argument("--proxy", default="snip")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--materialized", action="store_true")
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--trace-dir", default=os.path.join("runs", "profile"))
    args = parser.parse_args()

    space = spaces.SPACES[args.space]()
    proxy = proxies.get_proxy(args.proxy)
    genotype = np.asarray(space.sample(jax.random.key(0), 1))
    batch = data.synthetic_batch(jax.random.key(1), args.batch_size)
    key = jax.random.key(0)
    if args.materialized:
        net = network.from_linen(space.materialize(genotype[0]), train=True)
        scorer = jax.jit(lambda batch, key: proxies.score_network(proxy, net, batch, key))
        call = lambda: scorer(batch, key)  # noqa: E731
    else:
        keys = jax.random.split(key, 1)
        scorer = jax.jit(lambda g, b, k: proxies.score_population(proxy, space, g, b, k))
        call = lambda: scorer(genotype, batch, keys)  # noqa: E731

    start = time.perf_counter()
    jax.block_until_ready(call())
    first = time.perf_counter() - start
    jax.block_until_ready(call())
    trace_dir = os.path.join(args.trace_dir, f"{args.space}_{args.proxy}")
    start = time.perf_counter()
    with jax.profiler.trace(trace_dir):
        for _ in range(args.calls):
            jax.block_until_ready(call())
    wall = (time.perf_counter() - start) / args.calls
    kind = "materialised" if args.materialized else "data-driven"
    print(
        f"{args.space} {args.proxy} ({kind}, batch {args.batch_size}, "
        f"{space.to_string(genotype[0])}): first call {first:.1f} s, "
        f"{wall * 1e3:.0f} ms per call under the profiler; load {os.getloadavg()[0]:.1f}"
    )
    rows = ranked_ops(trace_dir, args.calls)
    busy = sum(ms for _, ms, _ in rows)
    print(f"{'ms/call':>9} {'share':>6} {'events':>7}  XLA operation ({busy:.0f} ms busy)")
    for kind_name, ms, events in rows[: args.top]:
        print(f"{ms:9.1f} {ms / busy:6.1%} {events:7d}  {kind_name}")


if __name__ == "__main__":
    main()
