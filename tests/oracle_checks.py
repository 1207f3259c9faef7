"""Shared checks against oracles written by others (fixtures from `scripts/*_oracle.py`).

Each fixture holds, per network `i`, the oracle's weights under our materialised names
(`params_{i}/path/to/leaf`), its logits and its NASWOT, snip and log synflow scores on
the fixture's images `x_nhwc` and labels `y`, and a `provenance` JSON string.
"""

import functools
import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxnas import network, proxies

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


@functools.cache
def load(name: str) -> dict:
    """The arrays of `tests/fixtures/{name}`."""
    return dict(np.load(os.path.join(FIXTURES, name)))


def provenance(fixture: dict) -> dict:
    return json.loads(str(fixture["provenance"]))


def _sha256(path: str) -> str:
    with open(os.path.join(ROOT, path), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def assert_provenance(fixture: dict, script: str, **versions: str) -> None:
    """The fixture was written by the current `script` (and the scripts it imports, if
    any) with the given package `versions`: editing a script without regenerating its
    fixture fails here."""
    record = provenance(fixture)
    assert record["script"] == script
    assert record["command"].startswith(f"python {script} ")
    for path, digest in {
        script: record["script_sha256"],
        **record.get("helper_scripts", {}),
    }.items():
        assert _sha256(path) == digest, f"{path} changed since the fixture was written: rerun it"
    for package, version in versions.items():
        assert record[package] == version, package


def transplant(model, fixture: dict, i: int) -> dict:
    """Variables of the materialised `model` holding network `i`'s oracle weights.

    Every weight of the oracle must land on a parameter of `model` with its shape and
    every parameter must receive one. Running statistics are ones: train-mode
    BatchNorm never reads them.
    """
    x = jnp.asarray(fixture["x_nhwc"])
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    prefix = f"params_{i}/"
    flat = {k[len(prefix) :]: jnp.asarray(v) for k, v in fixture.items() if k.startswith(prefix)}
    expected = traverse_util.flatten_dict(shapes["params"], sep="/")
    assert set(flat) == set(expected), (
        f"oracle only: {sorted(set(flat) - set(expected))}, "
        f"ours only: {sorted(set(expected) - set(flat))}"
    )
    for name, v in flat.items():
        assert v.shape == expected[name].shape, (name, v.shape, expected[name].shape)
    variables = {"params": traverse_util.unflatten_dict(flat, sep="/")}
    if "batch_stats" in shapes:
        variables["batch_stats"] = jax.tree.map(
            lambda s: jnp.ones(s.shape, s.dtype), shapes["batch_stats"]
        )
    return variables


def assert_logits_and_naswot(model, fixture: dict, i: int, atol=1e-5, rtol=1e-5):
    """Train-mode logits (atol) and NASWOT (rtol) of `model` with the oracle's weights."""
    variables = transplant(model, fixture, i)
    x = jnp.asarray(fixture["x_nhwc"])
    # Jitted: eager dispatch compiles every op of a many-op network on its own (~6x slower).
    apply = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))
    logits, _ = apply(variables, x)
    np.testing.assert_allclose(logits, fixture[f"logits_{i}"], atol=atol)
    net = network.from_linen(model, train=True)
    score = jax.jit(lambda v: proxies.get_proxy("naswot")(net, v, {"x": x}, None))(variables)
    np.testing.assert_allclose(score, fixture[f"naswot_{i}"], rtol=rtol)


def assert_snip(model, fixture: dict, i: int, rtol=1e-4):
    """snip of `model` with the oracle's weights on the fixture's batch."""
    variables = transplant(model, fixture, i)
    net = network.from_linen(model, train=True)
    batch = {"x": jnp.asarray(fixture["x_nhwc"]), "y": jnp.asarray(fixture["y"])}
    snip = jax.jit(lambda v: proxies.get_proxy("snip")(net, v, batch, None))(variables)
    np.testing.assert_allclose(snip, fixture[f"snip_{i}"], rtol=rtol)


def assert_synflow(model_without_bn, fixture: dict, i: int, rtol=1e-5):
    """log synflow of the BatchNorm-free `model_without_bn` (synflow declares
    `batch_norm=False`, and the oracles replace every BatchNorm by the identity)."""
    variables = transplant(model_without_bn, fixture, i)
    net = network.from_linen(model_without_bn, train=True)
    x = jnp.asarray(fixture["x_nhwc"])
    synflow = jax.jit(lambda v: proxies.get_proxy("synflow")(net, v, {"x": x}, None))(variables)
    np.testing.assert_allclose(synflow, fixture[f"synflow_{i}"], rtol=rtol)
