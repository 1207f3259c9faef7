"""The `SearchSpace` contract, checked on every registered space at tiny settings.

What `spaces.base.build` gives every space (genotype and image checks, override
validation, the enumerate guard, restriction of the data-driven network's parameters
to one architecture) and what every space must honour (samples validate and round-trip
through its notation; the data-driven network of a genotype computes what its
materialised network computes). Space-specific behaviour stays in each space's file.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cell_checks import TINY_CELLS

from jaxnas import errors, network
from jaxnas.spaces import SPACES, base, nds

from conftest import TINY_VIT

# Per registered space: factory settings small enough to compile in seconds, and the
# side of the square images its networks take.
TINY = {
    "nb201": (dict(channels=4, cells_per_stage=1), 8),
    "nb101": (dict(stem_channels=8, num_stacks=2, cells_per_stack=1), 8),
    "nats_sss": ({}, 8),
    "nds_resnet": (
        dict(
            design=nds.DesignSpace("tiny_resnet", "res_basic_block", (1, 2), (4, 8)), stem_width=4
        ),
        8,
    ),
    "nds_resnext_a": (
        dict(
            design=nds.DesignSpace(
                "tiny_resnext", "res_bottleneck_block", (1, 2), (4, 8), (0.5, 1.0), (1, 2)
            ),
            stem_width=4,
        ),
        8,
    ),
    "nds_resnext_b": (
        dict(
            design=nds.DesignSpace(
                "tiny_resnext_b", "res_bottleneck_block", (1, 2), (8, 16), (0.25, 0.5), (1, 2)
            ),
            stem_width=4,
        ),
        8,
    ),
    "autoformer": (
        dict(vit=TINY_VIT, patch_size=4, num_classes=10, max_relative_position=2),
        8,
    ),
    "darts": (TINY_CELLS, 8),
    "nds_nasnet": (TINY_CELLS, 8),
    "nds_amoeba": (TINY_CELLS, 8),
    "nds_pnas": (TINY_CELLS, 8),
    "nds_enas": (TINY_CELLS, 8),
    "nds_darts": (TINY_CELLS, 8),
}

# Data-driven vs materialised networks compile both programs: the cell spaces whose op
# sets are largest take longest.
HEAVY = {"nds_nasnet", "nds_amoeba", "nds_pnas", "nds_enas"}


def test_every_registered_space_has_tiny_settings():
    assert set(TINY) == set(SPACES)


def tiny_space(name):
    kwargs, _ = TINY[name]
    return SPACES[name](**kwargs)


def images(name, batch=2, seed=0):
    side = TINY[name][1]
    return jax.random.normal(jax.random.key(seed), (batch, side, side, 3), jnp.float32)


@pytest.fixture(params=sorted(SPACES))
def name(request):
    return request.param


def test_samples_validate_round_trip_and_mutate(name):
    space = tiny_space(name)
    population = space.sample(jax.random.key(0), 8)
    assert population.shape == (8, len(space.num_choices)) and population.dtype == jnp.int32
    population = space.validate(population)
    for genotype in population:
        np.testing.assert_array_equal(space.from_string(space.to_string(genotype)), genotype)
    children = jax.vmap(space.mutate)(jax.random.split(jax.random.key(1), 8), population)
    children = space.validate(np.asarray(children))
    assert (children != population).any(axis=1).all()


def test_malformed_genotypes_raise_errors_naming_the_problem(name):
    space = tiny_space(name)
    length = len(space.num_choices)
    genotype = np.asarray(space.sample(jax.random.key(0), 1)[0])
    with pytest.raises(errors.ArchitectureError, match="out of range"):
        space.validate(genotype + np.asarray(space.num_choices))
    with pytest.raises(errors.ArchitectureError, match=f"{length} integer entries"):
        space.validate(genotype[:-1])
    with pytest.raises(errors.ArchitectureError, match="must be integers"):
        space.validate(genotype.astype(np.float32))
    with pytest.raises(errors.ArchitectureError, match=rf"genotype is int32\[{length}\]"):
        space.network(jnp.asarray(genotype[:-1]))
    with pytest.raises(errors.ArchitectureError, match="materialize takes one genotype"):
        space.materialize(np.stack([genotype, genotype]))


def test_wrong_images_raise_errors_naming_the_problem(name):
    space = tiny_space(name)
    net = space.network(jnp.asarray(space.sample(jax.random.key(0), 1)[0]))
    x = images(name)
    key = jax.random.key(0)
    with pytest.raises(errors.ShapeError, match=r"channels first\?"):
        net.init(key, jnp.moveaxis(x, -1, 1))
    with pytest.raises(errors.ShapeError, match="floating-point"):
        net.init(key, x.astype(jnp.int32))
    odd = jnp.zeros((2, x.shape[1] + 1, x.shape[2] + 1, 3))
    if name.startswith("nb") or name in ("nats_sss", "autoformer"):
        with pytest.raises(errors.ShapeError, match="divisible by"):
            net.init(key, odd)


def test_unknown_overrides_raise_config_errors_naming_them(name):
    space = tiny_space(name)
    genotype = space.sample(jax.random.key(0), 1)[0]
    with pytest.raises(errors.ConfigError, match=f"unknown {space.name} network setting 'cels'"):
        space.network(genotype, cels=3)
    with pytest.raises(errors.ConfigError, match="network setting 'cels'"):
        space.materialize(np.asarray(genotype), cels=3)
    # What every space accepts: the BN-free network synflow scores.
    space.network(genotype, batch_norm=False)


def test_sizes_and_counts_below_one_raise_config_errors_naming_them(name):
    space = tiny_space(name)
    genotype = space.sample(jax.random.key(0), 1)[0]
    counts = sorted(base.COUNT_SETTINGS & set(space.settings))
    assert "num_classes" in counts
    for key in counts:
        for bad in (0, -2, 1.5, True):
            with pytest.raises(errors.ConfigError, match=f"setting '{key}' must be a positive"):
                space.network(genotype, **{key: bad})
    with pytest.raises(errors.ConfigError, match="'num_classes' must be a positive"):
        space.materialize(np.asarray(genotype), num_classes=0)


def test_enumerate_lists_small_spaces_and_refuses_large_ones(name):
    space = tiny_space(name)
    if space.size > base.MAX_ENUMERATE:
        with pytest.raises(errors.ConfigError, match="too many to enumerate"):
            space.enumerate()
        return
    cells = space.validate(space.enumerate())
    assert cells.shape == (space.size, len(space.num_choices))
    assert len({tuple(g) for g in cells.tolist()}) == space.size


def _count(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in sorted(SPACES)],
)
def test_materialized_network_is_the_data_driven_network_restricted(name):
    """Same logits from the data-driven network and from the materialised network on
    the restricted parameters, which are exactly the parameters `param_mask` selects."""
    space = tiny_space(name)
    x = images(name)
    genotype = space.sample(jax.random.key(3), 1)[0]
    net = space.network(genotype)
    params = net.init(jax.random.key(0), x)
    logits = jax.jit(net.apply)(params, x)

    model = space.materialize(np.asarray(genotype))
    restricted = space.restrict(params, genotype, x)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    assert jax.tree.structure(restricted["params"]) == jax.tree.structure(shapes["params"])
    for got, want in zip(jax.tree.leaves(restricted["params"]), jax.tree.leaves(shapes["params"])):
        assert got.shape == want.shape
    mask = net.param_mask(params)
    selected = sum(
        float(jnp.sum(jnp.broadcast_to(m, p.shape)))
        for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask))
    )
    assert _count(restricted) == selected < _count(params)

    stats = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes.get("batch_stats", {}))
    variables = {**restricted, **({"batch_stats": stats} if stats else {})}
    fixed = network.from_linen(model, train=True)
    np.testing.assert_allclose(jax.jit(fixed.apply)(variables, x), logits, rtol=1e-5, atol=1e-5)
