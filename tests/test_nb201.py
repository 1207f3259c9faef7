"""NAS-Bench-201 space: notation, enumeration, data-driven vs materialised networks."""

import csv
import functools
import gzip
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxnas import errors
from jaxnas.spaces import nb201

from conftest import TINY

BEST_KNOWN = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|"
)


def test_string_round_trip_over_the_whole_space():
    space = nb201.space()
    cells = space.enumerate()
    chex.assert_shape(cells, (15625, 6))
    strings = [space.to_string(g) for g in cells]
    assert len(set(strings)) == 15625
    back = np.stack([space.from_string(s) for s in strings])
    np.testing.assert_array_equal(back, cells)


def test_best_known_cell_parses_to_expected_genotype():
    np.testing.assert_array_equal(nb201.from_string(BEST_KNOWN), [3, 3, 3, 1, 3, 3])


@pytest.mark.parametrize(
    "arch, message",
    [
        ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv_5x5'"),
        ("|none~0|+|none~0|none~1|", "expected 3 node groups"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 inputs"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must come from node 0"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "must look like"),
        ("|none-0|+|none~0|none~1|+|none~0|none~1|none~2|", "is not 'op~k'"),
    ],
)
def test_malformed_strings_raise_a_message_naming_the_problem(arch, message):
    with pytest.raises(errors.ArchitectureError, match=message):
        nb201.from_string(arch)


def test_naslib_tuples_match_the_suite_zero_table(shared_data):
    path = os.path.join(shared_data, "nasbench201", "nb201_zc_suitezero_cifar10_9445.csv.gz")
    with gzip.open(path, "rt") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        genotype = nb201.from_naslib(row["naslib_ops"])
        assert nb201.to_string(genotype) == row["arch_str"]
        assert nb201.to_naslib(genotype) == tuple(
            int(v) for v in row["naslib_ops"][1:-1].split(",")
        )


def test_sample_and_mutate_stay_in_range_and_mutate_changes_one_position(key):
    space = nb201.space()
    population = space.sample(key, 64)
    chex.assert_shape(population, (64, 6))
    assert population.dtype == jnp.int32
    assert int(population.min()) >= 0 and int(population.max()) < 5
    keys = jax.random.split(key, 64)
    children = jax.vmap(space.mutate)(keys, population)
    assert np.all(np.sum(np.asarray(children) != np.asarray(population), axis=1) == 1)
    space.validate(np.asarray(children))


def _restrict(params, template):
    """The supernet's params restricted to the leaves of a materialised net."""
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict(
        {path: flat[path] for path in traverse_util.flatten_dict(template)}
    )


@functools.partial(jax.jit, static_argnums=0)
def _data_driven(space, genotype, x, key):
    net = space.network(genotype)
    params = net.init(key, x)
    return params, *net.apply(params, x, taps=True)


@functools.partial(jax.jit, static_argnums=0)
def _materialised(model, params, x):
    variables = model.init(jax.random.key(99), x)
    fixed = {
        "params": _restrict(params["params"], variables["params"]),
        "batch_stats": variables["batch_stats"],
    }
    return model.apply(fixed, x, train=True, mutable=["batch_stats", "taps"])


def _assert_same_network(space, genotype, x, key):
    params, logits, taps = _data_driven(space, jnp.asarray(genotype), x, key)
    fixed_logits, state = _materialised(space.materialize(genotype), params, x)
    np.testing.assert_allclose(fixed_logits, logits, rtol=1e-5, atol=1e-5)
    fixed_taps = {
        "/".join(path): tap
        for path, tap in traverse_util.flatten_dict(
            state["taps"], is_leaf=lambda _, v: not isinstance(v, dict)
        ).items()
    }
    active = {name: tap for name, tap in taps.items() if float(tap.weight) > 0}
    assert set(active) == set(fixed_taps)
    for name, tap in active.items():
        np.testing.assert_allclose(fixed_taps[name].value, tap.value, rtol=1e-5, atol=1e-5)
        assert float(fixed_taps[name].weight) == float(tap.weight)


@pytest.mark.slow
def test_data_driven_network_equals_materialised_network_on_random_cells(tiny_space, key):
    x = jax.random.normal(key, (4, 8, 8, 3))
    cells = np.array(tiny_space.sample(jax.random.key(7), 20))
    cells[0] = [3, 2, 4, 1, 3, 0]  # every op kind at least once
    for i, genotype in enumerate(cells):
        _assert_same_network(tiny_space, genotype, x, jax.random.key(i))


@pytest.mark.slow
def test_full_size_network_equals_materialised_network():
    space = nb201.space()
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    _assert_same_network(space, nb201.from_string(BEST_KNOWN), x, jax.random.key(3))


def test_mask_dispatch_equals_switch_dispatch(tiny_batch, key):
    switch = nb201.space(**TINY)
    mask = nb201.space(**TINY, dispatch="mask")
    x = tiny_batch["x"]

    @jax.jit
    def both(g):
        params = switch.network(g).init(key, x)
        return switch.network(g).apply(params, x, taps=True), mask.network(g).apply(
            params, x, taps=True
        )

    for genotype in np.asarray(switch.sample(key, 5)):
        (out_switch, taps_switch), (out_mask, taps_mask) = both(jnp.asarray(genotype))
        np.testing.assert_allclose(out_mask, out_switch, atol=1e-5)
        for name in taps_switch:
            assert float(taps_mask[name].weight) == float(taps_switch[name].weight)


def test_parameters_do_not_depend_on_the_genotype(tiny_space, tiny_batch, key):
    a = tiny_space.network(jnp.zeros(6, jnp.int32)).init(key, tiny_batch["x"])
    b = tiny_space.network(jnp.full(6, 3, jnp.int32)).init(key, tiny_batch["x"])
    chex.assert_trees_all_equal(a, b)


def test_torch_init_matches_the_linen_declarations(tiny_space, tiny_batch, key):
    net = tiny_space.network(jnp.zeros(6, jnp.int32))
    fast = traverse_util.flatten_dict(net.init(key, tiny_batch["x"])["params"], sep="/")
    model = nb201.NB201Network(
        **TINY,
        num_classes=10,
        stem=True,
        num_stages=3,
        in_channels=3,
        track_running_stats=False,
        batch_norm=True,
    )
    linen = traverse_util.flatten_dict(
        model.init(key, tiny_batch["x"], jnp.zeros(6, jnp.int32))["params"], sep="/"
    )
    assert fast.keys() == linen.keys()
    for name, value in fast.items():
        assert value.shape == linen[name].shape, name
        kernel = name.rsplit("/", 1)[0] + "/kernel"
        if name.endswith("/scale"):
            np.testing.assert_array_equal(value, 1.0)
        elif name.endswith("/bias") and kernel not in fast:
            np.testing.assert_array_equal(value, 0.0)
        else:
            fan_in = np.prod(fast[kernel].shape[:-1])
            bound = 1.0 / np.sqrt(fan_in)
            for v in (value, linen[name]):
                assert np.abs(v).max() <= bound and np.abs(v).max() > 0.5 * bound, name


def _count(tree):
    return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(tree))


def test_param_mask_counts_exactly_the_materialised_parameters(tiny_space, tiny_batch, key):
    x = tiny_batch["x"]
    for genotype in np.asarray(tiny_space.sample(jax.random.key(11), 6)):
        net = tiny_space.network(jnp.asarray(genotype))
        params = net.init(key, x)
        mask = net.param_mask(params)
        counted = sum(
            float(jnp.sum(jnp.broadcast_to(m, p.shape)))
            for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask))
        )
        model = tiny_space.materialize(genotype)
        expected = _count(jax.eval_shape(model.init, key, x)["params"])
        assert counted == expected, tiny_space.to_string(genotype)


def test_batch_norm_override_makes_every_bn_the_identity(tiny_batch, key):
    x = tiny_batch["x"]
    genotype = jnp.asarray([3, 2, 4, 1, 3, 0])
    plain = nb201.space(**TINY, batch_norm=False)
    net = plain.network(genotype)
    params = net.init(key, x)
    scaled = jax.tree_util.tree_map_with_path(
        lambda path, v: v * 3.0 + 1.0 if "bn" in str(path) or "lastact" in str(path) else v,
        params,
    )
    np.testing.assert_allclose(jax.jit(net.apply)(scaled, x), jax.jit(net.apply)(params, x))
    with_bn = nb201.space(**TINY).network(genotype)
    assert not np.allclose(jax.jit(with_bn.apply)(params, x), jax.jit(net.apply)(params, x))
