"""NASWOT speed: jaxnas vs a hook-based PyTorch oracle, side by side on the same cells.

  python scripts/bench_naswot.py [--num-archs 100] [--batch-size 64] [--concurrent-calls 0]

Both score the same seeded NB201 cells (C=16, N=5) on the same batch of real CIFAR-10
training images (synthetic N(0, 1) images when ../shared/data is absent), on this
machine's CPU, one after the other in one process:

  * jaxnas: the CLI's scorer and scoring loop (`jaxnas.scoring`), one initialisation
    per cell, cells mapped in calls of `--archs-per-call`, `--concurrent-calls` of them
    at once after the first (0: the CLI's auto); compile time is measured separately
    (first call minus a steady call), per-cell time after compilation.
  * PyTorch (scripts/torch_nb201_oracle.py, needs the `torch` extra): per cell, build
    the network (default init) and score it with forward hooks accumulating K in float64
    NumPy, in the reference protocol (forward + backward to arm the hooks, then a
    scoring forward) and in NASLib's forward-only protocol.

Prints per-architecture times, the speed-up ratios, and the projected time for all
15,625 cells.
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

from jaxnas import benchmarks, data, proxies, scoring, xla_settings  # noqa: E402
from jaxnas.spaces import nb201  # noqa: E402

NB201_SIZE = 15625


def make_batch(batch_size, seed):
    path = os.path.join(
        benchmarks.shared_data_dir(), "images", "cifar10_jpeg_yoongikim_train1280_test1000.npz"
    )
    key = jax.random.key(seed)
    if os.path.exists(path):
        images, labels = data.load_npz(path, "train_images", "train_labels")
        return data.sample_batch(key, images, labels, batch_size), "real CIFAR-10"
    return data.synthetic_batch(key, batch_size), "synthetic N(0,1)"


def bench_jax(cells, batch, archs_per_call, concurrent_calls, proxy_spec="naswot"):
    space = nb201.space()
    scorer = scoring.make_scorer(proxies.get_proxy(proxy_spec), space)
    keys = jax.random.split(jax.random.key(0), 1)
    scores, steady, compile_s = timing.time_score_chunks(
        scorer, cells, batch, keys, archs_per_call, concurrent_calls=concurrent_calls
    )
    return scores[:, 0], steady, compile_s


def bench_torch(cells, batch, protocol):
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_nb201_oracle as oracle

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    x = torch.from_numpy(np.asarray(batch["x"]).transpose(0, 3, 1, 2).copy())
    scores = []
    start = time.perf_counter()
    for genotype in cells:
        model = oracle.build(genotype)
        scores.append(oracle.naswot(model, x, protocol=protocol, match="relu"))
    return np.asarray(scores), (time.perf_counter() - start) / len(cells)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-archs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--archs-per-call", type=int, default=10)
    parser.add_argument("--concurrent-calls", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()

    space = nb201.space()
    rows = np.asarray(
        jax.random.choice(jax.random.key(args.seed), NB201_SIZE, (args.num_archs,), replace=False)
    )
    cells = space.enumerate()[rows]
    batch, source = make_batch(args.batch_size, args.seed)
    print(
        f"{len(cells)} NB201 cells (C=16, N=5), batch {args.batch_size} of {source} images, "
        f"{os.cpu_count()} CPU cores, jax {jax.__version__} on {jax.devices()[0].platform}"
    )

    jax_scores, jax_s, compile_s = bench_jax(
        cells, batch, args.archs_per_call, args.concurrent_calls
    )
    print(
        f"jaxnas     : {jax_s * 1e3:8.1f} ms/arch after compile; compile {compile_s:.1f} s; "
        f"all {NB201_SIZE} cells ~{jax_s * NB201_SIZE / 60:.0f} min"
    )
    if args.no_torch:
        return
    try:
        import torch
    except ImportError:
        print("PyTorch not installed (pip install -e '.[torch]'); skipping the oracle")
        return
    n = len(jax_scores)
    for protocol in ("reference", "forward"):
        torch_scores, torch_s = bench_torch(cells[:n], batch, protocol)
        rho = stats.spearmanr(torch_scores, jax_scores)[0]
        print(
            f"torch {protocol:9s}: {torch_s * 1e3:8.1f} ms/arch (torch {torch.__version__}); "
            f"jaxnas is {torch_s / jax_s:.2f}x faster; all {NB201_SIZE} cells "
            f"~{torch_s * NB201_SIZE / 60:.0f} min; Spearman(jax, torch scores) {rho:.3f}"
        )


if __name__ == "__main__":
    xla_settings.prefer_memory_schedule()
    main()
