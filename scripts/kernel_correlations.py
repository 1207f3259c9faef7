"""Rank correlations of the kernel / gradient proxies with NB201 accuracy, per protocol.

  python scripts/kernel_correlations.py --num-archs 200 \
      --out runs/kernel_corr [--proxies ntk_cond,linear_regions,...]

Scores a seeded sample of distinct NB201 cells (the same cells for every proxy) with
each proxy under its reference protocol (reference.md §A), on real CIFAR-10 training
images (shared/data/images, JPEG-decoded; NB201 normalisation), one batch drawn once
per proxy and shared by every cell:

  proxy              network             inputs                         inits K
  ntk_cond           TE-NAS C=3, N=1     72 images                      3 (default init)
  linear_regions     thin C=1 cell       3000 3x3 one-channel crops     3 (default init)
  knas / knas_code   C=16, N=5           50 images, batch-1 gradients   1
  zico               C=16, N=5           128 images = 2 batches of 64   1
  lswag              C=16, N=5           64 images (2 batches of 32)    1
  swap               C=16, N=5           16 images, N(0,1) init         8 (reference: 32)
  meco               C=16, N=5           1 image                        1
  az_*               C=16, N=5           64 Gaussian images, Kaiming    1

`az_nas` is the AZ-NAS rank aggregation of its three components and FLOPs (for NB201
cells FLOPs rank as sum over edges of k^2 [edge is a k x k conv], since every stage
has the same C^2 H W; a stand-in until the `flops` proxy is merged). Writes
`scores.npz` (genotypes, per-proxy f32[P, K], seconds per proxy) and prints Spearman
and Kendall (bootstrap 95 % CIs) against CIFAR-10 / CIFAR-100 / ImageNet16-120 test
accuracy (200 epochs), with the seconds per architecture after compilation.
"""

import argparse
import os
import sys
import time
import zlib

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from jaxnas import benchmarks, data, evaluation, proxies  # noqa: E402
from jaxnas.proxies import aznas, ntk, regions  # noqa: E402
from jaxnas.spaces import nb201  # noqa: E402

TARGETS = ("cifar10_test", "cifar100_test", "imagenet16_120_test")
FULL = dict(channels=16, cells_per_stage=5)

# name -> (proxy spec, network overrides, batch kind, batch size, inits)
PROTOCOLS = {
    "ntk_cond": ("ntk_cond", ntk.TENAS_NTK_NETWORK, "images", 72, 3),
    "linear_regions": ("linear_regions", regions.TENAS_REGIONS_NETWORK, "crops", 3000, 3),
    "knas": ("knas", FULL, "images", 50, 1),
    "knas_code": ("knas(variant='code')", FULL, "images", 50, 1),
    "zico": ("zico", FULL, "images", 128, 1),
    "lswag": ("lswag", FULL, "images", 64, 1),
    "swap": ("swap", FULL, "images", 16, 8),
    "meco": ("meco", FULL, "images", 1, 1),
    "az_expressivity": ("az_expressivity", FULL, "images", 64, 1),
    "az_progressivity": ("az_progressivity", FULL, "images", 64, 1),
    "az_trainability": ("az_trainability", FULL, "images", 64, 1),
}


def nb201_flops_rank(genotypes: np.ndarray) -> np.ndarray:
    """Sum over edges of k^2 for k x k conv edges: ranks NB201 cells like their FLOPs."""
    weight = np.zeros(len(nb201.OPS))
    weight[nb201.OPS.index("nor_conv_1x1")] = 1.0
    weight[nb201.OPS.index("nor_conv_3x3")] = 9.0
    return weight[genotypes].sum(axis=1)


def make_batch(kind, size, images, labels, key):
    if kind == "crops":
        pool = jnp.asarray(data.normalize(images, "cifar10"))
        return {"x": data.random_crops(key, pool, size, 3)}
    return data.sample_batch(key, images, labels, size, "cifar10")


def score(name, genotypes, images, labels, seed, per_call):
    spec, overrides, kind, size, inits = PROTOCOLS[name]
    space = nb201.space(**overrides)
    proxy = proxies.get_proxy(spec)
    key_batch, key_init = jax.random.split(
        jax.random.fold_in(jax.random.key(seed), zlib.crc32(name.encode()))
    )
    batch = make_batch(kind, size, images, labels, key_batch)
    keys = jax.random.split(key_init, inits)

    @jax.jit
    def scorer(population):
        return proxies.score_population(proxy, space, population, batch, keys)

    out, first, start = [], None, time.perf_counter()
    steady_start = start
    for i in range(0, len(genotypes), per_call):
        chunk = genotypes[i : i + per_call]
        real = len(chunk)
        if real < per_call:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], per_call - real, axis=0)])
        out.append(np.asarray(jax.block_until_ready(scorer(jnp.asarray(chunk))))[:real])
        if first is None:
            first = time.perf_counter() - start
            steady_start = time.perf_counter()
    steady = (time.perf_counter() - steady_start) / max(len(genotypes) - per_call, 1)
    return np.concatenate(out), first, steady


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-archs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-call", type=int, default=10)
    parser.add_argument("--proxies", default=",".join(PROTOCOLS))
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", default="runs/kernel_corr")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    shared = benchmarks.shared_data_dir()
    table = benchmarks.Benchmark.from_csv(
        os.path.join(shared, "nasbench201", "nb201_test_acc_200ep.csv.gz")
    )
    images, labels = data.load_npz(
        os.path.join(shared, "images", "cifar10_jpeg_yoongikim_train1280_test1000.npz"),
        "train_images",
        "train_labels",
    )
    space = nb201.space()
    rows = np.sort(
        np.asarray(
            jax.random.choice(jax.random.key(args.seed), space.size, (args.num_archs,), False)
        )
    )
    genotypes = space.enumerate()[rows]
    archs = [space.to_string(g) for g in genotypes]
    accuracy = {t: table.lookup(t, archs) for t in TARGETS}
    print(
        f"{len(archs)} NB201 cells (seed {args.seed}); jax {jax.__version__}, "
        f"{os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )

    path = os.path.join(args.out, "scores.npz")
    saved = dict(np.load(path)) if os.path.exists(path) else {}
    for name in args.proxies.split(","):
        if f"scores/{name}" in saved and saved["genotypes"].shape == genotypes.shape:
            continue
        scores, first, steady = score(name, genotypes, images, labels, args.seed, args.per_call)
        saved.update(
            {
                f"scores/{name}": scores,
                f"first_call_s/{name}": first,
                f"seconds_per_arch/{name}": steady,
                "genotypes": genotypes,
            }
        )
        np.savez(path, **saved)
        print(
            f"{name}: first call (compile + {args.per_call} archs) {first:.1f} s, "
            f"{steady:.2f} s/arch after compile",
            flush=True,
        )

    columns = {
        k[len("scores/") :]: np.mean(v, axis=1) for k, v in saved.items() if k.startswith("scores/")
    }
    az = [f"az_{c}" for c in aznas.COMPONENTS]
    if all(c in columns for c in az):
        matrix = np.stack([columns[c] for c in az] + [nb201_flops_rank(genotypes)], axis=1)
        columns["az_nas"] = np.asarray(aznas.rank_aggregate(matrix))
    columns["flops (stand-in)"] = nb201_flops_rank(genotypes)
    for name, values in columns.items():
        for target in TARGETS:
            r = evaluation.rank_correlations(values, accuracy[target], num_bootstrap=args.bootstrap)
            print(evaluation.format_correlation(f"{name} vs {target}", r), flush=True)


if __name__ == "__main__":
    main()
