"""NTK condition number speed: jaxnas vs TE-NAS's PyTorch per-sample backward loop.

  python scripts/bench_ntk.py [--num-archs 30] [--batch-size 72] \
      [--network tenas|full]

Both score the same seeded NB201 cells on the same batch of real CIFAR-10 training
images (synthetic N(0, 1) images when the shared data is absent), on this machine's
CPU, one after the other in one process:

  * jaxnas: `score_population` with `ntk_cond(impl=...)` for both NTK implementations,
    and the per-example mode (one backward pass of B single-image forwards; it equals
    the batched NTK only without BatchNorm, so its scores differ here), jitted once,
    one initialisation per cell, cells mapped in calls of `--archs-per-call`; compile
    time (first call minus a steady call) is reported separately from the per-cell time
    after compilation.
  * PyTorch (scripts/torch_kernel_oracle.py, needs the `torch` extra): per cell, build
    the network (default init) and run TE-NAS's `get_ntk_n` loop: one forward, then one
    `logit[i].backward(retain_graph=True)` per sample, gradients of every "weight",
    Theta = G G^T, eigenvalues.

`--network tenas` is TE-NAS's NTK network (C=3, N=1, batch 72); `--network full` the
benchmark network (C=16, N=5). Prints per-architecture times, the speed-up, and the
Spearman correlation of the two score lists (different random inits, so only roughly
equal rankings are expected).
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

from jaxnas import benchmarks, data, proxies, xla_settings  # noqa: E402
from jaxnas.proxies import ntk  # noqa: E402
from jaxnas.spaces import nb201  # noqa: E402

NETWORKS = {"tenas": ntk.TENAS_NTK_NETWORK, "full": dict(channels=16, cells_per_stage=5)}


def make_batch(batch_size, seed):
    path = os.path.join(
        benchmarks.shared_data_dir(), "images", "cifar10_jpeg_yoongikim_train1280_test1000.npz"
    )
    key = jax.random.key(seed)
    if os.path.exists(path):
        images, labels = data.load_npz(path, "train_images", "train_labels")
        return data.sample_batch(key, images, labels, batch_size), "real CIFAR-10"
    return data.synthetic_batch(key, batch_size), "synthetic N(0,1)"


def bench_jax(cells, batch, network, impl, archs_per_call, per_example=False):
    space = nb201.space(**NETWORKS[network])
    proxy = proxies.get_proxy(f"ntk_cond(impl={int(impl)},per_example={int(per_example)})")
    keys = jax.random.split(jax.random.key(0), 1)

    @jax.jit
    def scorer(population):
        return proxies.score_population(proxy, space, population, batch, keys)

    scores, steady, compile_s = timing.time_chunks(scorer, cells, archs_per_call)
    return scores[:, 0], steady, compile_s


def bench_torch(cells, batch, network):
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_kernel_oracle as oracle

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    x = torch.from_numpy(np.asarray(batch["x"]).transpose(0, 3, 1, 2).copy())
    settings = NETWORKS[network]
    scores = []
    start = time.perf_counter()
    for genotype in cells:
        model = oracle.TenasNetwork(genotype, settings["channels"], settings["cells_per_stage"])
        scores.append(-oracle.ntk(model, x)[1])
    return np.asarray(scores), (time.perf_counter() - start) / len(cells)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-archs", type=int, default=30)
    parser.add_argument(
        "--batch-size", type=int, default=proxies.PROXIES["ntk_cond"].protocol.batch_size
    )
    parser.add_argument("--network", choices=sorted(NETWORKS), default="tenas")
    parser.add_argument("--archs-per-call", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    space = nb201.space()
    rows = jax.random.choice(jax.random.key(args.seed), space.size, (args.num_archs,), False)
    cells = space.enumerate()[np.asarray(rows)]
    batch, source = make_batch(args.batch_size, args.seed)
    print(
        f"{len(cells)} NB201 cells, {args.network} NTK network {NETWORKS[args.network]}, batch "
        f"{args.batch_size} of {source} images, {os.cpu_count()} CPU cores, load average "
        f"{os.getloadavg()[0]:.1f}, jax {jax.__version__} on {jax.devices()[0].platform}",
        flush=True,
    )
    results = {}
    modes = [(impl.name, impl, False) for impl in ntk.NtkImpl]
    # One backward pass of B single images; not the batched-BN NTK that TE-NAS computes.
    modes.append(("PER_EXAMPLE (no BN!)", ntk.NtkImpl.JACOBIAN_CONTRACTION, True))
    for name, impl, per_example in modes:
        scores, per_arch, compile_s = bench_jax(
            cells, batch, args.network, impl, args.archs_per_call, per_example
        )
        results[name] = (scores, per_arch)
        print(
            f"jaxnas {name:20s}: {per_arch * 1e3:8.1f} ms/arch after compile; "
            f"compile {compile_s:.1f} s",
            flush=True,
        )
    try:
        import torch
    except ImportError:
        print("PyTorch not installed (pip install -e '.[torch]'); skipping the oracle")
        return
    n = len(results["JACOBIAN_CONTRACTION"][0])
    torch_scores, torch_s = bench_torch(cells[:n], batch, args.network)
    print(f"torch per-sample loop      : {torch_s * 1e3:8.1f} ms/arch (torch {torch.__version__})")
    for name, (scores, per_arch) in results.items():
        rho = stats.spearmanr(scores, torch_scores)[0]
        print(
            f"{name}: jaxnas is {torch_s / per_arch:.2f}x the speed of the PyTorch loop; "
            f"Spearman(jax, torch scores) {rho:.3f}"
        )


if __name__ == "__main__":
    xla_settings.prefer_memory_schedule()
    main()
