"""AutoFormer ViT spaces: notation, parameter counts, data-driven supernet vs materialised."""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxnas import errors, spaces
from jaxnas.proxies import kernels
from jaxnas.spaces import autoformer as af
from jaxnas.spaces import base

from conftest import TINY_VIT, assert_scoring_compiles_once

# A tiny space: 16x16 images in 4x4 patches (17 tokens), relative distances up to 3
# clipped at 2, every dimension masked below a larger supernet.
SETTINGS = dict(patch_size=4, num_classes=10, max_relative_position=2)

# The published subnets (experiments/subnet/AutoFormer-{T,S,B}.yaml) and their sizes
# in the AutoFormer README (params, millions).
PUBLISHED_MILLIONS = {"tiny": 5.8, "small": 22.9, "base": 53.7}


def expected_params(embed, heads, ratios, image=224, patch=16, classes=1000, head_dim=64, rel=14):
    """Closed form, written independently of `af.num_params`: patch conv (weight + bias),
    class token and (N + 1) position embeddings; per layer two LayerNorms, q/k/v/proj
    with biases, fc1/fc2 with biases and four relative-position tables (2 rel + 2 rows);
    final LayerNorm and classifier."""
    n = (image // patch) ** 2
    total = patch * patch * 3 * embed + embed + embed + (n + 1) * embed
    for h, r in zip(heads, ratios):
        qkv = h * head_dim
        hidden = int(embed * r)
        total += 2 * (2 * embed)
        total += 3 * (embed * qkv + qkv) + (qkv * embed + embed)
        total += (embed * hidden + hidden) + (hidden * embed + embed)
        total += 4 * (2 * rel + 2) * head_dim if rel else 0
    return total + 2 * embed + embed * classes + classes


@pytest.fixture(scope="module")
def vit_batch():
    return {"x": jax.random.normal(jax.random.key(4), (8, 16, 16, 3), jnp.float32)}


# ------------------------------------------------------------------------------ notation


def test_variants_have_autoformer_choice_sets_and_sizes():
    sizes = {
        "tiny": 3 * sum(4**d for d in (12, 13, 14)),
        "small": 3 * sum(9**d for d in (12, 13, 14)),
        "base": 3 * sum(9**d for d in (14, 15, 16)),
    }
    for variant, size in sizes.items():
        space = spaces.SPACES["autoformer"](variant)
        vit = af.VARIANTS[variant]
        assert space.size == size
        assert len(space.num_choices) == 2 + 2 * vit.max_depth
        assert vit.max_heads * vit.head_dim == vit.max_embed_dim  # change_qkv supernet


@pytest.mark.parametrize("variant", ["tiny", "small", "base"])
def test_published_subnets_have_the_stated_parameter_counts(variant):
    # AutoFormer-T uses MLP ratio 3.0 in four layers, outside the tiny supernet's
    # declared choices (3.5, 4): count it in a space that includes 3.0.
    vit = dataclasses.replace(af.VARIANTS[variant], mlp_ratios=(3.0, 3.5, 4.0))
    space = af.space(vit=vit)
    genotype = space.from_string(af.SEARCHED[variant])
    arch = af.decode(vit, genotype)
    expected = expected_params(arch.embed_dim, arch.num_heads, arch.mlp_ratios)
    assert af.num_params(vit, genotype) == expected
    assert abs(expected / 1e6 - PUBLISHED_MILLIONS[variant]) < 0.1
    x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
    shapes = jax.eval_shape(space.materialize(genotype).init, jax.random.key(0), x)
    assert sum(int(np.prod(v.shape)) for v in jax.tree.leaves(shapes["params"])) == expected
    net = space.network(jnp.asarray(genotype))
    supernet = jax.eval_shape(net.init, jax.random.key(0), x)
    masks = net.param_mask(supernet)
    counted = sum(
        float(jnp.sum(jnp.broadcast_to(m, p.shape)))
        for p, m in zip(jax.tree.leaves(supernet), jax.tree.leaves(masks))
    )
    assert counted == expected


@pytest.mark.parametrize("variant", ["tiny", "small", "base"])
def test_strings_round_trip_and_samples_are_canonical(variant, key):
    space = af.space(variant)
    population = np.asarray(space.sample(key, 100))
    np.testing.assert_array_equal(
        np.asarray(af.canonical(af.VARIANTS[variant], population)), population
    )
    back = np.stack([space.from_string(space.to_string(g)) for g in population])
    np.testing.assert_array_equal(back, population)


def test_notation_lists_one_value_per_present_layer():
    space = af.space("small")
    arch = "embed_dim=320|depth=12|num_heads=" + ",".join(["5"] * 11 + ["7"])
    arch += "|mlp_ratio=" + ",".join(["3"] * 11 + ["4"])
    genotype = space.from_string(arch)
    assert space.to_string(genotype) == arch
    assert genotype[2 + 11] == 2 and genotype[2 + 14 + 11] == 2
    assert not genotype[2 + 12 : 2 + 14].any() and not genotype[2 + 14 + 12 :].any()


@pytest.mark.parametrize(
    "arch, message",
    [
        ("embed_dim=192|depth=12|num_heads=3", "missing field 'mlp_ratio'"),
        ("embed_dim=192|depth=12|heads=3|mlp_ratio=4", "unknown field 'heads'"),
        ("embed_dim=192|depth=1|num_heads=3|mlp_ratio=4", "depth 1 is not a choice"),
        ("embed_dim=200|depth=12|num_heads=3|mlp_ratio=4", "embed_dim 200 is not a choice"),
        ("embed_dim=192,216|depth=12|num_heads=3|mlp_ratio=4", "'embed_dim' takes one value"),
        ("embed_dim=192|depth=12|num_heads=3,3|mlp_ratio=4,4", "'num_heads' needs 12 values"),
        ("embed_dim=192|depth=twelve|num_heads=3|mlp_ratio=4", "'twelve' of field 'depth'"),
        (
            "embed_dim=192|depth=12|num_heads=" + "3," * 11 + "5|mlp_ratio=" + "4," * 11 + "4",
            "num_heads of layer 11 5 is not a choice",
        ),
        (
            "embed_dim=192|depth=12|num_heads=" + "3," * 11 + "3|mlp_ratio=" + "4," * 11 + "3",
            "mlp_ratio of layer 11 3 is not a choice of autoformer-tiny; choices: 3.5, 4",
        ),
        ("embed_dim192", "must look like 'name=v1,v2,...'"),
    ],
)
def test_malformed_strings_raise_a_message_naming_the_problem(arch, message):
    with pytest.raises(errors.ArchitectureError, match=message):
        af.space("tiny").from_string(arch)


def test_bad_names_settings_and_images_raise_one_line_errors(key):
    with pytest.raises(errors.ConfigError, match="unknown AutoFormer variant 'huge'"):
        af.space("huge")
    space = af.space(vit=TINY_VIT, **SETTINGS)
    genotype = jnp.zeros(len(space.num_choices), jnp.int32)
    net = space.network(genotype)
    with pytest.raises(errors.ShapeError, match=r"divisible by 4 \(the patch size\)"):
        net.init(key, jnp.zeros((1, 18, 18, 3)))
    with pytest.raises(errors.ShapeError, match="square images"):
        net.init(key, jnp.zeros((1, 16, 8, 3)))


def test_enumerate_lists_every_architecture_once():
    space = af.space(vit=TINY_VIT, **SETTINGS)
    archs = space.enumerate()
    assert len(archs) == space.size == 2 * (4 + 16)
    strings = [space.to_string(g) for g in archs]
    assert len(set(strings)) == space.size
    np.testing.assert_array_equal(np.stack([space.from_string(s) for s in strings]), archs)


def test_mutate_changes_the_architecture_and_keeps_genotypes_canonical(key):
    space = af.space("small")
    population = space.sample(key, 64)
    children = jax.jit(jax.vmap(space.mutate))(jax.random.split(key, 64), population)
    space.validate(np.asarray(children))
    np.testing.assert_array_equal(
        np.asarray(af.canonical(af.VARIANTS["small"], children)), np.asarray(children)
    )
    for parent, child in zip(np.asarray(population), np.asarray(children)):
        assert space.to_string(parent) != space.to_string(child)


def test_relative_indices_follow_autoformer():
    rows_v, rows_h = af.relative_indices(17, 2)
    side, clip = 4, 2
    for q in range(17):
        for k in range(17):
            if q == 0 or k == 0:
                assert rows_v[q, k] == rows_h[q, k] == 0
                continue
            (qr, qc), (kr, kc) = divmod(q - 1, side), divmod(k - 1, side)
            assert rows_v[q, k] == min(max(kr - qr, -clip), clip) + clip + 1
            assert rows_h[q, k] == min(max(kc - qc, -clip), clip) + clip + 1


# -------------------------------------------------------------- data-driven vs materialised


@functools.cache
def _compiled(relative_position, global_pool):
    space = af.space(
        vit=TINY_VIT, **SETTINGS, relative_position=relative_position, global_pool=global_pool
    )

    def run(genotype, batch, key):
        net = space.network(genotype)
        params = net.init(key, batch["x"])
        logits, taps = net.apply(params, batch["x"], taps=True)
        mask = net.param_mask(params)
        count = sum(
            jnp.sum(jnp.broadcast_to(m, p.shape))
            for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask))
        )
        noisy = jax.tree.map(lambda p, m: p * m + (1.0 - m) * 100.0, params, mask)
        noisy_logits, noisy_taps = net.apply(noisy, batch["x"], taps=True)
        return dict(
            params=params,
            logits=logits,
            taps=taps,
            score=kernels.logdet(kernels.hamming_kernel(taps)),
            count=count,
            noisy_logits=noisy_logits,
            noisy_score=kernels.logdet(kernels.hamming_kernel(noisy_taps)),
        )

    run.__name__ = f"run_vit_{relative_position}_{global_pool}"  # unique for chex
    return space, jax.jit(chex.assert_max_traces(run, n=1))


def _naswot_numpy(values) -> float:
    kernel = 0.0
    for value in values:
        codes = (np.asarray(value).reshape(value.shape[0], -1) > 0).astype(np.float64)
        kernel = kernel + codes @ codes.T + (1 - codes) @ (1 - codes).T
    return float(np.linalg.slogdet(kernel)[1])


CRAFTED = [
    [1, 1, 1, 0, 0, 1],  # embed 12, depth 2, heads (2, 1), ratios (1.0, 2.5)
    [0, 0, 0, 0, 1, 0],  # embed 8, depth 1: layer 1 absent
    [1, 1, 1, 1, 1, 1],  # the largest subnet
]


@pytest.mark.parametrize(
    "relative_position, global_pool",
    [(True, True), (False, False)],
    ids=["autoformer", "plain-vit"],
)
@pytest.mark.slow
def test_data_driven_supernet_equals_materialised_network(
    relative_position, global_pool, vit_batch
):
    """Same params -> same logits, same GeLU taps on the present hidden units, same
    NASWOT; parameters outside the subnet never matter; `param_mask` counts the closed
    form; one compile serves every subnet."""
    space, run = _compiled(relative_position, global_pool)
    genotypes = np.concatenate(
        [np.asarray(CRAFTED), np.asarray(space.sample(jax.random.key(2), 3))]
    )
    for i, genotype in enumerate(genotypes):
        out = run(jnp.asarray(genotype), vit_batch, jax.random.key(i))
        model = space.materialize(genotype)
        shapes = jax.eval_shape(model.init, jax.random.key(0), vit_batch["x"])
        variables = {"params": base.restrict_params(out["params"]["params"], shapes["params"])}
        logits, state = model.apply(variables, vit_batch["x"], mutable=["taps"])
        name = space.to_string(genotype)
        np.testing.assert_allclose(out["logits"], logits, rtol=1e-4, atol=1e-5, err_msg=name)
        fixed = {
            "/".join(p): t.value
            for p, t in traverse_util.flatten_dict(
                state["taps"], is_leaf=lambda _, v: not isinstance(v, dict)
            ).items()
        }
        active = {n: t for n, t in out["taps"].items() if float(jnp.max(t.weight)) > 0}
        assert set(active) == set(fixed), name
        for tap_name, tap in active.items():
            units = fixed[tap_name].shape[-1]
            np.testing.assert_array_equal(tap.weight, np.arange(tap.weight.size) < units)
            np.testing.assert_allclose(
                tap.value[..., :units], fixed[tap_name], rtol=1e-4, atol=1e-5, err_msg=tap_name
            )
        np.testing.assert_allclose(out["score"], _naswot_numpy(fixed.values()), rtol=1e-5)
        np.testing.assert_allclose(out["noisy_logits"], out["logits"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out["noisy_score"], out["score"], rtol=1e-5)
        arch = af.decode(TINY_VIT, genotype)
        expected = expected_params(
            arch.embed_dim,
            arch.num_heads,
            arch.mlp_ratios,
            16,
            4,
            10,
            4,
            2 if relative_position else 0,
        )
        assert (
            float(out["count"])
            == expected
            == af.num_params(
                TINY_VIT,
                genotype,
                16,
                4,
                10,
                relative_position=relative_position,
                max_relative_position=2,
            )
        ), name


def test_batch_norm_override_is_accepted_and_changes_nothing(vit_batch, key):
    space, run = _compiled(True, True)
    genotype = jnp.asarray(CRAFTED[0])
    out = run(genotype, vit_batch, key)
    x = vit_batch["x"]
    plain = jax.jit(space.network(genotype, batch_norm=False).apply)(out["params"], x)
    default = jax.jit(space.network(genotype).apply)(out["params"], x)
    np.testing.assert_array_equal(plain, default)


def test_init_follows_autoformer(vit_batch, key):
    space, run = _compiled(True, True)
    params = traverse_util.flatten_dict(run(jnp.asarray(CRAFTED[0]), vit_batch, key)["params"])
    normal = np.concatenate(
        [
            np.ravel(v)
            for k, v in params.items()
            if k[-1] in ("kernel", "pos_embed", "table_v") and "patch_embed" not in k
        ]
    )
    assert abs(normal.std() - af.INIT_STD) < 0.002 and abs(normal.mean()) < 0.002
    bound = 1.0 / np.sqrt(4 * 4 * 3)
    patch = params[("params", "patch_embed", "kernel")]
    assert np.abs(patch).max() <= bound and np.abs(patch).max() > 0.9 * bound
    assert not np.any(params[("params", "blocks_0", "fc1", "bias")])
    np.testing.assert_array_equal(params[("params", "norm", "scale")], 1.0)


def test_scoring_compiles_once_for_every_population(vit_batch):
    assert_scoring_compiles_once(af.space(vit=TINY_VIT, **SETTINGS), vit_batch["x"])
