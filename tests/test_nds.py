"""NDS ResNet / ResNeXt spaces: notation, parameter counts, data-driven vs materialised."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxnas import errors, proxies, spaces
from jaxnas.proxies import kernels, naswot
from jaxnas.spaces import base, nds

# Tiny designs: width 4 equals the stem (identity shortcut in stage 1), 6 is not a power
# of two, groups 2 splits the bottleneck into blocks.
TINY_RESNET = nds.DesignSpace("tiny_resnet", "res_basic_block", depths=(1, 2, 3), widths=(4, 6, 8))
TINY_RESNEXT = nds.DesignSpace(
    "tiny_resnext",
    "res_bottleneck_block",
    depths=(1, 2),
    widths=(4, 8),
    bot_muls=(0.5, 1.0),
    groups=(1, 2),
)
STEM = 4


def expected_params(stages, bottleneck, stem=16, classes=10, in_channels=3):
    """Closed form, written independently of `nds.num_params`.

    stages: per stage (depth, width, bottleneck width, groups). A conv k x k from a to b
    channels has k*k*a*b weights (a/g per output for g groups) and its BN 2b; the first
    block of a stage has a 1x1 projection + BN when width or resolution changes.
    """
    total = 3 * 3 * in_channels * stem + 2 * stem
    prev = stem
    for s, (depth, w, wb, g) in enumerate(stages):
        for i in range(depth):
            a = prev if i == 0 else w
            if bottleneck:
                layers = [(1, a, wb, 1), (3, wb, wb, g), (1, wb, w, 1)]
            else:
                layers = [(3, a, w, 1), (3, w, w, 1)]
            if i == 0 and (a != w or s > 0):
                layers.append((1, a, w, 1))
            total += sum(
                k * k * (cin // groups) * cout + 2 * cout for k, cin, cout, groups in layers
            )
        prev = w
    return total + prev * classes + classes


def _stages(design, genotype):
    return [(s.depth, s.width, s.bottleneck_width, s.groups) for s in nds.decode(design, genotype)]


# ------------------------------------------------------------------------------ notation


def test_registered_spaces_have_the_nds_choice_sets_and_sizes():
    expected = {
        "nds_resnet": (1_259_712, (9, 12) * 3),
        "nds_resnext_a": (11_390_625, (5, 5, 3, 3) * 3),
        "nds_resnext_b": (52_734_375, (5, 5, 3, 5) * 3),
    }
    for name, (size, num_choices) in expected.items():
        space = spaces.SPACES[name]()
        assert space.name == name and space.size == size
        assert space.num_choices == num_choices


@pytest.mark.parametrize("name", ["nds_resnet", "nds_resnext_a", "nds_resnext_b"])
def test_strings_round_trip_on_samples(name, key):
    space = spaces.SPACES[name]()
    population = np.asarray(space.sample(key, 300))
    strings = [space.to_string(g) for g in population]
    back = np.stack([space.from_string(s) for s in strings])
    np.testing.assert_array_equal(back, population)


def test_notation_names_the_per_stage_values():
    space = nds.resnext_a()
    arch = "depths=1,4,16|widths=16,128,256|bot_muls=0.25,1,0.5|groups=4,1,2"
    genotype = space.from_string(arch)
    np.testing.assert_array_equal(genotype, [0, 0, 0, 2, 2, 3, 2, 0, 4, 4, 1, 1])
    assert space.to_string(genotype) == arch
    assert nds.decode(nds.DESIGN_SPACES["nds_resnext_a"], genotype)[0] == nds.StageArch(1, 16, 4, 4)


@pytest.mark.parametrize(
    "arch, message",
    [
        ("depths=1,2,4", "missing field 'widths'"),
        ("depths=1,2,4|widths=16,32,64|groups=1,1,1", "unknown field 'groups'"),
        ("depths=1,2|widths=16,32,64", "'depths' needs 3 values"),
        ("depths=1,2,4|widths=16,x,64", "value 'x' of field 'widths' is not a number"),
        ("depths=1,2.5,4|widths=16,32,64", "must be an integer"),
        ("depths=1,2,4|widths=16,20,64", "width of stage 2 20 is not a choice of nds_resnet"),
        ("depths=1,2,5|widths=16,32,64", "depth of stage 3 5 is not a choice"),
        ("depths 1,2,4|widths=16,32,64", "must look like 'name=v1,v2,...'"),
        ("depths=1,2,4|depths=1,2,4|widths=16,32,64", "appears twice"),
    ],
)
def test_malformed_strings_raise_a_message_naming_the_problem(arch, message):
    with pytest.raises(errors.ArchitectureError, match=message):
        nds.resnet().from_string(arch)


def test_bad_choices_and_names_raise_one_line_errors():
    with pytest.raises(errors.ArchitectureError, match="out of range"):
        nds.resnext_b().validate([0, 0, 0, 5] + [0] * 8)
    with pytest.raises(errors.ConfigError, match="unknown NDS block type 'res_dense_block'"):
        nds.DesignSpace("bad", "res_dense_block", depths=(1,), widths=(8,))
    with pytest.raises(errors.ConfigError, match="cannot be split into 4 groups"):
        nds.DesignSpace("bad", "res_bottleneck_block", (1,), (8,), (0.25,), (4,))
    with pytest.raises(errors.ConfigError, match="unknown NDS design space 'nds_vgg'"):
        nds.space("nds_vgg")
    with pytest.raises(errors.ConfigError, match="unknown NDS dispatch 'gather'"):
        nds.resnet(dispatch="gather")


def test_sample_and_mutate_stay_in_range_and_mutate_changes_one_position(key):
    space = nds.resnext_b()
    population = space.sample(key, 64)
    space.validate(np.asarray(population))
    children = jax.vmap(space.mutate)(jax.random.split(key, 64), population)
    assert np.all(np.sum(np.asarray(children) != np.asarray(population), axis=1) == 1)


# ------------------------------------------------------------------------ parameter counts


def test_resnet56_has_the_published_parameter_count():
    # He et al. 2016, Table 6: ResNet-56 on CIFAR-10 has 0.85M parameters (pycls' version
    # with projection shortcuts: 855,770; NDS' CIFAR complexity cap is 0.856M).
    r56 = nds.DesignSpace("r56", "res_basic_block", depths=(9,), widths=(16, 32, 64))
    genotype = np.asarray([0, 0, 0, 1, 0, 2])
    assert nds.num_params(r56, genotype) == expected_params(_stages(r56, genotype), False)
    assert nds.num_params(r56, genotype) == 855_770
    model = nds.space(design=r56).materialize(genotype)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    assert sum(int(np.prod(v.shape)) for v in jax.tree.leaves(shapes["params"])) == 855_770


def _masked_count(space, genotype, x):
    """Parameters counted through `param_mask` on the supernet's shapes (no compile)."""
    net = space.network(jnp.asarray(genotype))
    shapes = jax.eval_shape(net.init, jax.random.key(0), x)
    mask = net.param_mask(shapes)
    return sum(
        float(jnp.sum(jnp.broadcast_to(m, p.shape)))
        for p, m in zip(jax.tree.leaves(shapes), jax.tree.leaves(mask))
    )


@pytest.mark.parametrize(
    "name",
    [
        "nds_resnet",
        pytest.param("nds_resnext_a", marks=pytest.mark.slow),
        pytest.param("nds_resnext_b", marks=pytest.mark.slow),
    ],
)
def test_full_size_parameter_counts_follow_the_closed_form(name, key):
    space = spaces.SPACES[name]()
    design = nds.DESIGN_SPACES[name]
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    for genotype in np.asarray(space.sample(key, 1)):
        expected = expected_params(_stages(design, genotype), design.bottleneck)
        assert nds.num_params(design, genotype) == expected
        assert _masked_count(space, genotype, x) == expected
        model = space.materialize(genotype)
        shapes = jax.eval_shape(model.init, key, x)
        assert sum(int(np.prod(v.shape)) for v in jax.tree.leaves(shapes["params"])) == expected


# -------------------------------------------------------------- data-driven vs materialised


def naswot_of(taps):
    """NASWOT from taps: exactly what `naswot.naswot()` computes after its forward pass."""
    return kernels.logdet(kernels.hamming_kernel(taps))


@functools.cache
def _compiled(design, dispatch):
    """One jitted program per design and dispatch, traced at most once."""
    space = nds.space(design=design, stem_width=STEM, dispatch=dispatch)

    def run(genotype, batch, key):
        net = space.network(genotype)
        params = net.init(key, batch["x"])
        logits, taps = net.apply(params, batch["x"], taps=True)
        mask = net.param_mask(params)
        count = sum(
            jnp.sum(jnp.broadcast_to(m, p.shape))
            for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask))
        )
        # Parameters outside the architecture replaced by large values must change nothing.
        noisy = jax.tree.map(lambda p, m: p * m + (1.0 - m) * 100.0, params, mask)
        noisy_logits, noisy_taps = net.apply(noisy, batch["x"], taps=True)
        return dict(
            params=params,
            logits=logits,
            taps=taps,
            score=naswot_of(taps),
            count=count,
            noisy_logits=noisy_logits,
            noisy_score=naswot_of(noisy_taps),
        )

    # chex identifies a function by its source and name: make the name unique.
    run.__name__ = f"run_{design.name}_{dispatch}"
    return space, jax.jit(chex.assert_max_traces(run, n=1))


def naswot_numpy(taps: dict) -> float:
    """Independent NASWOT oracle: K = sum over units of [c_i == c_j]; log|K|."""
    kernel = 0.0
    for value in taps.values():
        codes = (np.asarray(value).reshape(value.shape[0], -1) > 0).astype(np.float64)
        kernel = kernel + codes @ codes.T + (1 - codes) @ (1 - codes).T
    return float(np.linalg.slogdet(kernel)[1])


def _materialised(space, genotype, params, batch):
    """Logits and taps of the materialised network on the restricted params (eager)."""
    model = space.materialize(genotype)
    shapes = jax.eval_shape(model.init, jax.random.key(0), batch["x"])
    variables = {
        "params": base.restrict_params(params["params"], shapes["params"]),
        "batch_stats": jax.tree.map(lambda s: jnp.zeros(s.shape), shapes["batch_stats"]),
    }
    logits, state = model.apply(variables, batch["x"], train=True, mutable=["batch_stats", "taps"])
    taps = {
        "/".join(path): tap.value
        for path, tap in traverse_util.flatten_dict(
            state["taps"], is_leaf=lambda _, v: not isinstance(v, dict)
        ).items()
    }
    return logits, taps


def _assert_same_network(space, design, run, genotype, batch, key):
    out = run(jnp.asarray(genotype), batch, key)
    logits, taps = _materialised(space, genotype, out["params"], batch)
    name = space.to_string(genotype)
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-4, atol=1e-5, err_msg=name)
    active = {n: t for n, t in out["taps"].items() if float(jnp.max(t.weight)) > 0}
    assert set(active) == set(taps), name
    for tap_name, tap in active.items():
        channels = taps[tap_name].shape[-1]
        weight = np.broadcast_to(np.asarray(tap.weight), tap.value.shape[1:])[0, 0]
        np.testing.assert_array_equal(weight, np.arange(weight.size) < channels, err_msg=tap_name)
        # Deep taps differ by float rounding amplified by BatchNorm over 8 x 2 x 2 values.
        np.testing.assert_allclose(
            tap.value[..., :channels], taps[tap_name], rtol=1e-4, atol=1e-4, err_msg=tap_name
        )
    np.testing.assert_allclose(out["score"], naswot_numpy(taps), rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(out["noisy_logits"], out["logits"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["noisy_score"], out["score"], rtol=1e-5)
    expected = expected_params(_stages(design, genotype), design.bottleneck, STEM)
    assert float(out["count"]) == expected, name


CASES = [
    (TINY_RESNET, [[2, 0, 2, 2, 1, 1], [0, 1, 1, 0, 2, 2]]),  # width 4 == stem; max depth
    (TINY_RESNEXT, [[1, 1, 1, 1, 1, 0, 0, 1, 0, 1, 0, 1], [0, 0, 0, 0] * 3]),
]


@pytest.mark.slow
@pytest.mark.parametrize("design, crafted", CASES, ids=["basic", "bottleneck"])
def test_data_driven_network_equals_materialised_network(design, crafted, tiny_batch):
    """Same params -> same logits, same taps on the architecture's units, same NASWOT; the
    supernet parameters outside the architecture never matter; `param_mask` counts the
    closed form. One compile serves every genotype (`assert_max_traces`)."""
    space, run = _compiled(design, "switch")
    genotypes = np.concatenate(
        [np.asarray(crafted), np.asarray(space.sample(jax.random.key(5), 3))]
    )
    for i, genotype in enumerate(genotypes):
        _assert_same_network(space, design, run, genotype, tiny_batch, jax.random.key(i))


def test_mask_dispatch_equals_switch_dispatch(tiny_batch):
    """The vmappable all-max-width network computes the same function (one compile)."""
    design, crafted = CASES[1]
    space, switch = _compiled(design, "switch")
    _, mask = _compiled(design, "mask")
    genotypes = np.concatenate(
        [np.asarray(crafted), np.asarray(space.sample(jax.random.key(8), 3))]
    )
    for i, genotype in enumerate(genotypes):
        a = switch(jnp.asarray(genotype), tiny_batch, jax.random.key(i))
        b = mask(jnp.asarray(genotype), tiny_batch, jax.random.key(i))
        np.testing.assert_allclose(b["logits"], a["logits"], rtol=1e-4, atol=1e-5)
        for name, tap in a["taps"].items():
            np.testing.assert_array_equal(b["taps"][name].weight, tap.weight, err_msg=name)
            weight = np.broadcast_to(np.asarray(tap.weight), tap.value.shape[1:])[None]
            np.testing.assert_allclose(
                np.asarray(b["taps"][name].value) * weight,
                np.asarray(tap.value) * weight,
                atol=1e-4,
                err_msg=name,
            )
        for field in ("score", "count", "noisy_score"):
            np.testing.assert_allclose(b[field], a[field], rtol=1e-5, err_msg=field)


def test_score_population_compiles_once_for_every_architecture(tiny_batch):
    space, run = _compiled(TINY_RESNET, "switch")
    proxy = naswot.naswot()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def scorer(population, keys):
        return proxies.score_population(proxy, space, population, tiny_batch, keys)

    keys = jax.random.split(jax.random.key(3), 2)
    for seed in range(2):
        population = space.sample(jax.random.key(seed), 3)
        scores = scorer(population, keys)
        chex.assert_shape(scores, (3, 2))
        # Scored with its own params (key split as `score_network` does), the proxy
        # equals NASWOT computed from the taps of the same network.
        key_init, _ = jax.random.split(keys[0])
        for p in range(3):
            expected = run(population[p], tiny_batch, key_init)["score"]
            np.testing.assert_allclose(scores[p, 0], expected, rtol=1e-5)


def test_mask_dispatch_vmaps_over_a_population(tiny_batch, key):
    space = nds.space(design=TINY_RESNEXT, stem_width=STEM, dispatch="mask")
    population = space.sample(key, 3)
    params = space.network(population[0]).init(key, tiny_batch["x"])

    @jax.jit
    def logits(genotypes):
        return jax.vmap(lambda g: space.network(g).apply(params, tiny_batch["x"]))(genotypes)

    batched = logits(population)
    _, run = _compiled(TINY_RESNEXT, "mask")
    for i in range(3):
        np.testing.assert_allclose(
            batched[i], run(population[i], tiny_batch, key)["logits"], atol=1e-5
        )


def test_batch_norm_override_makes_every_bn_the_identity(tiny_batch, key):
    x = tiny_batch["x"]
    genotype = jnp.asarray([1, 1, 1, 1, 1, 0, 0, 1, 0, 1, 0, 1])
    net = nds.space(design=TINY_RESNEXT, stem_width=STEM, batch_norm=False).network(genotype)
    params = net.init(key, x)
    scaled = jax.tree_util.tree_map_with_path(
        lambda path, v: v * 3.0 + 1.0 if "bn" in str(path) else v, params
    )
    apply = jax.jit(net.apply)
    np.testing.assert_allclose(apply(scaled, x), apply(params, x))


def test_restrict_takes_leading_corners_and_rejects_other_shapes():
    params = {"conv": {"kernel": jnp.arange(24.0).reshape(1, 2, 3, 4)}}
    small = base.restrict_params(
        params, {"conv": {"kernel": jax.ShapeDtypeStruct((1, 2, 2, 3), jnp.float32)}}
    )
    np.testing.assert_array_equal(small["conv"]["kernel"], params["conv"]["kernel"][:, :, :2, :3])
    with pytest.raises(errors.ShapeError, match="not a corner"):
        base.restrict_params(params, {"conv": {"kernel": jnp.zeros((1, 2, 3, 5))}})
    with pytest.raises(errors.ShapeError, match="conv/bias is not in the supernet"):
        base.restrict_params(params, {"conv": {"bias": jnp.zeros(4)}})
