"""Switch vs mask dispatch: seconds per NB201 cell on this machine's backend, side by side.

  python scripts/bench_dispatch.py [--proxy naswot] [--chunks 1,4,16] [--num-archs 32]
      [--batch-size 64] [--channels 16] [--cells-per-stage 5]

The same seeded cells are scored with `score_population`, jitted, under "switch" with
one cell at a time and under "mask" with chunks of c cells vmapped together, for each c
of `--chunks`, in calls of `--per-call` cells (a first call compiles; the steady seconds
per cell come from the calls after it, `scripts/timing.py`). The scores of every setting
must equal switch's (checked, printed). The fastest setting is the one `jaxnas.dispatch`
should pick on this backend; the ratio mask/switch is the crossover figure
(WORKSPACE_NOTES.md, "Scale out (issue 18)").
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir))
sys.path.insert(0, HERE)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import timing  # noqa: E402  (scripts/timing.py)

from jaxnas import data, proxies, xla_settings  # noqa: E402
from jaxnas.spaces import nb201  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", default="naswot")
    parser.add_argument("--chunks", default="1,4,16")
    parser.add_argument("--num-archs", type=int, default=32)
    parser.add_argument("--per-call", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells-per-stage", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    xla_settings.prefer_memory_schedule()

    key = jax.random.key(args.seed)
    batch = data.synthetic_batch(key, args.batch_size, (32, 32, 3))
    keys = jax.random.split(key, 1)
    proxy = proxies.get_proxy(args.proxy)
    settings = [("switch", 1)] + [("mask", int(c)) for c in args.chunks.split(",")]
    print(
        f"NB201 C={args.channels} N={args.cells_per_stage} {args.proxy}, batch "
        f"{args.batch_size}, {args.num_archs} cells in calls of {args.per_call}, "
        f"{jax.default_backend()} ({len(jax.local_devices())} devices), {os.cpu_count()} "
        f"cores, load {os.getloadavg()}"
    )
    base = reference = None
    for mode, chunk in settings:
        space = nb201.space(
            channels=args.channels, cells_per_stage=args.cells_per_stage, dispatch=mode
        )
        cells = np.asarray(space.sample(jax.random.key(args.seed + 1), args.num_archs))

        @jax.jit
        def scorer(population, space=space, chunk=chunk):
            return proxies.score_population(proxy, space, population, batch, keys, chunk_size=chunk)

        scores, steady, compile_s = timing.time_chunks(scorer, cells, args.per_call)
        if reference is None:
            base, reference = steady, scores
        same = np.allclose(scores, reference, rtol=1e-4, equal_nan=True)
        print(
            f"{mode:6s} chunk {chunk:3d}: {steady:.3f} s/cell ({steady / base:.2f}x switch), "
            f"compile {compile_s:.1f} s, scores equal switch's: {same}"
        )


if __name__ == "__main__":
    main()
