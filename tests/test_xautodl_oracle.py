"""NB201 against the benchmark authors' own network code (xautodl `TinyNetwork`).

The fixture is written by `scripts/xautodl_nb201_oracle.py` (torch and xautodl, not
needed here; provenance inside the file). Its weights are transplanted into our
materialised networks (`space.materialize`), which must then give the same logits
(atol 1e-5), NASWOT and log synflow (rtol 1e-5) and snip (rtol 1e-4, a float32 sum of
|w * g| against float64 torch sums).
"""

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxnas import network, proxies
from jaxnas.spaces import nb201

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "xautodl_nb201_golden.npz")


@functools.cache
def _fixture():
    return dict(np.load(FIXTURE))


def _case(i, batch_norm=True):
    """(materialised model, its variables with the oracle's weights, images)."""
    f = _fixture()
    space = nb201.space(channels=4, cells_per_stage=1)
    model = space.materialize(space.from_string(str(f["archs"][i])), batch_norm=batch_norm)
    x = jnp.asarray(f["x_nhwc"])
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    prefix = f"params_{i}/"
    flat = {k[len(prefix) :]: jnp.asarray(v) for k, v in f.items() if k.startswith(prefix)}
    expected = traverse_util.flatten_dict(shapes["params"], sep="/")
    assert set(flat) == set(expected)  # every weight transplanted, nothing left over
    for name, v in flat.items():
        assert v.shape == expected[name].shape, name
    variables = {"params": traverse_util.unflatten_dict(flat, sep="/")}
    if "batch_stats" in shapes:  # running statistics: not read in train mode
        variables["batch_stats"] = jax.tree.map(
            lambda s: jnp.ones(s.shape, s.dtype), shapes["batch_stats"]
        )
    return model, variables, x


def test_provenance_names_the_package_and_the_script():
    provenance = json.loads(str(_fixture()["provenance"]))
    assert provenance["xautodl"] == "1.0.0"
    assert provenance["script"] == "scripts/xautodl_nb201_oracle.py"
    assert len(provenance["script_sha256"]) == 64


@pytest.mark.parametrize("i", range(3))
def test_logits_and_naswot_equal_the_authors_network(i):
    model, variables, x = _case(i)
    logits, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(logits, _fixture()[f"logits_{i}"], atol=1e-5)
    net = network.from_linen(model, train=True)
    score = jax.jit(lambda v: proxies.get_proxy("naswot")(net, v, {"x": x}, None))(variables)
    np.testing.assert_allclose(score, _fixture()[f"naswot_{i}"], rtol=1e-5)


@pytest.mark.parametrize("i", range(3))
def test_snip_and_synflow_equal_the_authors_network(i):
    f = _fixture()
    model, variables, x = _case(i)
    net = network.from_linen(model, train=True)
    batch = {"x": x, "y": jnp.asarray(f["y"])}
    snip = jax.jit(lambda v: proxies.get_proxy("snip")(net, v, batch, None))(variables)
    np.testing.assert_allclose(snip, f[f"snip_{i}"], rtol=1e-4)
    # synflow declares batch_norm=False: the network without BatchNorm, as the reference.
    model, variables, x = _case(i, batch_norm=False)
    net = network.from_linen(model, train=True)
    synflow = jax.jit(lambda v: proxies.get_proxy("synflow")(net, v, {"x": x}, None))(variables)
    np.testing.assert_allclose(synflow, f[f"synflow_{i}"], rtol=1e-5)
