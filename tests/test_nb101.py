"""NAS-Bench-101 space: notation, NB101's structure rules, data-driven vs materialised networks."""

import csv
import gzip
import json
import math
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxnas import benchmarks, errors, experiment, losses, network, proxies
from jaxnas.proxies import kernels, layerwise, zen
from jaxnas.spaces import base, functional, nb101

from conftest import load_config, materialised_variables, probe_scores

TINY = dict(stem_channels=8, num_stacks=2, cells_per_stack=1)  # 8 and 16 channels
TABLE = os.path.join("nasbench101", "nb101_zc_suitezero_subset250_cifar10.csv.gz")
GOLDEN = os.path.join(os.path.dirname(__file__), "fixtures", "nb101_golden.npz")

# Hand-made cells: (adjacency rows, interior ops), chosen for the channel rules.
CELLS = {
    # k=3 vertices feed the output: 8 -> 3, 3, 2 (16 -> 6, 5, 5); vertex 1 is truncated
    # into vertex 3; vertices 4 and 5 are pruned.
    "truncation": ("0110000/0001001/0000001/0000001/0000000/0000000/0000000", "01020"),
    "input_to_output_only": ("0000001/0000000/0000000/0000000/0000000/0000000/0000000", "00000"),
    # A chain whose vertices take the width of their successor; the input feeds the output.
    "chain_and_skip": ("0100001/0010000/0001000/0000100/0000010/0000001/0000000", "01201"),
    # k=4: 2 channels each at C=8; vertex 5 is pruned (no way in).
    "wide": ("0111100/0000001/0000001/0000001/0000001/0000000/0000000", "20120"),
}


def _cell(name):
    rows, choice = CELLS[name]
    ops_list = ["input", *(nb101.OPS[int(c)] for c in choice), "output"]
    return nb101.from_string(f"{rows};{'|'.join(ops_list)}")


def _table(shared_data):
    with gzip.open(os.path.join(shared_data, TABLE), "rt") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tiny():
    return nb101.space(**TINY)


@pytest.fixture(scope="module")
def images():
    return jax.random.normal(jax.random.key(42), (4, 8, 8, 3), jnp.float32)


# ----------------------------------------------------------------------------- notation


def test_parsers_agree_with_every_row_of_the_suite_zero_table(shared_data):
    rows = _table(shared_data)
    assert len(rows) == 250
    for row in rows:
        arch = f"{row['adjacency_rows']};{row['ops']}"
        genotype = nb101.from_string(arch)
        np.testing.assert_array_equal(nb101.from_naslib(row["naslib_tuple"]), genotype)
        assert nb101.to_string(genotype) == arch
        assert nb101.to_naslib(genotype) == tuple(
            int(v) for v in row["naslib_tuple"][1:-1].split(",")
        )
        matrix, names = nb101.to_spec(genotype)
        assert "/".join("".join(map(str, r)) for r in matrix) == row["adjacency_rows"]
        assert "|".join(names) == row["ops"]


def test_pruned_specs_embed_into_the_seven_vertex_form():
    # NB101 records store pruned matrices; the 3-vertex cell input -> conv3x3 -> output.
    genotype = nb101.from_spec(
        [[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"]
    )
    matrix, names = nb101.to_spec(genotype)
    assert matrix[0, 1] == 1 and matrix[1, 6] == 1 and matrix.sum() == 2
    assert names[1] == "conv3x3-bn-relu"


def _rows(*rows):
    return "/".join(rows)


@pytest.mark.parametrize(
    "arch, message",
    [
        (
            _rows("0100000", "1010000", "0001000", "0000100", "0000010", "0000001", "0000000")
            + ";input|conv3x3-bn-relu|conv3x3-bn-relu|conv3x3-bn-relu|conv3x3-bn-relu|"
            "conv3x3-bn-relu|output",
            r"not upper-triangular: entry \(1, 0\)",
        ),
        (
            _rows("0111110", "0011111", "0001001", "0000101", "0000011", "0000001", "0000000")
            + ";input|conv3x3-bn-relu|conv3x3-bn-relu|conv3x3-bn-relu|conv3x3-bn-relu|"
            "conv3x3-bn-relu|output",
            "17 edges after pruning, NB101 allows at most 9",
        ),
        (
            _rows("0110000", "0000000", "0000000", "0000001", "0000001", "0000001", "0000000")
            + ";input|conv3x3-bn-relu|conv3x3-bn-relu|conv3x3-bn-relu|conv3x3-bn-relu|"
            "conv3x3-bn-relu|output",
            "no path from the input to the output",
        ),
        (
            _rows("0100000", "0000001", "0000000", "0000000", "0000000", "0000000", "0000000")
            + ";input|conv5x5-bn-relu|conv3x3-bn-relu|conv3x3-bn-relu|conv3x3-bn-relu|"
            "conv3x3-bn-relu|output",
            "unknown NB101 op 'conv5x5-bn-relu' at vertex 1",
        ),
        ("0100001/0000001;input|conv3x3-bn-relu|output", "malformed NB101 string"),
        ("01/00", "malformed NB101 string"),
        ("012/001/000;input|maxpool3x3|output", "malformed NB101 string"),
        ("01/00;input|maxpool3x3|output", "must name each of the 2 vertices"),
        ("011/001/000;conv3x3-bn-relu|maxpool3x3|output", "must start with 'input'"),
    ],
)
def test_bad_cells_raise_one_line_errors_naming_the_problem(arch, message):
    with pytest.raises(errors.ArchitectureError, match=message) as info:
        nb101.from_string(arch)
    assert "\n" not in str(info.value)


def test_bad_naslib_tuples_and_genotypes_raise_clear_errors(tiny):
    with pytest.raises(errors.ArchitectureError, match="malformed NASLib NB101 tuple"):
        nb101.from_naslib("(0,1,2)")
    with pytest.raises(errors.ArchitectureError, match="malformed NASLib NB101 tuple"):
        nb101.from_naslib("(0,1,x)")
    no_path = np.zeros(nb101.GENOTYPE_LENGTH, np.int32)
    with pytest.raises(errors.ArchitectureError, match="no path"):
        tiny.validate(no_path)


# ------------------------------------------------------------------ structure and size


def _reference_vertex_channels(matrix, in_channels, out_channels):
    """NB101's `compute_vertex_channels` transcribed loop by loop, on a pruned matrix."""
    n = matrix.shape[0]
    channels = [0] * n
    channels[0], channels[n - 1] = in_channels, out_channels
    if n == 2:
        return channels
    in_degree = np.sum(matrix[1:], axis=0)
    interior = out_channels // in_degree[n - 1]
    correction = out_channels % in_degree[n - 1]
    for v in range(1, n - 1):
        if matrix[v, n - 1]:
            channels[v] = interior
            if correction:
                channels[v] += 1
                correction -= 1
    for v in range(n - 3, 0, -1):
        if not matrix[v, n - 1]:
            for dst in range(v + 1, n - 1):
                if matrix[v, dst]:
                    channels[v] = max(channels[v], channels[dst])
    return channels


def _reference_prune(matrix):
    """NB101's `ModelSpec._prune` as depth-first searches; returns kept vertex indices."""
    n = matrix.shape[0]
    seen_in, frontier = {0}, [0]
    while frontier:
        top = frontier.pop()
        for v in range(top + 1, n):
            if matrix[top, v] and v not in seen_in:
                seen_in.add(v)
                frontier.append(v)
    seen_out, frontier = {n - 1}, [n - 1]
    while frontier:
        top = frontier.pop()
        for v in range(top):
            if matrix[v, top] and v not in seen_out:
                seen_out.add(v)
                frontier.append(v)
    return sorted(seen_in & seen_out)


def test_pruning_and_vertex_channels_follow_the_nb101_reference(tiny, key):
    population = np.array(tiny.sample(key, 300))
    population[:4] = [_cell(name) for name in CELLS]
    for genotype in population:
        matrix, _ = nb101.to_spec(genotype)
        keep = _reference_prune(matrix)
        alive, pruned = nb101.prune(matrix, np)
        assert np.flatnonzero(alive).tolist() == keep
        small = matrix[np.ix_(keep, keep)]
        for c in (8, 16, 128, 512):
            expected = _reference_vertex_channels(small, c, c)[1:-1]
            ours = nb101.vertex_channels(pruned, c, np)
            assert ours[np.asarray(keep[1:-1], int) - 1].tolist() == expected
            assert ours[~alive[1:-1]].sum() == 0


def _masked_count(params, mask):
    """Number of parameters the mask selects (a mask leaf broadcasts against its parameter)."""
    total = 0.0
    for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask)):
        total = total + jnp.sum(m) * (math.prod(p.shape) / m.size)
    return total


def test_parameter_counts_equal_the_benchmark_params_column(shared_data):
    # The table's `params` (millions) was counted by NASLib on the benchmark's network:
    # 128-channel stem, 3 stacks x 3 cells, 10 classes; conv kernels, BN scale and bias,
    # classifier weights and biases.
    rows = _table(shared_data)
    space = nb101.space()
    population = jnp.asarray(np.stack([nb101.from_naslib(r["naslib_tuple"]) for r in rows]))
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    shapes = jax.eval_shape(space.network(population[0]).init, jax.random.key(0), x)
    count = lambda g: _masked_count(shapes, space.network(g).param_mask(shapes))  # noqa: E731
    ours = np.asarray(jax.jit(lambda p: jax.lax.map(count, p))(population), np.float64)
    expected = np.asarray([float(r["params"]) * 1e6 for r in rows])
    np.testing.assert_allclose(ours, expected, rtol=1e-3)
    assert np.abs(ours - expected).max() < 0.5  # in fact exact (6 decimals of millions)
    for row, genotype in zip(rows[:3], population[:3]):
        model = space.materialize(genotype)
        variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
        count = sum(math.prod(v.shape) for v in jax.tree.leaves(variables["params"]))
        assert count == round(float(row["params"]) * 1e6)


def test_flops_equal_the_benchmark_flops_column(shared_data):
    """The table's `flops` (millions, NASLib through tensorwatch, one 32x32 image, the
    benchmark's network): conv MACs, BatchNorm 2 and ReLU 1 per element, max pooling
    k^2 per output element; the final `torch.mean` is a function, not counted."""
    rows = _table(shared_data)[:24]
    population = np.stack([nb101.from_naslib(r["naslib_tuple"]) for r in rows])
    x = jnp.zeros((1, 32, 32, 3), jnp.float32)
    keys = jax.random.split(jax.random.key(0), 1)
    flops = proxies.get_proxy("flops")
    ours = jax.jit(lambda p: proxies.score_population(flops, nb101.space(), p, {"x": x}, keys))(
        population
    )
    expected = np.asarray([float(r["flops"]) for r in rows])
    np.testing.assert_allclose(np.asarray(ours)[:, 0], expected, rtol=1e-6)


@pytest.mark.slow
def test_probe_proxies_equal_on_data_driven_and_materialised_networks(tiny):
    """fisher, flops and the Zen-score of given weights: masked channels and unselected
    ops never count, and each layer counts with its own fan-in."""
    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3), jnp.float32)
    batch = {"x": x, "y": jnp.arange(4) % 10}
    x_mixed = x + 0.01 * jax.random.normal(jax.random.key(4), x.shape, jnp.float32)
    scores = probe_scores(batch, x_mixed)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def data_driven(genotype):
        net = tiny.network(genotype)
        params = network.initial_params(net, jax.random.key(2), x)
        params = zen.gaussian_init(jax.random.key(3), params)
        return params, scores(net, params)

    chex.clear_trace_counter()
    cells = np.concatenate([np.stack([_cell(n) for n in CELLS]), tiny.sample(jax.random.key(5), 1)])
    for genotype in cells:
        params, ours = data_driven(jnp.asarray(genotype))
        model = tiny.materialize(genotype)
        fixed = materialised_variables(model, params, x)
        fixed_net = network.from_linen(model, train=True, mutable=("batch_stats",))
        expected = scores(fixed_net, fixed)
        np.testing.assert_allclose(ours, expected, rtol=1e-4, err_msg=nb101.to_string(genotype))


def test_materialised_running_statistics_use_nasbench_momentum(tiny, images):
    """One training-mode call moves the running statistics from (0, 1) by momentum 0.003
    times the batch's (nasbench's TF decay 0.997) in every BatchNorm; `bn_momentum`
    overrides it and is checked."""
    genotype = tiny.sample(jax.random.key(3), 1)[0]
    x = images[:4]
    steps = {}
    for momentum in (nb101.NASBENCH_BN_MOMENTUM, 0.5):
        kwargs = {} if momentum == nb101.NASBENCH_BN_MOMENTUM else {"bn_momentum": momentum}
        model = tiny.materialize(genotype, **kwargs)
        variables = model.init(jax.random.key(0), x, train=True)
        _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        flat = traverse_util.flatten_dict(updates["batch_stats"])
        steps[momentum] = {
            k: (v - 1.0 if k[-1] == "var" else v) / momentum for k, v in flat.items()
        }
        if momentum == 0.5:  # the stem's batch mean, computed directly
            stem = functional.conv2d(x, variables["params"]["stem"]["conv"]["kernel"], 1, 1)
            expected = momentum * jnp.mean(stem, (0, 1, 2))
            np.testing.assert_allclose(flat[("stem", "bn", "mean")], expected, rtol=1e-5, atol=1e-7)
    default, half = steps.values()
    assert len(default) > 4 and default.keys() == half.keys()  # stem, vertices, projections
    # float32: (var - 1) / 0.003 carries ~2e-5 of rounding
    chex.assert_trees_all_close(default, half, rtol=1e-4, atol=1e-4)
    for bad in (0.0, 1.5, "0.1"):
        with pytest.raises(errors.ConfigError, match="bn_momentum must be a number"):
            tiny.materialize(genotype, bn_momentum=bad)


@pytest.mark.slow
def test_size_counts_every_valid_genotype():
    valid = 0
    for start in range(0, 2**nb101.NUM_EDGES, 2**18):
        codes = np.arange(start, start + 2**18)[:, None]
        edges = (codes >> np.arange(nb101.NUM_EDGES)[None, :]) & 1
        valid += int(
            nb101.is_valid(np.concatenate([edges, np.zeros((2**18, 5), int)], 1), np).sum()
        )
    assert valid == nb101.NUM_VALID_MATRICES
    assert nb101.space().size == valid * 3**5


def test_sample_gives_valid_cells_and_mutate_changes_one_position(tiny, key):
    population = jax.jit(tiny.sample, static_argnums=1)(key, 64)
    chex.assert_shape(population, (64, nb101.GENOTYPE_LENGTH))
    assert population.dtype == jnp.int32
    tiny.validate(np.asarray(population))
    assert len({tuple(g) for g in np.asarray(population)}) == 64
    children = jax.jit(jax.vmap(tiny.mutate))(jax.random.split(key, 64), population)
    tiny.validate(np.asarray(children))
    assert np.all(np.sum(np.asarray(children) != np.asarray(population), axis=1) == 1)


# ---------------------------------------------------- data-driven vs materialised networks


@pytest.fixture(scope="module")
def data_driven(tiny):
    """`(params, genotype, x) -> (logits, taps, NASWOT score)`; one compile for all cells."""

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(params, genotype, x):
        logits, taps = tiny.network(genotype).apply(params, x, taps=True)
        return logits, taps, kernels.logdet(kernels.hamming_kernel(taps))

    chex.clear_trace_counter()
    return run


def _materialised(space, genotype, params, x):
    """Logits and taps of the materialised network on the restricted parameters.

    Run eagerly: compiling per cell would cost more. Its variables come from
    `eval_shape` (Linen's eager init draws per leaf, tens of seconds); running BatchNorm
    statistics are not read in train mode.
    """
    model = space.materialize(genotype)
    fixed = materialised_variables(model, params, x)
    logits, state = model.apply(fixed, x, train=True, mutable=["batch_stats", "taps"])
    return logits, network.collect_taps(state["taps"])


def _assert_same_taps(taps, fixed_taps):
    active = {n: t for n, t in taps.items() if float(jnp.max(t.weight)) > 0}
    assert set(active) == set(fixed_taps)
    for name, tap in active.items():
        width = fixed_taps[name].value.shape[-1]
        weight = np.broadcast_to(np.asarray(tap.weight), tap.value.shape[-1:])
        np.testing.assert_array_equal(weight[:width], 1.0, err_msg=name)
        np.testing.assert_array_equal(weight[width:], 0.0, err_msg=name)
        # BatchNorm over 4 images of 2x2 pixels amplifies float rounding differences.
        np.testing.assert_allclose(
            tap.value[..., :width], fixed_taps[name].value, rtol=1e-4, atol=1e-4, err_msg=name
        )


def _naswot_numpy(taps):
    """NASWOT as the reference accumulates it, one ReLU at a time, in float64."""
    kernel = 0.0
    for tap in taps.values():
        codes = (np.asarray(tap.value) > 0).reshape(tap.value.shape[0], -1).astype(np.float64)
        kernel = kernel + codes @ codes.T + (1 - codes) @ (1 - codes).T
    return np.linalg.slogdet(kernel)[1]


def test_data_driven_network_equals_materialised_network(tiny, data_driven, images):
    """Same parameters in, same logits, taps and NASWOT score out: masked channels and
    pruned vertices never enter a kernel."""
    cells = np.asarray(tiny.sample(jax.random.key(7), 2))
    cells = np.concatenate([np.stack([_cell(name) for name in CELLS]), cells])
    for i, genotype in enumerate(cells):
        params = tiny.network(genotype).init(jax.random.key(i), images)
        logits, taps, score = data_driven(params, jnp.asarray(genotype), images)
        fixed_logits, fixed_taps = _materialised(tiny, genotype, params, images)
        np.testing.assert_allclose(logits, fixed_logits, rtol=1e-4, atol=1e-4)
        _assert_same_taps(taps, fixed_taps)
        np.testing.assert_allclose(score, _naswot_numpy(fixed_taps), rtol=1e-5)


@pytest.mark.slow
def test_loss_gradients_through_switch_equal_mask_dispatch(images, key):
    """Switch dispatch recomputes the taken branch in the backward pass (`functional.switch`);
    its gradients equal those of the mask dispatch, which runs every op."""
    small = dict(stem_channels=8, num_stacks=1, cells_per_stack=1)
    switch, mask = nb101.space(**small), nb101.space(**small, dispatch="mask")
    labels = jnp.arange(images.shape[0]) % 10

    def grads(space):
        def loss(params, genotype):
            logits = space.network(genotype).apply(params, images)
            return losses.cross_entropy(logits, labels)

        return jax.jit(jax.grad(loss))

    switch_grads, mask_grads = grads(switch), grads(mask)
    for name in ("truncation", "wide"):
        genotype = jnp.asarray(_cell(name))
        params = switch.network(genotype).init(key, images)
        chex.assert_trees_all_close(
            switch_grads(params, genotype), mask_grads(params, genotype), rtol=1e-4, atol=1e-6
        )


def test_mask_dispatch_equals_switch_dispatch(data_driven, images, key):
    mask = nb101.space(**TINY, dispatch="mask")

    apply_mask = jax.jit(lambda p, g: mask.network(g).apply(p, images, taps=True))
    for name in ("truncation", "input_to_output_only", "wide"):
        genotype = jnp.asarray(_cell(name))
        params = mask.network(genotype).init(key, images)
        out_switch, taps_switch, _ = data_driven(params, genotype, images)
        out_mask, taps_mask = apply_mask(params, genotype)
        np.testing.assert_allclose(out_mask, out_switch, atol=1e-5)
        for tap_name, tap in taps_switch.items():
            np.testing.assert_array_equal(taps_mask[tap_name].weight, tap.weight)


def test_param_mask_counts_exactly_the_materialised_parameters(tiny, images, key):
    params = tiny.network(jnp.asarray(_cell("wide"))).init(key, images)
    count = jax.jit(lambda g: _masked_count(params, tiny.network(g).param_mask(params)))
    cells = np.concatenate([np.stack([_cell(n) for n in CELLS]), tiny.sample(key, 6)])
    for genotype in cells:
        model = tiny.materialize(genotype)
        expected = sum(
            math.prod(v.shape)
            for v in jax.tree.leaves(jax.eval_shape(model.init, key, images)["params"])
        )
        assert float(count(jnp.asarray(genotype))) == expected, nb101.to_string(genotype)


def test_score_population_compiles_once_for_the_whole_space(tiny, data_driven, images):
    chex.clear_trace_counter()
    naswot = proxies.get_proxy("naswot")
    keys = jax.random.split(jax.random.key(3), 1)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def score(population):
        return proxies.score_population(naswot, tiny, population, {"x": images}, keys)

    first = np.stack([_cell(name) for name in CELLS])
    second = np.asarray(tiny.sample(jax.random.key(5), 4))
    scores = np.concatenate([score(first), score(second)])
    chex.assert_shape(scores, (8, 1))
    key_init, _ = jax.random.split(keys[0])
    params = tiny.network(first[0]).init(key_init, images)
    for genotype, value in zip(np.concatenate([first, second]), scores[:, 0]):
        expected = data_driven(params, jnp.asarray(genotype), images)[-1]
        np.testing.assert_allclose(value, expected, rtol=1e-6)


def _golden_weights(shapes, seed):
    """The oracle's weights (`scripts/torch_nb101_oracle.py golden_weights`), redrawn."""
    rng = np.random.default_rng(seed)
    out = {}
    for path in sorted(shapes):
        low, high = (0.5, 1.5) if path.endswith("/scale") else (-1.0, 1.0)
        out[path] = rng.uniform(low, high, shapes[path]).astype(np.float32)
    return out


def test_logits_and_naswot_match_the_pytorch_oracle(tiny, data_driven):
    """Values from `scripts/torch_nb101_oracle.py golden` (an independent NB101 builder)."""
    fixture = np.load(GOLDEN)
    x = jnp.asarray(fixture["x_nhwc"])
    for i in range(3):
        genotype = nb101.from_string(str(fixture[f"arch_{i}"]))
        shapes = jax.eval_shape(tiny.materialize(genotype).init, jax.random.key(0), x)
        paths = traverse_util.flatten_dict(shapes["params"], sep="/")
        assert sorted(paths) == fixture[f"param_paths_{i}"].tolist()
        weights = _golden_weights({p: v.shape for p, v in paths.items()}, int(fixture["seed"]) + i)
        # Oracle weights in the valid slices; the masked rest keeps its random values.
        flat = traverse_util.flatten_dict(tiny.network(genotype).init(jax.random.key(i), x))
        for path, w in weights.items():
            leaf = ("params", *path.split("/"))
            flat[leaf] = flat[leaf].at[tuple(slice(0, n) for n in w.shape)].set(w)
        params = traverse_util.unflatten_dict(flat)
        logits, _, score = data_driven(params, jnp.asarray(genotype), x)
        np.testing.assert_allclose(logits, fixture[f"logits_{i}"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(score, fixture[f"naswot_{i}"], rtol=1e-6)


def test_parameters_do_not_depend_on_the_genotype(tiny, images, key):
    a = tiny.network(jnp.asarray(_cell("wide"))).init(key, images)
    b = tiny.network(jnp.asarray(_cell("input_to_output_only"))).init(key, images)
    chex.assert_trees_all_equal(a, b)


@pytest.mark.parametrize("init", ["nb101", pytest.param("pytorch", marks=pytest.mark.slow)])
def test_initial_params_have_the_materialised_distribution(images, init):
    """Drawn at the supernet's widths, rescaled to the cell's vertex widths: every selected
    kernel has the std (nb101: N(0, 2 / (k^2 C_out)), linear N(0, 0.01^2)) or the bound
    (pytorch: U(+-1/sqrt(fan_in))) of the materialised layer, not of the widest one. The
    materialised network's own Linen initialisers draw the same distributions."""
    space = nb101.space(**TINY, init=init)
    genotype = _cell("wide")  # vertex widths 2 (of 8) and 4 (of 16)
    net = space.network(jnp.asarray(genotype))
    model = space.materialize(genotype)
    keys = jax.random.split(jax.random.key(0), 1024)  # >= 4096 draws of the smallest kernel
    draws = jax.jit(jax.vmap(lambda k: network.initial_params(net, k, images)))(keys)
    shapes = jax.eval_shape(model.init, jax.random.key(0), images)
    selected = base.restrict_params(
        draws["params"],
        jax.tree.map(lambda s: jax.ShapeDtypeStruct((1024, *s.shape), s.dtype), shapes["params"]),
    )
    own = jax.jit(jax.vmap(lambda k: model.init(k, images)["params"]))(keys)
    for source, params in (("data-driven", selected), ("materialised", own)):
        checked = 0
        for path, leaf in jax.tree_util.tree_leaves_with_path(params):
            name = f"{source} {jax.tree_util.keystr(path)}"
            if not layerwise.is_weight(path):
                if path[-1].key == "bias" and init == "nb101":
                    assert not np.asarray(leaf).any(), name
                continue
            w = np.asarray(leaf)
            shape = w.shape[1:]
            if init == "nb101":
                std = 0.01 if len(shape) == 2 else math.sqrt(2.0 / (shape[0] * shape[1] * shape[3]))
                np.testing.assert_allclose(w.std(), std, rtol=0.05, err_msg=name)
            else:
                bound = 1.0 / math.sqrt(math.prod(shape[:-1]))
                assert np.abs(w).max() <= bound * (1 + 1e-6), name
                np.testing.assert_allclose(np.abs(w).max(), bound, rtol=0.02, err_msg=name)
            checked += 1
        assert checked == 14  # per cell 2 vertex convs and 4 projections; stem; classifier


def test_shared_initialisations_are_rescaled_per_architecture(tiny, images, key):
    """Keys shared by the population (one draw, sliced per cell) and keys per cell give
    the same width-dependent scores: both paths rescale to the cell's own widths."""
    population = np.stack([_cell(name) for name in CELLS])
    l2 = proxies.get_proxy("l2_norm")
    keys = jax.random.split(key, 2)
    shared = proxies.score_population(l2, tiny, population, {"x": images}, keys)
    own = proxies.score_population(
        l2, tiny, population, {"x": images}, jnp.tile(keys[None], (len(population), 1))
    )
    np.testing.assert_allclose(shared, own, rtol=1e-6)
    net = tiny.network(population[0])
    unscaled = net.init(jax.random.split(keys[0])[0], images)
    drawn, rescaled = float(l2(net, unscaled, None, key)), float(shared[0, 0])
    assert abs(drawn - rescaled) > 1e-3 * rescaled


def test_batch_norm_override_makes_every_bn_the_identity(images, key):
    genotype = jnp.asarray(_cell("truncation"))
    plain = nb101.space(**TINY, batch_norm=False).network(genotype)
    params = plain.init(key, images)
    scaled = jax.tree_util.tree_map_with_path(
        lambda path, v: v * 3.0 + 1.0 if "bn" in jax.tree_util.keystr(path) else v, params
    )
    apply = jax.jit(plain.apply)
    np.testing.assert_allclose(apply(scaled, images), apply(params, images), rtol=1e-6)


def test_benchmark_table_is_keyed_by_the_nb101_notation(shared_data):
    table = benchmarks.Benchmark.from_csv(
        os.path.join(shared_data, TABLE), key="arch", key_columns=("adjacency_rows", "ops")
    )
    row = _table(shared_data)[7]
    genotype = nb101.from_naslib(row["naslib_tuple"])
    assert table.lookup("val_acc", [nb101.to_string(genotype)])[0] == float(row["val_acc"])
    with pytest.raises(errors.BenchmarkError, match=r"no key column\(s\) \['adjacency'\]"):
        benchmarks.Benchmark.from_csv(os.path.join(shared_data, TABLE), key_columns=("adjacency",))


@pytest.mark.slow
def test_experiment_scores_the_cells_of_the_nb101_table(tmp_path, shared_data):
    # The shipped config, shrunk: the table is keyed by its `adjacency_rows` and `ops`.
    config = load_config("configs/nb101_naswot.py", "size=4")
    config.space.kwargs = TINY
    config.data.source = "synthetic"
    config.data.image_size = 8
    config.data.batch_size = 4
    config.report.num_bootstrap = 20
    report = experiment.run(config, str(tmp_path))
    rows = [json.loads(line) for line in open(tmp_path / "scores.jsonl")]
    table = {f"{r['adjacency_rows']};{r['ops']}" for r in _table(shared_data)}
    assert len(rows) == 4 and all(r["arch"] in table for r in rows)
    assert report["correlations"]["naswot vs val_acc"]["n"] == 4
    assert "reference params vs val_acc" in report["correlations"]
