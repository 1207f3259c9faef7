"""DARTS / NAS-Bench-301 space: notation against the shared tables, parameter counts,
data-driven vs materialised networks, masks, compile bounds, bad input."""

import csv
import gzip
import os

import cell_checks
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cell_checks import TINY_CELLS
from flax import traverse_util

from jaxnas import errors, proxies
from jaxnas.spaces import darts

from conftest import assert_scoring_compiles_once, probe_scores

DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])"
)
# Every op; stride-2 and stride-1 edges in the reduction cell; repeated inputs.
EVERY_OP = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_5x5', 1), ('dil_conv_3x3', 2), "
    "('dil_conv_5x5', 2), ('max_pool_3x3', 3), ('avg_pool_3x3', 0), ('skip_connect', 4), "
    "('skip_connect', 1)], normal_concat=[2, 3, 4, 5], reduce=[('skip_connect', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('avg_pool_3x3', 0), ('sep_conv_5x5', 3), "
    "('dil_conv_5x5', 1), ('sep_conv_3x3', 4), ('dil_conv_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])"
)
NB301 = "nasbench301_darts"
SUBSET = "nb301_zc_suitezero_subset363_cifar10.csv.gz"
NWOT = "nb301_nwot_zen_suitezero_11221_noacc.csv.gz"
SWAP = "swap_darts_1000_cifar10.csv.gz"


def _rows(shared_data, name):
    with gzip.open(os.path.join(shared_data, NB301, name), "rt") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tiny():
    return darts.space(**TINY_CELLS)


@pytest.fixture(scope="module")
def one_cell():
    """A single reduction cell on the stem: compiles in a fraction of `tiny`'s time."""
    return darts.space(channels=4, num_cells=1)


# ------------------------------------------------------------------------ notation


@pytest.mark.parametrize("table", [SUBSET, NWOT])
def test_both_nb301_notations_parse_to_the_same_genotype_and_round_trip(shared_data, table):
    space = darts.space()
    rows = _rows(shared_data, table)
    assert len(rows) in (363, 11221)
    for row in rows:
        genotype = space.from_string(row["genotype"])
        np.testing.assert_array_equal(darts.from_naslib(row["naslib_compact"]), genotype)
        assert space.to_string(genotype) == row["genotype"]
        assert darts.to_naslib(genotype) == row["naslib_compact"]


def test_swap_genotypes_round_trip_with_the_none_op(shared_data):
    space = darts.space(cell_ops=darts.DARTS_OPS)
    rows = _rows(shared_data, SWAP)
    assert len(rows) == 1000
    uses_none = 0
    for row in rows:
        genotype = space.from_string(row["genotype"])
        assert space.to_string(genotype) == row["genotype"]
        np.testing.assert_array_equal(genotype[:16], genotype[16:])  # normal = reduce
        uses_none += int((genotype[1::2] == 0).any())
    assert uses_none > 0


def test_darts_v2_parses_with_range_concatenations():
    space = darts.space()
    g = space.from_string(DARTS_V2)
    ranged = DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)")
    np.testing.assert_array_equal(space.from_string(ranged), g)
    assert space.to_string(g) == DARTS_V2
    assert g.shape == (32,) and g.dtype == np.int32
    np.testing.assert_array_equal(g[:4], [0, 3, 1, 3])  # (input 0, sep_conv_3x3), (1, sep)


@pytest.mark.parametrize(
    "arch, message",
    [
        (DARTS_V2.replace("'dil_conv_3x3'", "'conv_9x9'"), "unknown op 'conv_9x9'"),
        (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), "invalid input 5"),
        (DARTS_V2.replace("('sep_conv_3x3', 0), ", "", 1), "needs 8 .op, input. pairs"),
        (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3]"), "does not match"),
        (DARTS_V2[:-1], "malformed"),
        ("Genotype(normal=[], reduce=[])", "malformed"),
        (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3',)"), "not \\('op', input\\)"),
        ("|nor_conv_3x3~0|+|none~0|none~1|", "malformed"),
    ],
)
def test_bad_genotype_strings_raise_one_line_messages(arch, message):
    with pytest.raises(errors.ArchitectureError, match=message) as info:
        darts.space().from_string(arch)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "compact, message",
    [
        ("[[(0,5),(1,3)],[(0,2)]]", "needs 8"),
        ("[[(0,9),(1,3),(0,4),(2,3),(0,6),(1,2),(1,0),(4,5)]," * 2 + "]", "malformed"),
        (
            "[[(0,9),(1,3),(0,4),(2,3),(0,6),(1,2),(1,0),(4,5)],"
            "[(0,2),(1,0),(0,3),(1,1),(0,0),(1,4),(0,0),(1,1)]]",
            "unknown op index 9",
        ),
        (
            "[[(0,5),(1,3),(0,4),(2,3),(0,6),(1,2),(1,0),(7,5)],"
            "[(0,2),(1,0),(0,3),(1,1),(0,0),(1,4),(0,0),(1,1)]]",
            "invalid input 7",
        ),
    ],
)
def test_bad_naslib_compact_strings_raise_one_line_messages(compact, message):
    with pytest.raises(errors.ArchitectureError, match=message) as info:
        darts.from_naslib(compact)
    assert "\n" not in str(info.value)


def test_bad_space_settings_raise_config_errors():
    with pytest.raises(errors.ConfigError, match="unknown: \\['conv_9x9'\\]"):
        darts.space(cell_ops=("sep_conv_3x3", "conv_9x9"))
    with pytest.raises(errors.ConfigError, match="unknown concat"):
        darts.space(concat="some")
    with pytest.raises(errors.ConfigError, match="network setting 'cell_ops'"):
        darts.space().network(jnp.zeros(32, jnp.int32), cell_ops=("none",))
    with pytest.raises(errors.ConfigError, match="reduction cells"):
        darts.space().network(jnp.zeros(32, jnp.int32), reductions=(9,))
    with pytest.raises(errors.ConfigError, match="imagenet stem needs even channels, got 5"):
        darts.space(channels=5, stem="imagenet")
    with pytest.raises(errors.ConfigError, match="unknown stem 'conv'"):
        darts.space(stem="conv")


def test_validate_sample_and_mutate_respect_the_input_ranges(key):
    space = darts.space()
    choices = np.asarray(space.num_choices)
    np.testing.assert_array_equal(choices[:8], [2, 7, 2, 7, 3, 7, 3, 7])
    population = np.asarray(space.sample(key, 256))
    chex.assert_shape(population, (256, 32))
    assert (population >= 0).all() and (population < choices).all()
    assert (population[:, 0] == 1).any() and (population[:, 12] == 4).any()
    children = np.asarray(jax.vmap(space.mutate)(jax.random.split(key, 256), population))
    assert (np.sum(children != population, axis=1) == 1).all()
    space.validate(children)
    bad = population[0].copy()
    bad[0] = 2  # node 2 reads inputs 0 or 1 only
    with pytest.raises(errors.ArchitectureError, match="out of range"):
        space.validate(bad)


# ---------------------------------------------------------------- parameter counts


def test_parameter_counts_equal_the_suite_zero_params_column(shared_data):
    # NAS-Bench-Suite-Zero scored NASLib's NB301 graph as of May-June 2022: C=32
    # ([32, 64, 128], reduced to 16 in NASLib commit a4412f1, Oct 2022), 8 cells, 10
    # classes, no auxiliary head, parameter-free BN in cell ops and after pooling.
    space = darts.space()
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    shapes = jax.eval_shape(space.network(jnp.zeros(32, jnp.int32)).init, jax.random.key(0), x)

    @jax.jit
    def count(genotype):
        mask = space.network(genotype).param_mask(shapes)
        return sum(
            jnp.sum(jnp.broadcast_to(m, s.shape))
            for m, s in zip(jax.tree.leaves(mask), jax.tree.leaves(shapes))
        )

    rows = _rows(shared_data, SUBSET)
    ours = np.asarray([float(count(jnp.asarray(space.from_string(r["genotype"])))) for r in rows])
    reference = np.asarray([float(r["params"]) * 1e6 for r in rows])
    np.testing.assert_allclose(ours, reference, rtol=1e-3)
    assert np.abs(ours - reference).max() < 1.0  # exact, up to the table's 6 decimals
    model = space.materialize(space.from_string(rows[0]["genotype"]))
    assert (
        cell_checks.count_params(jax.eval_shape(model.init, jax.random.key(0), x)["params"])
        == (ours[0])
    )


def test_flops_equal_the_suite_zero_flops_column(shared_data):
    """The table's `flops` (millions, NASLib's NB301 graph through tensorwatch, one
    32x32 image): conv MACs, ReLU 1 and BatchNorm 2 per element (1 without affine
    parameters: the cell ops' and pooling's BatchNorms), pooling k^2 per output element,
    global pooling (H + 1)(W + 1) per channel, the linear layer's weights."""
    rows = _rows(shared_data, SUBSET)[:6]
    space = darts.space()
    population = np.stack([space.from_string(r["genotype"]) for r in rows])
    x = jnp.zeros((1, 32, 32, 3), jnp.float32)
    keys = jax.random.split(jax.random.key(0), 1)
    flops = proxies.get_proxy("flops")
    ours = jax.jit(lambda p: proxies.score_population(flops, space, p, {"x": x}, keys))(population)
    expected = np.asarray([float(r["flops"]) for r in rows])
    np.testing.assert_allclose(np.asarray(ours)[:, 0], expected, rtol=1e-6)


def test_darts_v2_has_the_published_3_3m_parameters():
    # DARTS (second order) on CIFAR-10: C=36, 20 cells, auxiliary head; the paper's 3.3M
    # (train log: 3.349342 MB) excludes the auxiliary head, as DARTS' count does.
    space = darts.space(channels=36, num_cells=20, auxiliary=True, affine_ops=True, pool_bn=False)
    model = space.materialize(space.from_string(DARTS_V2))
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
    aux = cell_checks.count_params(shapes["auxiliary"])
    assert cell_checks.count_params(shapes) - aux == 3_349_342
    assert aux == 476_426  # 576*128 + 2*128 + 128*768*4 + 2*768 + 768*10 + 10


# ----------------------------------------------------- data-driven vs materialised


@pytest.mark.slow
def test_data_driven_network_equals_materialised_network_on_random_cells(tiny):
    cells = np.array(tiny.sample(jax.random.key(7), 2))
    cells[0] = tiny.from_string(EVERY_OP)
    for i, genotype in enumerate(cells):
        cell_checks.assert_same_network(tiny, genotype, seed=i)


@pytest.mark.usefixtures("fast_compile")
@pytest.mark.parametrize("concat", ["all", "loose_end"])
def test_scanned_edges_equal_unrolled_edges(concat):
    # A normal and a reduction cell; every op kind, stride-2 and stride-1 edges, repeated
    # inputs (EVERY_OP), then a sampled cell.
    space = darts.space(**TINY_CELLS, concat=concat)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    for nets, params in _scanned_and_unrolled(space, x):
        got, want = _both(nets, params, lambda net, p: jnp.sum(net.apply(p, x) ** 2), grad=True)
        chex.assert_trees_all_close(got, want, rtol=1e-4, atol=1e-5)
        assert float(got[0]) > 0


def test_scanned_edges_record_the_unrolled_edges_probes():
    # Probes recorded after the scan: the names and values the unrolled edges record
    # (layers, BatchNorm statistics, FLOPs; float32 sums in another order, as above),
    # and the same fisher / flops / Zen scores (fisher differentiates the gates
    # through the scan).
    space = darts.space(**TINY_CELLS)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    batch = {"x": x, "y": jnp.arange(4) % 10}
    mixed = x + 0.01 * jax.random.normal(jax.random.key(3), x.shape)
    for nets, params in _scanned_and_unrolled(space, x):
        got, want = _both(nets, params, lambda net, p: net.apply(p, x, probes=True)[1])
        chex.assert_trees_all_close(got, want, rtol=1e-4, atol=1e-5)
        got, want = _both(nets, params, probe_scores(batch, mixed))
        chex.assert_trees_all_close(got, want, rtol=1e-4)


@pytest.mark.usefixtures("fast_compile")
def test_scanned_edges_sow_the_unrolled_edges_taps():
    # States and separable-conv mid values leave the scan under the unrolled cell's
    # names and weights, so NASWOT (which merges taps by array identity) scores equal.
    space = darts.space(**TINY_CELLS)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    naswot = proxies.get_proxy("naswot")
    for nets, params in _scanned_and_unrolled(space, x):
        jaxpr = jax.make_jaxpr(lambda p, net=nets[0]: net.apply(p, x, taps=True))(params)
        assert "scan" in str(jaxpr)
        got, want = _both(nets, params, lambda net, p: net.apply(p, x, taps=True)[1])
        assert sorted(got) == sorted(want)
        assert any(name.endswith("_mid") for name in got)
        chex.assert_trees_all_close(got, want, rtol=1e-4, atol=1e-5)
        got, want = _both(nets, params, lambda net, p: naswot(net, p, {"x": x}, None))
        np.testing.assert_allclose(got, want, rtol=1e-5)
        assert np.isfinite(got)


def _scanned_and_unrolled(space, x):
    """Yields `((scanned, unrolled), params)` for EVERY_OP and a sampled cell."""
    every_op = darts.space(**TINY_CELLS).from_string(EVERY_OP)  # one layout for every concat
    for genotype in (every_op, space.sample(jax.random.key(2), 1)[0]):
        scanned = space.network(jnp.asarray(genotype))
        unrolled = space.network(jnp.asarray(genotype), scan_edges=False)
        yield (scanned, unrolled), scanned.init(jax.random.key(1), x)


def _both(nets, params, fn, grad=False):
    """`fn(net, params)` jitted for each network (with `grad`: its value and gradient)."""
    transform = jax.value_and_grad if grad else lambda f: f
    return tuple(jax.jit(transform(lambda p, net=net: fn(net, p)))(params) for net in nets)


def test_loss_gradients_equal_the_materialised_network_gradients(one_cell):
    # The reduction cell of EVERY_OP holds every op kind, at stride 2 and at stride 1.
    cell_checks.assert_same_gradients(one_cell, one_cell.from_string(EVERY_OP))


def test_probe_proxies_equal_the_materialised_network(one_cell):
    # Every op kind records its layers, statistics and FLOPs inside the switch, at
    # stride 2 and at stride 1, with the other ops' probes weighted 0.
    cell_checks.assert_same_probe_proxies(one_cell, one_cell.from_string(EVERY_OP))


def test_darts_conventions_with_none_equal_materialised_network():
    # SWAP's correlation network: no stem, one reduction cell (C=3 -> 6) on the images;
    # stride-2 edges on the cell inputs, stride-1 edges on its nodes.
    space = darts.space(
        channels=3,
        num_cells=1,
        cell_ops=darts.DARTS_OPS,
        affine_ops=True,
        pool_bn=False,
        stem="none",
    )
    g = space.from_string(
        "Genotype(normal=[('none', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 0), "
        "('none', 2), ('skip_connect', 3), ('dil_conv_3x3', 1), ('avg_pool_3x3', 4), "
        "('sep_conv_5x5', 0)], normal_concat=[2, 3, 4, 5], reduce=[('none', 1), "
        "('skip_connect', 0), ('none', 2), ('dil_conv_5x5', 1), ('max_pool_3x3', 2), "
        "('skip_connect', 3), ('sep_conv_3x3', 4), ('none', 0)], reduce_concat=[2, 3, 4, 5])"
    )
    cell_checks.assert_same_network(space, g)


def test_unselected_parameters_never_reach_logits_or_naswot(tiny):
    _, init, apply = cell_checks.data_driven(tiny)
    genotype = jnp.asarray(tiny.sample(jax.random.key(3), 1)[0])
    params, mask, _ = init(genotype, jax.random.key(0))
    logits, _, score = apply(params, genotype)
    noisy = jax.tree.map(lambda p, m: jnp.where(m == 0, p * 7.0 + 3.0, p), params, mask)
    noisy_logits, _, noisy_score = apply(noisy, genotype)
    np.testing.assert_array_equal(noisy_logits, logits)
    np.testing.assert_array_equal(noisy_score, score)
    changed = jax.tree.map(lambda p, m: jnp.where(m == 0, p, p * 1.5), params, mask)
    assert not np.allclose(apply(changed, genotype)[0], logits)


def test_parameters_do_not_depend_on_the_genotype(tiny, key):
    x = jnp.zeros((2, 8, 8, 3))
    a = tiny.network(jnp.zeros(32, jnp.int32)).init(key, x)
    b = tiny.network(jnp.asarray(tiny.sample(jax.random.key(1), 1)[0])).init(key, x)
    chex.assert_trees_all_equal(a, b)
    flat = traverse_util.flatten_dict(a["params"], sep="/")
    depthwise = flat["cell0/edge_0/sep_conv_5x5/half1/conv0/kernel"]
    assert depthwise.shape == (5, 5, 1, 8)  # cell 0 is a reduction cell: 2C channels
    assert 0.5 / 5 < np.abs(depthwise).max() <= 1 / 5  # PyTorch fan_in = 25 per group


def test_scoring_compiles_once_for_every_population(one_cell):
    assert_scoring_compiles_once(one_cell, jax.random.normal(jax.random.key(1), (4, 8, 8, 3)))


def test_batch_norm_override_makes_every_bn_the_identity(one_cell, key):
    x = jax.random.normal(key, (4, 8, 8, 3))
    genotype = jnp.asarray(one_cell.sample(jax.random.key(4), 1)[0])
    plain = one_cell.network(genotype, batch_norm=False)
    params = plain.init(key, x)
    scaled = jax.tree_util.tree_map_with_path(
        lambda path, v: v * 3.0 + 1.0 if "bn" in str(path) else v, params
    )
    apply = jax.jit(plain.apply)
    np.testing.assert_allclose(apply(scaled, x), apply(params, x), rtol=1e-6)
    assert not np.allclose(jax.jit(one_cell.network(genotype).apply)(params, x), apply(params, x))
