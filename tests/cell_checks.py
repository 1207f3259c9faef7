"""Shared checks for the DARTS-style cell spaces (DARTS / NB301 and NDS)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import losses, network, types
from jaxnas.proxies import kernels

from conftest import probe_scores

# A reduction cell on the stem, then a normal cell whose first input is preprocessed by a
# FactorizedReduce: both cell kinds and both preprocessings at the smallest compile.
TINY_CELLS = dict(channels=4, num_cells=2, reductions=(0,))


def count_params(tree) -> int:
    return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(tree))


@functools.cache
def data_driven(space, batch_size=4, size=8, seed=0):
    """Compiled once per space: `init(genotype, key) -> (params, mask, count)` and
    `apply(params, genotype) -> (logits, taps, naswot)` on a fixed batch `x`.

    NASWOT is computed from the returned taps, as `proxies.naswot` computes it, rather
    than by calling the proxy: a second trace of the network would double the compile.
    """
    x = jax.random.normal(jax.random.key(seed), (batch_size, size, size, 3))

    @jax.jit
    def init(genotype, key):
        net = space.network(genotype)
        params = net.init(key, x)
        mask = net.param_mask(params)
        count = sum(
            jnp.sum(jnp.broadcast_to(m, p.shape))
            for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask))
        )
        return params, mask, count

    @jax.jit
    def apply(params, genotype):
        net = space.network(genotype)
        logits, taps = net.apply(params, x, taps=True)
        return logits, taps, kernels.logdet(kernels.hamming_kernel(taps))

    return x, init, apply


def _materialised_network(space, genotype, params, x):
    """The materialised model, its `Network`, its variables taken from the supernet
    `params` (zero running statistics) and its variable shapes."""
    model = space.materialize(genotype)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    fixed = model.params_from_supernet(params["params"])
    assert jax.tree.structure(fixed) == jax.tree.structure(shapes["params"])
    for leaf, shape in zip(jax.tree.leaves(fixed), jax.tree.leaves(shapes["params"])):
        assert leaf.shape == shape.shape
    stats = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes["batch_stats"])
    net = network.from_linen(model, train=True)
    return model, net, {"params": fixed, "batch_stats": stats}, shapes


def materialised(space, genotype, params, x):
    """Logits, taps, NASWOT and parameter count of the materialised network.

    Jitted per genotype: on CPU that is about 2.5x faster than running the tiny
    materialised network op by op.
    """
    _, net, variables, shapes = _materialised_network(space, genotype, params, x)
    logits, taps = jax.jit(functools.partial(net.apply, taps=True))(variables, x)
    score = kernels.logdet(kernels.hamming_kernel(taps))
    return logits, taps, score, count_params(shapes["params"])


def active(taps) -> dict[str, types.Tap]:
    """Taps with any positive weight, restricted to their positive-weight channels."""
    out = {}
    for name, tap in taps.items():
        weight = np.broadcast_to(np.asarray(tap.weight), tap.value.shape[1:])
        if not (weight > 0).any():
            continue
        if weight.ndim and not (weight == weight.reshape(-1)[0]).all():
            keep = weight[0, 0] > 0  # per-channel weights (masked concatenations)
            out[name] = types.Tap(np.asarray(tap.value)[..., keep], weight[0, 0][keep])
        else:
            out[name] = types.Tap(np.asarray(tap.value), weight.reshape(-1)[0])
    return out


def assert_same_network(space, genotype, seed=0):
    """The data-driven network equals the materialised one: logits, taps, NASWOT, count."""
    x, init, apply = data_driven(space)
    genotype = jnp.asarray(genotype)
    params, _, count = init(genotype, jax.random.key(seed))
    logits, taps, score = apply(params, genotype)
    genotype = np.asarray(genotype)
    fixed_logits, fixed_taps, fixed_score, fixed_count = materialised(space, genotype, params, x)
    arch = space.to_string(genotype)
    np.testing.assert_allclose(fixed_logits, logits, rtol=1e-5, atol=1e-5, err_msg=arch)
    dd, fx = active(taps), active(fixed_taps)
    assert set(dd) == set(fx), (arch, set(dd) ^ set(fx))
    for name, tap in dd.items():
        np.testing.assert_allclose(fx[name].value, tap.value, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(
            np.broadcast_to(fx[name].weight, tap.weight.shape), tap.weight
        )
    np.testing.assert_allclose(fixed_score, score, rtol=1e-6, err_msg=arch)
    assert int(count) == fixed_count, arch


def assert_same_gradients(space, genotype, seed=0):
    """Loss gradients through the data-driven network (each edge a `lax.switch`, the
    taken branch recomputed in the backward pass) equal the materialised network's."""
    x, init, _ = data_driven(space)
    y = jnp.arange(x.shape[0]) % 10
    genotype = jnp.asarray(genotype)
    params, _, _ = init(genotype, jax.random.key(seed))

    def loss(net, variables):
        return losses.cross_entropy(net.apply(variables, x), y)

    grads = jax.jit(jax.grad(lambda p: loss(space.network(genotype), p)))(params)
    model, net, variables, _ = _materialised_network(space, np.asarray(genotype), params, x)
    stats = variables["batch_stats"]
    fixed = jax.jit(jax.grad(lambda p: loss(net, {"params": p, "batch_stats": stats})))(
        variables["params"]
    )
    expected = model.params_from_supernet(grads["params"])
    for (path, got), want in zip(
        jax.tree_util.tree_leaves_with_path(expected), jax.tree.leaves(fixed)
    ):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=str(path))
    assert any(np.abs(g).max() > 0 for g in jax.tree.leaves(fixed))


def assert_same_probe_proxies(space, genotype, seed=0):
    """fisher, flops and the Zen-score of the data-driven network (ops recording inside
    `lax.switch` branches, unselected ops with weight 0) equal the materialised one's."""
    x, init, _ = data_driven(space)
    batch = {"x": x, "y": jnp.arange(x.shape[0]) % 10}
    x_mixed = x + 0.01 * jax.random.normal(jax.random.key(seed + 1), x.shape)
    genotype = jnp.asarray(genotype)
    params, _, _ = init(genotype, jax.random.key(seed))

    scores = probe_scores(batch, x_mixed)
    ours = jax.jit(lambda p: scores(space.network(genotype), p))(params)
    _, net, variables, _ = _materialised_network(space, np.asarray(genotype), params, x)
    fixed = jax.jit(lambda v: scores(net, v))(variables)
    arch = space.to_string(np.asarray(genotype))
    for name, got, want in zip(("fisher", "flops", "zen"), ours, fixed):
        assert np.isfinite(want) and (name == "zen" or want > 0), (name, arch)
        np.testing.assert_allclose(got, want, rtol=1e-4, err_msg=f"{name}: {arch}")
