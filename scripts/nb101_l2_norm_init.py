"""Which initialisation NAS-Bench-Suite-Zero's NB101 `l2_norm` column was computed under.

  python scripts/nb101_l2_norm_init.py [--run runs/nb101_sz]

l2_norm is the sum over conv / linear layers of ||W||_F. For a layer of n weights drawn
i.i.d. with variance v, ||W||_F concentrates at sqrt(n v), so each initialisation rule
predicts the column from the layer shapes of the materialised network (NB101's actual
vertex widths, 128-channel stem) alone:

  * PyTorch default (U(+-1/sqrt(fan_in))): sqrt(C_out / 3) per layer.
  * NASLib's NB101 `Network._initialize_weights` (nasbench101/model.py): conv
    N(0, 2 / (k^2 C_out)), i.e. sqrt(2 C_in) per conv; linear N(0, 0.01^2).

Prints, for each rule, Spearman(prediction, column) and the median column / prediction
over the table's 250 cells; with `--run` (a CLI workdir scoring l2_norm on that table),
the same for our scores.
"""

import argparse
import json
import os
import sys

import jax
import numpy as np
from scipy import stats

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from jaxnas import benchmarks, configs, errors  # noqa: E402
from jaxnas.proxies import layerwise  # noqa: E402
from jaxnas.spaces import nb101  # noqa: E402

TABLE = configs.NB101_SUITE_ZERO

RULES = {
    "PyTorch default, actual widths": lambda shape: np.sqrt(shape[-1] / 3.0),
    "NASLib NB101 (Kaiming normal fan-out conv, N(0, 0.01) linear)": lambda shape: (
        np.sqrt(2.0 * shape[2]) if len(shape) == 4 else np.sqrt(np.prod(shape) * 1e-4)
    ),
}


def kernel_shapes(space, genotype):
    """Shapes of the conv / linear kernels of the materialised network."""
    model = space.materialize(genotype)
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), np.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
    return [
        leaf.shape
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
        if layerwise.is_weight(path)
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="", help="CLI workdir with l2_norm scores")
    args = parser.parse_args()
    try:
        table = benchmarks.Benchmark.from_csv(
            TABLE.path(),
            key=TABLE.key,
            key_columns=TABLE.key_columns,
        )
    except errors.BenchmarkError as exc:
        sys.exit(f"error: {exc}")
    space = nb101.space()
    archs = list(table.column("arch"))
    column = table.column("l2_norm")
    shapes = [kernel_shapes(space, space.from_string(arch)) for arch in archs]
    print(f"{len(archs)} cells of {TABLE.file}; Spearman with the l2_norm column, median ratio")
    for name, rule in RULES.items():
        pred = np.asarray([sum(rule(s) for s in cell) for cell in shapes])
        rho = stats.spearmanr(pred, column)[0]
        print(f"  {name:<64} rho {rho:.3f}  column/prediction {np.median(column / pred):.3f}")
    if args.run:
        with open(os.path.join(args.run, "scores.jsonl")) as f:
            ours = {r["arch"]: r["l2_norm"]["score"] for r in map(json.loads, f)}
        held = [i for i, arch in enumerate(archs) if arch in ours]
        mine = np.asarray([ours[archs[i]] for i in held])
        rho = stats.spearmanr(mine, column[held])[0]
        ratio = np.median(column[held] / mine)
        print(f"  {'ours (' + args.run + ')':<64} rho {rho:.3f}  column/ours {ratio:.3f}")


if __name__ == "__main__":
    main()
