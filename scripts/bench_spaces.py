"""NASWOT speed per architecture on the channel-masked spaces (NB101, NATS-SSS), full size.

  python scripts/bench_spaces.py --space nb101 --stem 16 --batch 128
  python scripts/bench_spaces.py --space nb101 --stem 128 --batch 64
  python scripts/bench_spaces.py --space nats_sss --batch 64

Scores seeded cells (NB101: rows of the 250-cell Suite-Zero table when ../shared/data is
present, else valid samples; NATS-SSS: uniform samples) on one batch of real CIFAR-10
training images (synthetic N(0, 1) images when the shared data is absent), on this
machine's CPU, in one process:

  * data-driven: `score_population` jitted once, one initialisation per cell, cells in
    calls of `--archs-per-call`; compile time = first call minus a steady call; per-cell
    time after compilation. One program serves every cell of the space.
  * materialised: for `--num-materialised` cells, the fixed network of that cell alone
    (exact widths), NASWOT jitted per cell: its compile time and its run time. This is
    what compiling per architecture costs, and the run time the masking gives up.
    With `--inits K`, both score every such cell under K initialisations (the materialised
    network with its own per-architecture init) and the script prints mean +- std of each,
    which shows whether drawing weights for the maximum width changes the scores.

Prints per-cell times and the totals.
"""

import argparse
import csv
import gzip
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
import timing  # noqa: E402  (scripts/timing.py, beside this script)

from jaxnas import configs, data, network, proxies, xla_settings  # noqa: E402
from jaxnas.spaces import SPACES, nb101  # noqa: E402


def make_batch(batch_size, seed):
    path = configs.shared_path(*configs.CIFAR10_IMAGES)
    key = jax.random.key(seed)
    if os.path.exists(path):
        images, labels = data.load_npz(path, "train_images", "train_labels")
        return data.sample_batch(key, images, labels, batch_size), "real CIFAR-10"
    return data.synthetic_batch(key, batch_size), "synthetic N(0,1)"


def cells(space, num, seed):
    table = configs.NB101_SUITE_ZERO.path()
    if space.name == "nb101" and os.path.exists(table):
        with gzip.open(table, "rt") as f:
            rows = list(csv.DictReader(f))
        picked = np.random.default_rng(seed).choice(len(rows), num, replace=False)
        return np.stack([nb101.from_naslib(rows[i]["naslib_tuple"]) for i in picked])
    return np.asarray(space.sample(jax.random.key(seed), num))


def bench_data_driven(space, population, batch, archs_per_call, num_inits):
    proxy = proxies.get_proxy("naswot")
    keys = jax.random.split(jax.random.key(0), num_inits)

    @jax.jit
    def scorer(population):
        return proxies.score_population(proxy, space, population, batch, keys)

    return timing.time_chunks(scorer, population, archs_per_call)


def bench_materialised(space, genotype, batch, num_inits):
    proxy = proxies.get_proxy("naswot")
    net = network.from_linen(space.materialize(genotype), train=True)
    keys = jax.random.split(jax.random.key(1), num_inits)

    @jax.jit
    def score(keys):
        return jax.vmap(lambda k: proxy(net, net.init(k, batch["x"]), batch, None))(keys)

    start = time.perf_counter()
    jax.block_until_ready(score(keys))
    first = time.perf_counter() - start
    start = time.perf_counter()
    values = np.asarray(jax.block_until_ready(score(keys)))
    run = (time.perf_counter() - start) / num_inits
    return values, run, first - run * num_inits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=("nb101", "nats_sss"), default="nb101")
    parser.add_argument("--stem", type=int, default=16, help="NB101 stem channels")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--num-archs", type=int, default=20)
    parser.add_argument("--archs-per-call", type=int, default=5)
    parser.add_argument("--num-materialised", type=int, default=3)
    parser.add_argument("--inits", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    kwargs = {"stem_channels": args.stem} if args.space == "nb101" else {}
    space = SPACES[args.space](**kwargs)
    population = cells(space, args.num_archs, args.seed)
    batch, source = make_batch(args.batch, args.seed)
    print(
        f"{args.space} {kwargs}: {len(population)} cells, batch {args.batch} of {source} "
        f"images, {os.cpu_count()} CPU cores, jax {jax.__version__} on "
        f"{jax.devices()[0].platform}, load average {os.getloadavg()[0]:.1f}"
    )
    scores, per_arch, compile_s = bench_data_driven(
        space, population, batch, args.archs_per_call, args.inits
    )
    print(
        f"data-driven : {per_arch:7.3f} s/arch after compile ({args.inits} init(s)); "
        f"compile {compile_s:.1f} s (once for the space)"
    )
    runs, compiles = [], []
    for i, genotype in enumerate(population[: args.num_materialised]):
        values, run, compile_s = bench_materialised(space, genotype, batch, args.inits)
        runs.append(run)
        compiles.append(compile_s)
        line = (
            f"materialised {space.to_string(genotype)}: {run:.3f} s/init, compile {compile_s:.1f} s"
        )
        if args.inits > 1:
            line += (
                f"; NASWOT own init {values.mean():.2f} +- {values.std():.2f}, "
                f"masked supernet init {scores[i].mean():.2f} +- {scores[i].std():.2f}"
            )
        print(line)
    if runs:
        print(
            f"materialised: {np.mean(runs):7.3f} s/arch after compile, compile "
            f"{np.mean(compiles):.1f} s per architecture"
        )
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    xla_settings.prefer_memory_schedule()
    main()
