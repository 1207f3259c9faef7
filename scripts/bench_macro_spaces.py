"""NASWOT speed per architecture on the macro and cell spaces (NDS, AutoFormer, DARTS).

  python scripts/bench_macro_spaces.py --space nds_resnet [--num-archs 8] [--batch-size 64]
  python scripts/bench_macro_spaces.py --space autoformer-tiny --image-size 224
  python scripts/bench_macro_spaces.py --space nds_resnet --materialised 3
  python scripts/bench_macro_spaces.py --space darts  # NB301 network: C=32, 8 cells
  python scripts/bench_macro_spaces.py --space nds_enas --setting channels=16

`--space` is `autoformer-<size>` or a key of `jaxnas.spaces.SPACES`; `--setting k=v`
(repeatable, integer values) passes a space setting, e.g. the width of a cell space.

Scores seeded random architectures of one space with NASWOT through `score_population`,
jitted once (one shared initialisation key, architectures mapped one at a time), on this
machine's CPU. NDS spaces see real CIFAR-10 training images (32x32,
../shared/data) when present, synthetic N(0, 1) images otherwise; AutoFormer sees
synthetic images at `--image-size` (no ImageNet images at 224 px are available here).

Two calls of `--num-archs` architectures each: the first compiles, the second gives the
steady per-architecture wall and process-CPU seconds (one supernet initialisation per
call serves all its architectures, as in `scoring.py`); then the peak resident memory.
With `--materialised K` it also scores K architectures the other way: one compiled
program (init + NASWOT) per architecture, the materialised network, to compare a
per-architecture compile with the space's single compile.
"""

import argparse
import json
import os
import resource
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from jaxnas import benchmarks, data, proxies, xla_settings  # noqa: E402
from jaxnas.network import from_linen  # noqa: E402
from jaxnas.spaces import SPACES, autoformer  # noqa: E402


def make_space(name, settings):
    if name.startswith("autoformer-"):
        return autoformer.space(name.split("-", 1)[1], num_classes=10, **settings)
    return SPACES[name](**settings)


def make_batch(name, batch_size, image_size, seed):
    key = jax.random.key(seed)
    path = os.path.join(
        benchmarks.shared_data_dir(), "images", "cifar10_jpeg_yoongikim_train1280_test1000.npz"
    )
    if not name.startswith("autoformer-") and os.path.exists(path):
        images, labels = data.load_npz(path, "train_images", "train_labels")
        return data.sample_batch(key, images, labels, batch_size), "real CIFAR-10 32x32"
    size = 32 if not name.startswith("autoformer-") else image_size
    return data.synthetic_batch(key, batch_size, (size, size, 3)), f"synthetic N(0,1) {size}x{size}"


def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--space", required=True)
    parser.add_argument("--num-archs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--materialised", type=int, default=0)
    parser.add_argument("--setting", action="append", default=[])
    args = parser.parse_args()

    settings = {k: int(v) for k, v in (s.split("=", 1) for s in args.setting)}
    space = make_space(args.space, settings)
    batch, source = make_batch(args.space, args.batch_size, args.image_size, args.seed)
    proxy = proxies.get_proxy("naswot")
    keys = jax.random.split(jax.random.key(args.seed), 1)
    population = np.asarray(space.sample(jax.random.key(args.seed + 1), 2 * args.num_archs))
    print(f"{args.space}: NASWOT, batch {args.batch_size} of {source}, load {os.getloadavg()}")

    @jax.jit
    def scorer(genotypes, batch, keys):
        return proxies.score_population(proxy, space, genotypes, batch, keys)

    # Two calls of P architectures each: the first compiles, the second is steady state.
    # One supernet initialisation per call serves its P architectures (as in scoring.py).
    n = args.num_archs
    _, first_wall, first_cpu = timed(scorer, population[:n], batch, keys)
    scores, wall, cpu = timed(scorer, population[n : 2 * n], batch, keys)
    print(
        f"first call (compile + {n} architectures): {first_wall:.1f} s wall, {first_cpu:.1f} s CPU"
    )
    print(f"second call ({n} architectures): {wall:.1f} s wall, {cpu:.1f} s CPU")
    for genotype, score in zip(population[n : 2 * n], np.asarray(scores)[:, 0]):
        print(f"  score {float(score):9.2f}  {space.to_string(genotype)}")
    result = {
        "space": args.space,
        "settings": settings,
        "batch_size": args.batch_size,
        "images": source,
        "num_archs_per_call": n,
        "first_call_wall_s": round(first_wall, 1),
        "first_call_cpu_s": round(first_cpu, 1),
        "per_arch_wall_s": round(wall / n, 2),
        "per_arch_cpu_s": round(cpu / n, 2),
        "compile_cpu_s_approx": round(first_cpu - cpu, 1),
    }
    if args.materialised:
        rows = []
        for genotype in population[n : n + args.materialised]:
            net = from_linen(space.materialize(genotype), train=True)

            def score(key, batch, net=net):
                return proxy(net, net.init(key, batch["x"]), batch, key)

            score = jax.jit(score)
            _, c_wall, c_cpu = timed(score, keys[0], batch)
            _, r_wall, r_cpu = timed(score, keys[0], batch)
            rows.append((c_wall, c_cpu, r_wall, r_cpu))
            print(
                f"  materialised (init + NASWOT): first call {c_wall:.1f} s wall {c_cpu:.1f} s "
                f"CPU, then {r_wall:.2f} s wall {r_cpu:.2f} s CPU  {space.to_string(genotype)}"
            )
        rows = np.asarray(rows)
        result["materialised_first_call_cpu_s"] = round(float(np.median(rows[:, 1])), 1)
        result["materialised_run_cpu_s"] = round(float(np.median(rows[:, 3])), 2)
    result["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 1)
    result["load_after"] = os.getloadavg()
    print(json.dumps(result))


if __name__ == "__main__":
    xla_settings.prefer_memory_schedule()
    main()
