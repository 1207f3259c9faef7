"""Scanned repeated cells: per-cell layout outside, program size independent of depth."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.spaces import nb101, nb201, stacking


def test_stack_and_unstack_are_inverse_and_keep_the_per_cell_names():
    stacks = stacking.Stacks({"s_cells": ["s_cell0", "s_cell1", "s_cell2"]})
    per_cell = {
        "params": {
            "head": {"kernel": jnp.ones((2,))},
            **{f"s_cell{i}": {"conv": {"kernel": jnp.full((3, 4), i)}} for i in range(3)},
        }
    }
    stacked = stacks.stack(per_cell)
    assert set(stacked["params"]) == {"head", "s_cells"}
    assert stacked["params"]["s_cells"]["conv"]["kernel"].shape == (3, 3, 4)
    back = stacks.unstack(stacked)
    assert list(back["params"]) == sorted(per_cell["params"])
    jax.tree.map(np.testing.assert_array_equal, back, per_cell)
    shapes = stacks.unstack(jax.eval_shape(lambda: stacked))
    assert shapes["params"]["s_cell2"]["conv"]["kernel"].shape == (3, 4)


def test_a_collection_with_some_cells_of_a_stack_missing_is_an_error():
    stacks = stacking.Stacks({"s_cells": ["s_cell0", "s_cell1"]})
    with pytest.raises(ValueError, match="s_cell1"):
        stacks.stack({"gates": {"s_cell0": {"out": jnp.zeros(2)}}})


def _traced_convs(network, x):
    """Convolutions in the traced program (a scan body's are written once)."""
    params = jax.eval_shape(network.init, jax.random.key(0), x)
    jaxpr = jax.make_jaxpr(lambda p: network.apply(p, x, taps=True, probes=True))(params)
    return str(jaxpr).count("conv_general_dilated")


@pytest.mark.parametrize(
    "space, kwargs, genotype",
    [
        (nb201.space, "cells_per_stage", np.array([1, 2, 3, 4, 0, 3])),
        (
            nb101.space,
            "cells_per_stack",
            np.concatenate([np.ones(21, np.int32), np.zeros(5, np.int32)]),
        ),
    ],
)
def test_the_traced_program_does_not_grow_with_the_cells_per_stage(space, kwargs, genotype):
    small = {"channels": 4} if space is nb201.space else {"stem_channels": 4}
    x = jnp.ones((2, 8, 8, 3))
    convs = [
        _traced_convs(space(**small, **{kwargs: n}, scan_cells=True).network(genotype), x)
        for n in (2, 4)
    ]
    assert convs[0] == convs[1] > 0, convs


@pytest.mark.parametrize(
    "space, kwargs, genotype",
    [
        (nb201.space, dict(channels=4, cells_per_stage=2), np.array([3, 2, 4, 1, 3, 0])),
        (
            nb201.space,
            dict(channels=4, cells_per_stage=2, dispatch="mask"),
            np.array([3, 2, 4, 1, 3, 0]),
        ),
        (
            nb101.space,
            dict(stem_channels=4, num_stacks=2, cells_per_stack=2),
            np.concatenate([np.ones(21, np.int32), np.array([0, 1, 2, 0, 1], np.int32)]),
        ),
    ],
)
def test_scanned_cells_give_the_unrolled_network(space, kwargs, genotype):
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    nets = [space(**kwargs, scan_cells=scan).network(jnp.asarray(genotype)) for scan in (0, 1)]
    params = [net.init(jax.random.key(1), x) for net in nets]
    jax.tree.map(np.testing.assert_array_equal, params[1], params[0])
    unrolled, scanned = (
        jax.jit(lambda p, net=net: net.apply(p, x, taps=True, probes=True))(params[0])
        for net in nets
    )
    np.testing.assert_allclose(scanned[0], unrolled[0], rtol=1e-5, atol=1e-5)
    # Taps in forward order, as sown (L-SWAG bins them by position); outputs of `jit`
    # come back with sorted keys, so the order is read while tracing; so do `nn.scan`'s,
    # which put an NB101 cell's proj_* before its vertex_* until `Stacks` reorders them.
    orders = ([], [])
    for net, names in zip(nets, orders):
        jax.eval_shape(lambda p, n=net, o=names: o.extend(n.apply(p, x, taps=True)[1]), params[0])
    modules = [list(dict.fromkeys(name.split("/")[0] for name in o)) for o in orders]
    assert modules[0] == modules[1] and modules[0] != sorted(modules[0])
    assert orders[0] == orders[1]
    for name, tap in unrolled[1].items():
        np.testing.assert_allclose(scanned[1][name].value, tap.value, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(scanned[1][name].weight, tap.weight)
    for kind in ("layers", "norms", "costs"):
        a, b = getattr(unrolled[2], kind), getattr(scanned[2], kind)
        assert sorted(a) == sorted(b), kind
        jax.tree.map(lambda u, v: np.testing.assert_allclose(v, u, rtol=1e-5, atol=1e-5), a, b)


def test_block_proxies_refuse_scanned_cells_and_score_them_unrolled():
    from jaxnas import data, errors, proxies

    space = nb201.space(channels=4, cells_per_stage=2)
    population = np.asarray(space.sample(jax.random.key(0), 2))
    batch = data.synthetic_batch(jax.random.key(1), 4, (8, 8, 3))
    scanned = space.network(jnp.asarray(population[0]))
    params = scanned.init(jax.random.key(0), batch["x"])
    proxy = proxies.get_proxy("meco")
    with pytest.raises(errors.ConfigError, match="scan_cells=False"):
        proxy(scanned, params, batch, None)
    # score_population applies the record's override: the same scores as unrolled by hand.
    unrolled = space.network(jnp.asarray(population[0]), scan_cells=False)
    keys = jax.random.split(jax.random.key(2), 1)
    expected = proxies.score_inits(proxy, unrolled, batch, keys)
    scores = proxies.score_population(proxy, space, population[:1], batch, keys)
    np.testing.assert_allclose(scores[0], expected, rtol=1e-6)
    assert np.all(np.isfinite(expected))
