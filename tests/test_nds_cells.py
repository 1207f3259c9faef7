"""NDS cell spaces: op sets and node rules, parameter counts against closed-form formulas,
loose-end concatenation, data-driven vs materialised networks."""

import cell_checks
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import errors
from jaxnas.spaces import SPACES, darts, nds_cells

from conftest import assert_scoring_compiles_once

# pycls `genotypes.py` cells (NDS' reference implementation).
NASNET = (
    "Genotype(normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0), "
    "('sep_conv_3x3', 0), ('avg_pool_3x3', 1), ('skip_connect', 0), ('avg_pool_3x3', 0), "
    "('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 1)], "
    "normal_concat=[2, 3, 4, 5, 6], reduce=[('sep_conv_5x5', 1), ('sep_conv_7x7', 0), "
    "('max_pool_3x3', 1), ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('sep_conv_5x5', 0), "
    "('skip_connect', 3), ('avg_pool_3x3', 2), ('sep_conv_3x3', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[4, 5, 6])"
)
AMOEBA = (
    "Genotype(normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('avg_pool_3x3', 3), ('sep_conv_3x3', 1), "
    "('skip_connect', 1), ('skip_connect', 0), ('avg_pool_3x3', 1)], normal_concat=[4, 5, 6], "
    "reduce=[('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 0), "
    "('sep_conv_7x7', 2), ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)], reduce_concat=[3, 4, 6])"
)
PNAS = (
    "Genotype(normal=[('sep_conv_5x5', 0), ('max_pool_3x3', 0), ('sep_conv_7x7', 1), "
    "('max_pool_3x3', 1), ('sep_conv_5x5', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 4), "
    "('max_pool_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 1)], "
    "normal_concat=[2, 3, 4, 5, 6], reduce=[('sep_conv_5x5', 0), ('max_pool_3x3', 0), "
    "('sep_conv_7x7', 1), ('max_pool_3x3', 1), ('sep_conv_5x5', 1), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 4), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 1)], "
    "reduce_concat=[2, 3, 4, 5, 6])"
)
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])"
)
PYCLS = {"nds_nasnet": NASNET, "nds_amoeba": AMOEBA, "nds_pnas": PNAS, "nds_darts": DARTS_V2}


# ------------------------------------------------------- closed-form parameter counts


def _op_params(name: str, c: int, stride: int) -> int:
    """Parameters of one op at width c (BN with affine parameters, as in pycls)."""
    bn = 2 * c
    if name in ("none", "avg_pool_3x3") or name.startswith("max_pool"):
        return 0
    if name == "skip_connect":
        return 0 if stride == 1 else c * c + bn  # FactorizedReduce: two c -> c/2 1x1 convs
    k = int(name[-1])
    return {
        "conv_1x1": c * c + bn,
        "conv_3x3": 9 * c * c + bn,
        "conv_3x1_1x3": 2 * 3 * c * c + bn,
        "conv_7x1_1x7": 2 * 7 * c * c + bn,
        "dil_conv_3x3": 9 * c + c * c + bn,
        "dil_conv_5x5": 25 * c + c * c + bn,
        "dil_sep_conv_3x3": 2 * (9 * c + c * c + bn),
    }.get(name, 2 * (k * k * c + c * c + bn))  # sep_conv_kxk: two (depthwise, pointwise, BN)


def _cell_params(edges, c, c_pp, c_p, reduction):
    """Parameters of one cell with (op, input) `edges` at width c."""
    # Both preprocessings (ReLU-conv-BN or FactorizedReduce) have c_in * c + 2c.
    total = (c_pp * c + 2 * c) + (c_p * c + 2 * c)
    for op, i in edges:
        total += _op_params(op, c, 2 if reduction and i < 2 else 1)
    return total


def formula_params(notation, genotype, channels, num_cells, classes, auxiliary=False):
    """The parameter count of an NDS / DARTS CIFAR network, written out by hand."""
    cells = notation.cells(genotype)
    outputs = [len(concat) for concat in notation.concat_of(genotype)]
    reductions = {num_cells // 3, 2 * num_cells // 3}
    total = 3 * 3 * 3 * (3 * channels) + 2 * (3 * channels)  # stem conv + BN
    c_pp = c_p = 3 * channels
    c, c_aux = channels, None
    for i in range(num_cells):
        reduction = i in reductions
        c = c * 2 if reduction else c
        total += _cell_params(cells[int(reduction)], c, c_pp, c_p, reduction)
        c_pp, c_p = c_p, outputs[int(reduction)] * c
        if i == max(reductions):
            c_aux = c_p
    if auxiliary:
        total += c_aux * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * classes + classes
    return total + c_p * classes + classes


def _notation(space_name):
    ops, nodes, concat = nds_cells.CELLS[space_name]
    return darts.Notation(space_name, ops, nodes, concat)


@pytest.mark.parametrize("name", sorted(nds_cells.CELLS))
def test_parameter_counts_match_the_formula_on_pycls_and_random_cells(name):
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    # 4 cells: two adjacent reduction cells (1, 2); 5 cells: reductions (1, 3) and the head.
    for channels, num_cells, auxiliary, num_random in ((16, 4, False, 1), (24, 5, True, 1)):
        space = SPACES[name](channels=channels, num_cells=num_cells, auxiliary=auxiliary)
        genotypes = list(np.asarray(space.sample(jax.random.key(0), num_random)))
        if name in PYCLS and not auxiliary:
            genotypes.append(space.from_string(PYCLS[name]))
        for g in genotypes:
            expected = formula_params(_notation(name), g, channels, num_cells, 10, auxiliary)
            model = space.materialize(g)
            shapes = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
            assert cell_checks.count_params(shapes) == expected, space.to_string(g)


def test_param_mask_counts_equal_the_formula_with_loose_ends():
    space = SPACES["nds_amoeba"](channels=8, num_cells=3)  # reductions at cells 1 and 2
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    shapes = jax.eval_shape(space.network(jnp.zeros(40, jnp.int32)).init, jax.random.key(0), x)

    @jax.jit
    def count(genotype):
        mask = space.network(genotype).param_mask(shapes)
        return sum(
            jnp.sum(jnp.broadcast_to(m, s.shape))
            for m, s in zip(jax.tree.leaves(mask), jax.tree.leaves(shapes))
        )

    genotypes = [*np.asarray(space.sample(jax.random.key(1), 4)), space.from_string(AMOEBA)]
    for g in genotypes:
        expected = formula_params(_notation("nds_amoeba"), g, 8, 3, 10)
        assert int(count(jnp.asarray(g))) == expected


def test_darts_v2_keeps_its_published_size_in_the_nds_darts_space():
    space = SPACES["nds_darts"](channels=36, num_cells=20, auxiliary=True)
    g = space.from_string(DARTS_V2)
    notation = _notation("nds_darts")
    assert formula_params(notation, g, 36, 20, 10) == 3_349_342
    assert formula_params(notation, g, 36, 20, 10, auxiliary=True) == 3_349_342 + 476_426


# ------------------------------------------------------------------ rules, notation


@pytest.mark.parametrize(
    "name, num_ops, num_nodes, size_per_cell",
    [
        # NDS Table 2: o**(2k) * ((k + 1)!)**2 cells with k nodes and o ops.
        ("nds_nasnet", 13, 5, 13**10 * 720**2),
        ("nds_amoeba", 8, 5, 8**10 * 720**2),
        ("nds_pnas", 8, 5, 8**10 * 720**2),
        ("nds_enas", 5, 5, 5**10 * 720**2),
        ("nds_darts", 8, 4, 8**8 * 120**2),
    ],
)
def test_op_sets_node_counts_and_space_sizes_follow_nds(name, num_ops, num_nodes, size_per_cell):
    space = SPACES[name]()
    assert len(space.num_choices) == 8 * num_nodes
    assert max(space.num_choices) == max(num_ops, num_nodes + 1)
    assert space.size == size_per_cell**2  # independent normal and reduction cells
    for g in np.asarray(space.sample(jax.random.key(2), 20)):
        assert space.from_string(space.to_string(g)).tolist() == g.tolist()


def test_pycls_cells_parse_and_their_loose_ends_match_the_published_concatenations():
    for name, arch in PYCLS.items():
        space = SPACES[name]()
        assert space.to_string(space.from_string(arch)) == arch
    wrong = NASNET.replace("reduce_concat=[4, 5, 6]", "reduce_concat=[2, 3, 4, 5, 6]")
    with pytest.raises(errors.ArchitectureError, match="'loose_end' concatenation \\[4, 5, 6\\]"):
        SPACES["nds_nasnet"]().from_string(wrong)
    with pytest.raises(errors.ArchitectureError, match="unknown op 'dil_conv_5x5'"):
        SPACES["nds_enas"]().from_string(NASNET.replace("sep_conv_7x7", "dil_conv_5x5"))


# ----------------------------------------------------- data-driven vs materialised


def _two_cells(name):
    """A normal cell then a reduction cell: loose ends feed a preprocessing and the head."""
    return SPACES[name](channels=4, num_cells=2, reductions=(1,))


@pytest.mark.parametrize(
    "name",
    ["nds_enas", "nds_nasnet", "nds_amoeba", "nds_pnas", "nds_darts"],
)
@pytest.mark.slow  # tests/test_space_contract.py checks each space on its tiny settings
def test_data_driven_network_equals_materialised_network(name):
    space = _two_cells(name)
    genotypes = list(np.asarray(space.sample(jax.random.key(5), 1)))
    if name in PYCLS:
        genotypes.append(space.from_string(PYCLS[name]))
    for i, g in enumerate(genotypes):
        cell_checks.assert_same_network(space, g, seed=i)


@pytest.mark.slow
def test_probe_proxies_equal_the_materialised_network_with_loose_ends():
    # ENAS concatenates the loose ends: after a reduction cell, both preprocessings of
    # the next cell (FactorizedReduce and ReLU-conv-BN) and the head read masked inputs,
    # whose masked channels count in neither the FLOPs nor fisher's fan-in.
    space = SPACES["nds_enas"](**cell_checks.TINY_CELLS)
    genotype = space.sample(jax.random.key(0), 1)[0]
    choices = np.asarray(genotype).reshape(2, 5, 2, 2)[1]  # the reduction cell
    assert not np.isin(np.arange(2, 7), choices[:, :, 0]).all()  # it has loose ends
    cell_checks.assert_same_probe_proxies(space, genotype)


@pytest.mark.slow
def test_scoring_compiles_once_for_every_population():
    space = SPACES["nds_enas"](**cell_checks.TINY_CELLS)
    assert_scoring_compiles_once(space, jax.random.normal(jax.random.key(1), (4, 8, 8, 3)))
