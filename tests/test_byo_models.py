"""Bring-your-own models: every registered proxy scores a Linen model and the same model
written in NNX equally, and a proxy that finds no weights fails loudly."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxnas import errors, network, proxies, types

WIDTH, CLASSES = 6, 10


class LinenSmall(nn.Module):
    @nn.compact
    def __call__(self, x):
        for i in range(2):
            x = nn.Conv(WIDTH, (3, 3), name=f"conv{i}")(x)
            x = nn.BatchNorm(use_running_average=False, name=f"bn{i}")(x)
            x = jax.nn.relu(x)
            network.sow_tap(self, f"relu{i}", x)
        return nn.Dense(CLASSES, name="head")(jnp.mean(x, axis=(1, 2)))


class NnxSmall(nnx.Module):
    def __init__(self, rngs):
        self.conv0 = nnx.Conv(3, WIDTH, (3, 3), rngs=rngs)
        self.bn0 = nnx.BatchNorm(WIDTH, use_running_average=False, rngs=rngs)
        self.conv1 = nnx.Conv(WIDTH, WIDTH, (3, 3), rngs=rngs)
        self.bn1 = nnx.BatchNorm(WIDTH, use_running_average=False, rngs=rngs)
        self.head = nnx.Linear(WIDTH, CLASSES, rngs=rngs)

    def __call__(self, x):
        for i, (conv, bn) in enumerate(((self.conv0, self.bn0), (self.conv1, self.bn1))):
            x = jax.nn.relu(bn(conv(x)))
            self.sow(nnx.Intermediate, f"relu{i}", types.Tap(x, jnp.asarray(1.0)))
        return self.head(jnp.mean(x, axis=(1, 2)))


# Proxies that need what a plain Linen / NNX model does not give (probes recorded
# through jaxnas.spaces.op_layers modules, or blocks named as the spaces name them) declare it.
NEEDS_INSTRUMENTED_SPACE = {name for name, entry in proxies.PROXIES.items() if entry.instrumented}


# XLA's optimisations cost more compile time than these tiny programs run.
pytestmark = pytest.mark.usefixtures("fast_compile")


def _all_scores(net, params, batch):
    """{proxy name: f32 score, or the JaxnasError type name it raised}; one compile."""
    key = jax.random.key(3)
    runnable, out = {}, {}
    for name in sorted(proxies.PROXIES):
        proxy = proxies.get_proxy(name)
        try:  # errors about the network are raised while tracing
            jax.eval_shape(lambda p, proxy=proxy: proxy(net, p, batch, key), params)
            runnable[name] = proxy
        except errors.JaxnasError as exc:
            out[name] = type(exc).__name__
    scores = jax.jit(lambda p: {n: f(net, p, batch, key) for n, f in runnable.items()})(params)
    out.update({name: float(v) for name, v in scores.items()})
    return out


@pytest.fixture(scope="module")
def case():
    """(linen network, nnx network, the params they share, batch)."""
    key_x, key_y = jax.random.split(jax.random.key(42))
    batch = {
        "x": jax.random.normal(key_x, (8, 6, 6, 3), jnp.float32),
        "y": jax.random.randint(key_y, (8,), 0, CLASSES, jnp.int32),
    }
    linen, nnx_net = network.from_linen(LinenSmall()), network.from_nnx(NnxSmall)
    params = linen.init(jax.random.key(1), batch["x"])
    nnx_params = nnx_net.init(jax.random.key(1), batch["x"])
    assert jax.tree.structure(nnx_params) == jax.tree.structure(params)
    return linen, nnx_net, params, batch


def test_the_two_models_are_the_same_function(case):
    linen, nnx_net, params, batch = case
    np.testing.assert_allclose(
        nnx_net.apply(params, batch["x"]), linen.apply(params, batch["x"]), rtol=1e-6
    )


def test_every_registered_proxy_scores_linen_and_nnx_alike(case):
    linen, nnx_net, params, batch = case
    a, b = _all_scores(linen, params, batch), _all_scores(nnx_net, params, batch)
    assert set(a) == set(proxies.PROXIES)
    assert {n for n, v in a.items() if isinstance(v, str)} == NEEDS_INSTRUMENTED_SPACE
    for name in sorted(proxies.PROXIES):
        if name in NEEDS_INSTRUMENTED_SPACE:
            assert a[name] == "ConfigError" and b[name] == "ConfigError", (name, a[name], b[name])
        else:
            assert np.isfinite(a[name]), (name, a[name])
            np.testing.assert_allclose(b[name], a[name], rtol=1e-5, err_msg=name)


class OwnNames(nn.Module):
    """A linear model whose weight is a parameter named `w`, not `kernel`."""

    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        w = self.param("w", nn.initializers.lecun_normal(), (x.shape[1], CLASSES))
        network.sow_tap(self, "out", x @ w)
        return x @ w


@pytest.mark.parametrize("name", ["synflow", "snip", "ntk_cond", "zico", "grad_norm", "swap"])
def test_a_proxy_that_finds_no_weights_fails_loudly(case, name):
    """No leaf named `kernel`: an error naming the problem, never a score of 0 or -inf."""
    *_, batch = case
    net = network.from_linen(OwnNames())
    params = net.init(jax.random.key(0), batch["x"])
    with pytest.raises(errors.ConfigError, match="finds no weights"):
        proxies.get_proxy(name)(net, params, batch, jax.random.key(0))
