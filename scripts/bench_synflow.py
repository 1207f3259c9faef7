"""synflow speed: jaxnas (float32, log space) vs the PyTorch oracle (float64), side by side.

  python scripts/bench_synflow.py [--num-archs 100]

Both score the same seeded NB201 cells (C=16, N=5, 10 classes, PyTorch default init, one
initialisation per cell, BatchNorm off, one all-ones 32x32 image), on this machine's
CPU, one after the other in one process:

  * jaxnas: `score_population` jitted once (the proxy applies `batch_norm=False`), cells
    mapped in calls of `--archs-per-call`; compile time is measured separately (first
    call minus a steady call), per-cell time after compilation.
  * PyTorch (`scripts/torch_suitezero_oracle.py`, needs the `torch` extra): per cell,
    build the network and run the reference protocol (deep copy, BN forward replaced by
    the identity, |theta| in place, float64, backward of the summed output).

The two use different random initialisations, so scores are compared by rank
(Spearman over the cells), not value; the golden tests compare values on equal weights.
Prints per-architecture times, the speed-up, and the projected time for all 15,625 cells.
"""

import argparse
import os
import sys
import time

import jax
import numpy as np
from scipy import stats

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
import timing  # noqa: E402  (scripts/timing.py, beside this script)

from jaxnas import proxies, xla_settings  # noqa: E402
from jaxnas.spaces import nb201  # noqa: E402

NB201_SIZE = 15625


def bench_jax(cells, archs_per_call):
    space = nb201.space()
    proxy = proxies.get_proxy("synflow")
    keys = jax.random.split(jax.random.key(0), 1)
    batch = {"x": np.zeros((1, 32, 32, 3), np.float32)}  # synflow uses the shape only

    @jax.jit
    def scorer(population):
        return proxies.score_population(proxy, space, population, batch, keys)

    scores, steady, compile_s = timing.time_chunks(scorer, cells, archs_per_call)
    return scores[:, 0], steady, compile_s


def bench_torch(cells):
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_nb201_oracle as nb201_torch
    import torch_suitezero_oracle as oracle

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    scores = []
    start = time.perf_counter()
    for genotype in cells:
        model = nb201_torch.build(genotype)
        scores.append(oracle.synflow(model, (1, 3, 32, 32)))
    return np.asarray(scores), (time.perf_counter() - start) / len(cells), torch.__version__


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-archs", type=int, default=100)
    parser.add_argument("--archs-per-call", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = jax.random.choice(
        jax.random.key(args.seed), NB201_SIZE, (args.num_archs,), replace=False
    )
    cells = nb201.space().enumerate()[np.asarray(rows)]
    print(
        f"{len(cells)} NB201 cells (C=16, N=5), synflow on one all-ones 32x32 image, "
        f"{os.cpu_count()} CPU cores, jax {jax.__version__} on {jax.devices()[0].platform}"
    )
    jax_scores, jax_s, compile_s = bench_jax(cells, args.archs_per_call)
    n = len(jax_scores)
    print(
        f"jaxnas float32 log-space: {jax_s * 1e3:8.1f} ms/arch after compile; compile "
        f"{compile_s:.1f} s; all {NB201_SIZE} cells ~{jax_s * NB201_SIZE / 60:.1f} min; "
        f"{int(np.sum(~np.isfinite(jax_scores)))} non-finite"
    )
    try:
        torch_scores, torch_s, version = bench_torch(cells[:n])
    except ImportError:
        print("PyTorch not installed (pip install -e '.[torch]'); skipping the oracle")
        return
    rho = stats.spearmanr(torch_scores, jax_scores)[0]
    print(
        f"torch {version} float64: {torch_s * 1e3:8.1f} ms/arch; jaxnas is "
        f"{torch_s / jax_s:.2f}x faster; all {NB201_SIZE} cells ~{torch_s * NB201_SIZE / 60:.1f} "
        f"min; Spearman(jax, torch scores over cells) {rho:.3f}; max torch log S "
        f"{np.max(torch_scores):.1f}"
    )


if __name__ == "__main__":
    xla_settings.prefer_memory_schedule()
    main()
