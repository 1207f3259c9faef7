"""TE-NAS's DARTS supernet against an implementation by others (xautodl's `NASNetworkDARTS`).

The fixture is written by `scripts/xautodl_darts_supernet_oracle.py` (torch and xautodl,
not needed here; provenance inside the file): xautodl's DARTS search network (stem, 3N
search cells whose edges sum `w * op(x)` over all ops, BN + ReLU, pooling, linear) in
train mode, with op weights from arch logits of which about 40 % are -1000 (pruned ops,
weight exactly 0), at three settings: C=2, N=1 (normal, reduction, reduction) on 16x16
images; C=1, N=2, stem multiplier 3 on 16x16 images; C=1, N=1 on 10x10 images (odd maps
into the second reduction cell) with the ops in a permuted order. The weights
(float16 values, exact in float32) are transplanted into
`darts_supernet.network(op_weights, depth=0, stem=True, ops=...)` with the recorded op
weights and op order, which must then give the same logits (atol 1e-5).

Regenerate with:
  python scripts/xautodl_darts_supernet_oracle.py \
      --out tests/fixtures/xautodl_darts_supernet_golden.npz
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import oracle_checks
import pytest
from flax import traverse_util

from jaxnas.spaces import darts_supernet

FIXTURE = "xautodl_darts_supernet_golden.npz"
SETTINGS = range(3)


def _setting(fixture, i):
    return json.loads(str(fixture["settings"]))[i]


def _network(fixture, i):
    setting = _setting(fixture, i)
    return darts_supernet.network(
        fixture[f"op_weights_{i}"],
        channels=setting["channels"],
        cells_per_stage=setting["cells_per_stage"],
        depth=0,
        stem=True,
        stem_multiplier=setting["stem_multiplier"],
        ops=tuple(str(name) for name in fixture[f"ops_{i}"]),
    )


def _transplant(net, fixture, i):
    """`{"params": ...}` of `net` holding setting `i`'s oracle weights; every oracle
    weight must land on a parameter with its shape, and every parameter receive one."""
    x = jnp.asarray(fixture[f"x_nhwc_{i}"])
    expected = traverse_util.flatten_dict(
        jax.eval_shape(net.init, jax.random.key(0), x)["params"], sep="/"
    )
    values = fixture[f"params_{i}"].astype(np.float32)
    flat, start = {}, 0
    for name, shape in json.loads(str(fixture[f"param_layout_{i}"])):
        size = int(np.prod(shape))
        flat[name] = jnp.asarray(values[start : start + size].reshape(shape))
        start += size
    assert start == values.size
    assert set(flat) == set(expected), (
        f"oracle only: {sorted(set(flat) - set(expected))}, "
        f"ours only: {sorted(set(expected) - set(flat))}"
    )
    for name, v in flat.items():
        assert v.shape == expected[name].shape, (name, v.shape, expected[name].shape)
    return {"params": traverse_util.unflatten_dict(flat, sep="/")}


def test_provenance_names_the_package_and_the_current_script():
    fixture = oracle_checks.load(FIXTURE)
    oracle_checks.assert_provenance(
        fixture, "scripts/xautodl_darts_supernet_oracle.py", xautodl="1.0.0"
    )
    assert oracle_checks.provenance(fixture)["oracle"] == (
        "xautodl.models.cell_searchs.search_model_darts_nasnet.NASNetworkDARTS"
    )


def test_tenas_ops_are_xautodls_darts_space_in_order():
    # Settings 0 and 1 use xautodl's `SearchSpaceNames["darts"]` as it is, renamed.
    fixture = oracle_checks.load(FIXTURE)
    for i in (0, 1):
        assert tuple(str(name) for name in fixture[f"ops_{i}"]) == darts_supernet.TENAS_OPS


@pytest.mark.parametrize("i", SETTINGS)
def test_logits_equal_xautodl(i):
    fixture = oracle_checks.load(FIXTURE)
    weights = fixture[f"op_weights_{i}"]
    assert (weights == 0).any() and (weights > 0).sum(-1).min() >= 1  # pruned ops, none empty
    net = _network(fixture, i)
    logits = jax.jit(net.apply)(_transplant(net, fixture, i), jnp.asarray(fixture[f"x_nhwc_{i}"]))
    np.testing.assert_allclose(logits, fixture[f"logits_{i}"], atol=1e-5)
