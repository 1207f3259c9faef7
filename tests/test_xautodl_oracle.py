"""NB201 against the benchmark authors' own network code (xautodl `TinyNetwork`).

The fixture is written by `scripts/xautodl_nb201_oracle.py` (torch and xautodl, not
needed here; provenance inside the file). Its weights are transplanted into our
materialised networks (`space.materialize`), which must then give the same logits
(atol 1e-5) and the same NASWOT score (rtol 1e-5).
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


def _case(i):
    """(materialised model, its variables with the oracle's weights, images)."""
    f = _fixture()
    space = nb201.space(channels=4, cells_per_stage=1)
    model = space.materialize(space.from_string(str(f["archs"][i])))
    x = jnp.asarray(f["x_nhwc"])
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    prefix = f"params_{i}/"
    flat = {k[len(prefix) :]: jnp.asarray(v) for k, v in f.items() if k.startswith(prefix)}
    expected = traverse_util.flatten_dict(shapes["params"], sep="/")
    assert set(flat) == set(expected)  # every weight transplanted, nothing left over
    for name, v in flat.items():
        assert v.shape == expected[name].shape, name
    variables = {
        "params": traverse_util.unflatten_dict(flat, sep="/"),
        "batch_stats": jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes["batch_stats"]),
    }
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
