"""Probes: layer outputs, BatchNorm statistics, features and FLOPs recorded by the shared ops."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxnas import network
from jaxnas.proxies import layerwise
from jaxnas.spaces import nb201

CELLS = ([3, 2, 4, 1, 3, 0], [1, 4, 0, 2, 0, 1])  # every op kind; pooling, skips, dead ends
SMALL = dict(channels=3, cells_per_stage=1, num_stages=2)  # fast compiles, every module kind


@functools.partial(jax.jit, static_argnums=0)
def _data_driven(space, genotype, x, key):
    net = space.network(genotype)
    params = net.init(key, x)
    return params, *net.apply(params, x, probes=True)


@functools.partial(jax.jit, static_argnums=0)
def _materialised(model, params, x):
    variables = model.init(jax.random.key(99), x)
    flat = traverse_util.flatten_dict(params["params"])
    fixed = traverse_util.unflatten_dict(
        {path: flat[path] for path in traverse_util.flatten_dict(variables["params"])}
    )
    _, state = model.apply(
        {"params": fixed, "batch_stats": variables["batch_stats"]},
        x,
        train=True,
        mutable=["batch_stats", *network.PROBE_COLLECTIONS],
    )
    return network.collect_probes(state)


def _total(costs):
    return float(sum(np.asarray(v) for v in costs.values()))


def test_data_driven_and_materialised_networks_record_the_same_probes(key):
    space = nb201.space(**SMALL)
    x = jax.random.normal(key, (4, 8, 8, 3))
    for genotype in CELLS:
        params, _, probes = _data_driven(space, jnp.asarray(genotype), x, key)
        fixed = _materialised(space.materialize(genotype), params, x)
        active = {n: p for n, p in probes.layers.items() if float(p.weight) > 0}
        assert set(active) == set(fixed.layers), genotype
        for name, probe in active.items():
            np.testing.assert_allclose(fixed.layers[name].value, probe.value, atol=1e-5)
            assert float(fixed.layers[name].fan_in) == float(probe.fan_in)
        for name, probe in probes.layers.items():
            if float(probe.weight) == 0:
                np.testing.assert_array_equal(probe.value, 0.0)  # unselected: zeros
        norms = {n: p for n, p in probes.norms.items() if float(p.weight) > 0}
        assert set(norms) == set(fixed.norms)
        for name, probe in norms.items():
            np.testing.assert_allclose(fixed.norms[name].variance, probe.variance, rtol=1e-5)
            assert float(fixed.norms[name].count) == float(probe.count)
        np.testing.assert_allclose(fixed.features["pre_gap"], probes.features["pre_gap"], atol=1e-5)
        assert _total(fixed.costs) == _total(probes.costs)


def test_mask_dispatch_records_what_switch_dispatch_records(tiny_batch, key):
    x = tiny_batch["x"]
    switch = nb201.space(**SMALL)
    mask = nb201.space(**SMALL, dispatch="mask")
    for genotype in CELLS:
        g = jnp.asarray(genotype)
        _, _, a = _data_driven(switch, g, x, key)
        _, _, b = _data_driven(mask, g, x, key)
        assert set(a.layers) == set(b.layers)
        for name in a.layers:
            assert float(a.layers[name].weight) == float(b.layers[name].weight)
            np.testing.assert_allclose(
                a.layers[name].value * a.layers[name].weight,
                b.layers[name].value * b.layers[name].weight,
                atol=1e-5,
            )
        assert _total(a.costs) == _total(b.costs)


def test_perturbations_give_the_gradient_of_the_loss_at_a_layer_output(tiny_batch):
    x, y = tiny_batch["x"], tiny_batch["y"]
    net = nb201.space(channels=2, cells_per_stage=1, num_stages=1).network(jnp.asarray(CELLS[0]))
    params = net.init(jax.random.key(3), x)
    assert set(params) == {"params"}  # init never returns probes
    shapes = jax.eval_shape(lambda p: net.apply(p, x, probes=True)[1].layers, params)
    zeros = {n: jnp.zeros(s.value.shape) for n, s in shapes.items()}

    @jax.jit
    def check(eps):
        def loss(eps):
            variables = {**params, "perturbations": traverse_util.unflatten_dict(eps, sep="/")}
            logits = net.apply(variables, x)
            return layerwise.cross_entropy(logits, y), logits

        grads, logits = jax.grad(loss, has_aux=True)(eps)
        return grads, logits, net.apply(params, x), net.apply(params, x, taps=True, probes=True)

    grads, logits, plain, (_, taps, probes) = check(zeros)
    # d(mean cross-entropy)/d(logits) = (softmax - onehot) / B, at the classifier output.
    expected = (jax.nn.softmax(logits) - jax.nn.one_hot(y, 10)) / x.shape[0]
    np.testing.assert_allclose(grads["classifier/out"], expected, atol=1e-6)
    np.testing.assert_allclose(plain, logits, atol=1e-6)  # zero perturbations change nothing
    assert taps and probes.layers and probes.norms and probes.costs and probes.features
