"""Probes: layer outputs, BatchNorm statistics, features and FLOPs recorded by the shared ops."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxnas import losses, network
from jaxnas.spaces import nb201

CELLS = ([3, 2, 4, 1, 3, 0], [1, 4, 0, 2, 0, 1])  # every op kind; pooling, skips, dead ends
SMALL = dict(channels=3, cells_per_stage=1, num_stages=2)  # fast compiles, every module kind


def _gate_loss(apply, variables, gates, x, y):
    """Cross-entropy with zero `gates` (flat names) passed, and the probes."""
    with_gates = {**variables, "gates": traverse_util.unflatten_dict(gates, sep="/")}
    logits, probes = apply(with_gates, x)
    return losses.cross_entropy(logits, y), probes


def _zeros(layers):
    return {name: jnp.zeros_like(p.gate) for name, p in layers.items()}


@functools.partial(jax.jit, static_argnums=0)
def _data_driven(space, genotype, x, y, key):
    """Params, logits, probes and dL/d(gate) of every layer of the data-driven network."""
    net = space.network(genotype)
    params = net.init(key, x)

    def apply(variables, inputs):
        return net.apply(variables, inputs, probes=True)

    logits, probes = apply(params, x)
    grads = jax.grad(lambda g: _gate_loss(apply, params, g, x, y), has_aux=True)
    return params, logits, probes, grads(_zeros(probes.layers))[0]


@functools.partial(jax.jit, static_argnums=0)
def _materialised(model, params, x, y):
    """Probes and dL/d(gate) of every layer of the materialised network."""
    variables = model.init(jax.random.key(99), x)
    flat = traverse_util.flatten_dict(params["params"])
    fixed = traverse_util.unflatten_dict(
        {path: flat[path] for path in traverse_util.flatten_dict(variables["params"])}
    )
    variables = {"params": fixed, "batch_stats": variables["batch_stats"]}

    def apply(variables, inputs):
        logits, state = model.apply(
            variables, inputs, train=True, mutable=["batch_stats", *network.PROBE_COLLECTIONS]
        )
        return logits, network.collect_probes(state)

    probes = apply(variables, x)[1]
    grads = jax.grad(lambda g: _gate_loss(apply, variables, g, x, y), has_aux=True)
    return probes, grads(_zeros(probes.layers))[0]


def _total(costs):
    return float(sum(np.asarray(v) for v in costs.values()))


def test_data_driven_and_materialised_networks_record_the_same_probes(tiny_batch, key):
    space = nb201.space(**SMALL)
    x, y = tiny_batch["x"][:4], tiny_batch["y"][:4]
    for genotype in CELLS:
        params, _, probes, grads = _data_driven(space, jnp.asarray(genotype), x, y, key)
        fixed, fixed_grads = _materialised(space.materialize(genotype), params, x, y)
        active = {n: p for n, p in probes.layers.items() if float(p.weight) > 0}
        assert set(active) == set(fixed.layers), genotype
        for name, probe in active.items():
            chex.assert_shape(probe.gate, fixed.layers[name].gate.shape)
            assert float(fixed.layers[name].fan_in) == float(probe.fan_in)
            np.testing.assert_allclose(fixed_grads[name], grads[name], rtol=1e-4, atol=1e-7)
        for name, probe in probes.layers.items():
            if float(probe.weight) == 0:
                np.testing.assert_array_equal(grads[name], 0.0)  # unselected: no gradient
        norms = {n: p for n, p in probes.norms.items() if float(p.weight) > 0}
        assert set(norms) == set(fixed.norms)
        for name, probe in norms.items():
            np.testing.assert_allclose(fixed.norms[name].variance, probe.variance, rtol=1e-5)
            assert float(fixed.norms[name].count) == float(probe.count)
        np.testing.assert_allclose(fixed.features["pre_gap"], probes.features["pre_gap"], atol=1e-5)
        assert _total(fixed.costs) == _total(probes.costs)


def test_mask_dispatch_records_what_switch_dispatch_records(tiny_batch, key):
    x, y = tiny_batch["x"], tiny_batch["y"]
    switch = nb201.space(**SMALL)
    mask = nb201.space(**SMALL, dispatch="mask")
    for genotype in CELLS:
        g = jnp.asarray(genotype)
        _, _, a, grads_a = _data_driven(switch, g, x, y, key)
        _, _, b, grads_b = _data_driven(mask, g, x, y, key)
        assert set(a.layers) == set(b.layers)
        for name in a.layers:
            assert float(a.layers[name].weight) == float(b.layers[name].weight)
            np.testing.assert_allclose(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-7)
        assert _total(a.costs) == _total(b.costs)


def test_a_gate_gives_the_summed_product_of_a_layer_output_and_its_gradient(tiny_batch):
    x, y = tiny_batch["x"], tiny_batch["y"]
    net = nb201.space(channels=2, cells_per_stage=1, num_stages=1).network(jnp.asarray(CELLS[0]))
    params = net.init(jax.random.key(3), x)
    assert set(params) == {"params"}  # init never returns probes

    def apply(variables, inputs):
        return net.apply(variables, inputs, probes=True)

    @jax.jit
    def check():
        layers = apply(params, x)[1].layers
        (_, probes), grads = jax.value_and_grad(
            lambda g: _gate_loss(apply, params, g, x, y), has_aux=True
        )(_zeros(layers))
        return grads, net.apply(params, x), net.apply(params, x, taps=True, probes=True)

    grads, logits, (_, taps, probes) = check()
    # At the classifier (no spatial axes) dL/d(gate) = logits * dL/d(logits), and
    # d(mean cross-entropy)/d(logits) = (softmax - onehot) / B.
    expected = logits * (jax.nn.softmax(logits) - jax.nn.one_hot(y, 10)) / x.shape[0]
    np.testing.assert_allclose(grads["classifier/out"], expected, atol=1e-6)
    chex.assert_shape(probes.layers["classifier/out"].gate, (x.shape[0], 10))
    assert taps and probes.layers and probes.norms and probes.costs and probes.features
