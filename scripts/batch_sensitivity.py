"""Does a proxy's correlation change with one shared batch vs a new batch per cell?

  python scripts/batch_sensitivity.py --proxies plain,epe_nas --num-cells 100

NAS-Bench-Suite-Zero drew a new augmented CIFAR-10 batch for every cell it scored;
`configs/nb201_suitezero_proxies.py` scores every cell on one seeded batch. This script
scores the same cells (those of that config at `size=--num-cells`, seed 0) both ways,
with the same initialisation per cell and the config's data settings (64 real CIFAR-10
training images, NASLib normalisation, random crop + flip): (a) the config's shared
batch, (b) a batch drawn for each cell. It prints Spearman with bootstrap CIs vs
`val_acc` for (a), (b) and the published column, the paired difference (b) - (a), and
Spearman of (a) and (b) with the published column. The proxies are stacked
(`proxies.stack`). (b) uses the batches of the CLI's `per_cell` argument
(`data.batch_per_arch`), so it equals a CLI run with `:per_cell=1`.

`--shared-from WORKDIR` takes (a) from a CLI run of that config with the same seed and
batch size (its `scores.jsonl`) instead of scoring it again, which halves the cost:

  python scripts/batch_sensitivity.py --proxies plain --num-cells 1000 \\
      --shared-from runs/nb201_suitezero
"""

import argparse
import functools
import importlib.util
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)
from jaxnas import compilation_cache, evaluation, inputs, proxies, xla_settings  # noqa: E402


def load_config(num_cells, seed):
    path = os.path.join(ROOT, "configs", "nb201_suitezero_proxies.py")
    spec = importlib.util.spec_from_file_location("suitezero", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(f"size={num_cells},seed={seed}")


def read_shared(workdir, config, names, archs):
    """f32[N, M]: the scores of `names` for `archs` from a CLI run of the same config."""
    with open(os.path.join(workdir, "config.json")) as f:
        run = json.load(f)
    for field, theirs, ours in (
        ("seed", run["seed"], config.seed),
        ("batch_size", run["data"]["batch_size"], config.data.batch_size),
    ):
        if theirs != ours:
            sys.exit(f"--shared-from {workdir}: its {field} is {theirs}, this script's {ours}")
    with open(os.path.join(workdir, "scores.jsonl")) as f:
        rows = {r["arch"]: r for r in map(json.loads, f)}
    missing = [a for a in archs if a not in rows]
    if missing:
        sys.exit(f"--shared-from {workdir}: {len(missing)} cells not scored, e.g. {missing[0]}")
    absent = [n for n in names if n not in rows[archs[0]]]
    if absent:
        sys.exit(f"--shared-from {workdir}: no scores for {', '.join(absent)}")
    return np.array([[rows[a][n]["score"] for n in names] for a in archs], np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", default="plain")
    parser.add_argument("--num-cells", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-call", type=int, default=10)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--shared-from", help="a CLI workdir holding the shared-batch scores")
    args = parser.parse_args()

    names = args.proxies.split(",")
    config = load_config(args.num_cells, args.seed)
    published = dict(config.benchmark.reference_of)
    space = inputs.space(config)
    bench = inputs.benchmark(config)
    images = inputs.Images(config)
    key_pop, key_data, key_init = jax.random.split(jax.random.key(config.seed), 3)
    cells = space.validate(inputs.population(config, space, bench, key_pop))
    archs = [space.to_string(g) for g in cells]
    keys = jax.random.split(key_init, 1)
    proxy = proxies.stack(*[proxies.get_proxy(n) for n in names])

    @functools.partial(jax.jit, static_argnums=2)
    def scorer(genotypes, batch, per_cell):
        return proxies.score_population(
            proxy, space, genotypes, batch, keys, batch_per_arch=per_cell
        )[:, 0]

    def score(per_cell):
        """f32[N, M]: the shared batch, or (`per_cell`) the CLI's batch per cell."""
        out = []
        shared = images.batch(key_data)
        for i in range(0, len(cells), args.per_call):
            chunk = cells[i : i + args.per_call]
            batch = images.batches(key_data, i, i + len(chunk)) if per_cell else shared
            out.append(np.asarray(scorer(jnp.asarray(chunk), batch, per_cell)))
            print(f"  {i + len(chunk)}/{len(cells)} cells", flush=True)
        return np.concatenate(out)

    if args.shared_from:
        a = read_shared(args.shared_from, config, names, archs)
    else:
        print(f"{len(cells)} cells; shared batch", flush=True)
        a = score(per_cell=False)
    print("a batch per cell", flush=True)
    b = score(per_cell=True)
    truth = bench.lookup("val_acc", archs)
    boot = dict(num_bootstrap=args.bootstrap)
    for m, name in enumerate(names):
        column = bench.lookup(published[name], archs)
        rows = {
            "shared batch vs val_acc": evaluation.rank_correlations(a[:, m], truth, **boot),
            "batch per cell vs val_acc": evaluation.rank_correlations(b[:, m], truth, **boot),
            f"published {published[name]} vs val_acc": evaluation.rank_correlations(
                column, truth, **boot
            ),
            f"shared batch vs {published[name]}": evaluation.rank_correlations(
                a[:, m], column, **boot
            ),
            f"batch per cell vs {published[name]}": evaluation.rank_correlations(
                b[:, m], column, **boot
            ),
            "shared vs per-cell scores": evaluation.rank_correlations(a[:, m], b[:, m], **boot),
        }
        for label, r in rows.items():
            print(evaluation.format_correlation(f"{name}: {label}", r))
        d = evaluation.spearman_difference(b[:, m], a[:, m], truth, **boot)
        lo, hi = d["difference_ci"]
        print(
            f"{name}: per-cell minus shared, rho vs val_acc {d['difference']:+.3f} "
            f"[{lo:+.3f}, {hi:+.3f}]"
        )


if __name__ == "__main__":
    xla_settings.prefer_memory_schedule()
    compilation_cache.enable()
    main()
