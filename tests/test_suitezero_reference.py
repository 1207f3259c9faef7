"""params and flops against NAS-Bench-Suite-Zero's published NB201 columns (full network).

Suite-Zero counted with tensorwatch on NASLib's NB201 network (C=16, N=5, 10 classes,
one 32x32 image): params = every trainable tensor of the modules that run (conv
weights, BatchNorm gamma and beta, classifier weight and bias), flops = conv / linear
multiply-accumulates + 2 per BatchNorm element + 1 per ReLU element + k^2 per pooling
output + (H + 1)(W + 1) per channel for the global pooling. Both are exact here.
"""

import csv
import gzip
import os

import jax
import numpy as np
import pytest

from jaxnas import proxies
from jaxnas.spaces import nb201


def _table(shared_data):
    path = os.path.join(shared_data, "nasbench201", "nb201_zc_suitezero_cifar10_9445.csv.gz")
    with gzip.open(path, "rt") as f:
        rows = list(csv.DictReader(f))
    genotypes = np.stack([nb201.from_string(r["arch_str"]) for r in rows])
    return genotypes, {k: np.asarray([float(r[k]) for r in rows]) for k in ("params", "flops")}


def _score(name, genotypes):
    space = nb201.space()
    batch = {"x": np.zeros((1, 32, 32, 3), np.float32)}
    keys = jax.random.split(jax.random.key(0), 1)
    proxy = proxies.get_proxy(name)
    fn = jax.jit(lambda g: proxies.score_population(proxy, space, g, batch, keys, chunk_size=64))
    return np.asarray(fn(genotypes))[:, 0]


@pytest.mark.parametrize(
    "name, cells",
    [
        ("params", slice(None)),  # every cell: cheap, no forward pass
        pytest.param("flops", slice(None), marks=pytest.mark.slow),  # a full-size compile
    ],
)
def test_equals_the_suite_zero_column_to_0_1_percent(shared_data, name, cells):
    genotypes, reference = _table(shared_data)
    ours = _score(name, genotypes[cells])
    expected = reference[name][cells]
    relative = np.abs(ours - expected) / expected
    assert relative.max() <= 1e-3, (name, float(relative.max()), int(relative.argmax()))
