"""Seconds for one TE-NAS supernet evaluation (NTK + linear regions) on this machine.

  python scripts/bench_tenas_supernet.py [--ntk-batch 8 24 72] [--crops 3000] \
      [--rows-per-chunk 2 72]

Scores the NB201 supernet with every op but `none` on all edges (op weights 1/4,
"mask" dispatch) as one round of `configs/nb201_tenas_search.py` scores each
candidate: -log kappa on TE-NAS's C=3/N=1 network with `--ntk-batch` real CIFAR-10
training images and the linear-region count on the thin C=1 network with `--crops`
random 3x3 crops, each proxy timed on its own. There is one NTK line per `--ntk-batch`
and `--rows-per-chunk` (how many of the NTK's backward passes run vmapped together;
default: what the TE-NAS search uses on this backend, `tenas.ntk_rows_per_chunk()`).
The Jacobian of batch-statistics BatchNorm needs one backward pass per image through
the whole batch, so its cost grows as the square of the batch. Prints the first call
(with compilation), a second call, and the peak resident memory. A TE-NAS NB201 run
costs about 180 such evaluations (57 candidates and 3 supernets over 3 rounds, 3
repeats each).
"""

import argparse
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import benchmarks, data
from jaxnas.proxies import ntk, regions
from jaxnas.spaces import nb201
from jaxnas.strategies import tenas


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ntk-batch", type=int, nargs="+", default=[72])
    parser.add_argument("--crops", type=int, default=3000)
    parser.add_argument("--rows-per-chunk", type=int, nargs="+")
    args = parser.parse_args()
    chunks = args.rows_per_chunk or [tenas.ntk_rows_per_chunk()]
    path = f"{benchmarks.shared_data_dir()}/images/cifar10_jpeg_yoongikim_train1280_test1000.npz"
    images, labels = data.load_npz(path, "train_images", "train_labels")
    key = jax.random.key(0)
    crops = data.random_crops(key, jnp.asarray(data.normalize(images, "cifar10")), args.crops)
    space = nb201.space()
    active = np.ones((6, 5), bool)
    active[:, 0] = False
    weights = tenas.op_weights(active)

    def kappa_fn(rows_per_chunk):
        @jax.jit
        def kappa(weights, x):
            a = space.network(weights, dispatch="mask", **ntk.TENAS_NTK_NETWORK)
            proxy = ntk.ntk_cond(rows_per_chunk=rows_per_chunk)
            return proxy(a, a.init(key, x), {"x": x}, key)

        return kappa

    @jax.jit
    def region_count(weights, crops):
        b = space.network(weights, dispatch="mask", **regions.TENAS_REGIONS_NETWORK)
        return regions.linear_regions()(b, b.init(key, crops), {"x": crops}, key)

    def timed(name, fn, *args):
        for label in ("first call (compile)", "second call"):
            start = time.perf_counter()
            value = jax.block_until_ready(fn(*args))
            seconds = time.perf_counter() - start
            print(f"{name}: {label} {seconds:.3f} s  ({value:.3f})")

    for batch in args.ntk_batch:
        x = data.sample_batch(key, images, labels, batch)["x"]
        for chunk in chunks:
            rows = "all rows at once" if chunk is None else f"rows in chunks of {chunk}"
            name = f"-log kappa, {batch} images, {rows}"
            timed(name, kappa_fn(chunk), weights, x)
    timed(f"regions, {args.crops} crops", region_count, weights, crops)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
    main()
