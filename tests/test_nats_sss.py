"""NATS-Bench size space: notation, parameter counts, data-driven vs materialised networks."""

import functools
import itertools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import errors, network, proxies
from jaxnas.proxies import kernels
from jaxnas.spaces import nats_sss

from conftest import materialised_variables, probe_scores

EXTREMES = ("8:8:8:8:8", "64:64:64:64:64", "64:32:16:8:64", "8:64:8:64:8")


@pytest.fixture(scope="module")
def space():
    return nats_sss.space()


@pytest.fixture(scope="module")
def images():
    return jax.random.normal(jax.random.key(42), (4, 8, 8, 3), jnp.float32)


def test_strings_round_trip_over_the_whole_space_in_benchmark_index_order(space):
    cells = space.enumerate()
    chex.assert_shape(cells, (32768, 5))
    strings = [space.to_string(g) for g in cells]
    # NATS-Bench numbers its architectures as `traverse_net` lists them (main-sss.py).
    expected = [":".join(map(str, c)) for c in itertools.product(nats_sss.CHANNELS, repeat=5)]
    assert strings == expected
    back = np.stack([space.from_string(s) for s in strings])
    np.testing.assert_array_equal(back, cells)


@pytest.mark.parametrize(
    "arch, message",
    [
        ("64:32:16:8", "expected 5 widths"),
        ("64:32:16:8:64:8", "expected 5 widths"),
        ("64-32-16-8-64", "expected 5 widths"),
        ("64:32:16:8:x", "expected 5 widths"),
        ("64:32:12:8:64", "width 12 of layer 2 is not one of"),
    ],
)
def test_malformed_strings_raise_a_message_naming_the_problem(arch, message):
    with pytest.raises(errors.ArchitectureError, match=message) as info:
        nats_sss.from_string(arch)
    assert "\n" not in str(info.value)


def _formula(c, num_classes=10):
    """Parameters of the NATS-SSS network with widths c0..c4 (CIFAR-10, 10 classes).

    conv-BN(k, a -> b) = k*k*a*b + 2b (bias-free conv, BN scale and bias). Stem: 3x3 conv-BN
    3 -> c0. Cell (a -> b) with the fixed topology: two 3x3 conv-BN edges from node 0
    (a -> b), three between inner nodes (b -> b), and the skip edge from node 0, a 1x1
    conv-BN when a != b. Reduction block (a -> b): 3x3 conv-BN a -> b (stride 2), 3x3
    conv-BN b -> b, 1x1 bias-free conv a -> b on the pooled shortcut. Head: BN(c4) and a
    linear layer c4 -> classes with bias.
    """

    def conv_bn(k, a, b):
        return k * k * a * b + 2 * b

    def cell(a, b):
        return 2 * conv_bn(3, a, b) + 3 * conv_bn(3, b, b) + (conv_bn(1, a, b) if a != b else 0)

    def reduction(a, b):
        return conv_bn(3, a, b) + conv_bn(3, b, b) + a * b

    return (
        conv_bn(3, 3, c[0])
        + cell(c[0], c[0])
        + reduction(c[0], c[1])
        + cell(c[1], c[2])
        + reduction(c[2], c[3])
        + cell(c[3], c[4])
        + 2 * c[4]
        + c[4] * num_classes
        + num_classes
    )


def _masked_count(params, mask):
    total = 0.0
    for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask)):
        total = total + jnp.sum(m) * (math.prod(p.shape) / m.size)
    return total


def test_parameter_counts_follow_the_formula_through_param_mask_and_materialised_net(
    space, images, key
):
    params = space.network(jnp.zeros(5, jnp.int32)).init(key, images)
    count = jax.jit(lambda g: _masked_count(params, space.network(g).param_mask(params)))
    strings = list(EXTREMES) + [space.to_string(g) for g in space.sample(key, 8)]
    for arch in strings:
        genotype = space.from_string(arch)
        widths = [int(w) for w in arch.split(":")]
        expected = _formula(widths)
        assert float(count(jnp.asarray(genotype))) == expected, arch
        shapes = jax.eval_shape(space.materialize(genotype).init, key, images)["params"]
        assert sum(math.prod(v.shape) for v in jax.tree.leaves(shapes)) == expected, arch


@pytest.fixture(scope="module")
def data_driven(space):
    """(params, logits, taps, NASWOT score) of the data-driven network; one compile."""

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(genotype, x, key):
        net = space.network(genotype)
        params = network.initial_params(net, key, x)
        logits, taps = net.apply(params, x, taps=True)
        return params, logits, taps, kernels.logdet(kernels.hamming_kernel(taps))

    chex.clear_trace_counter()
    return run


def _naswot_numpy(taps):
    kernel = 0.0
    for tap in taps.values():
        codes = (np.asarray(tap.value) > 0).reshape(tap.value.shape[0], -1).astype(np.float64)
        kernel = kernel + codes @ codes.T + (1 - codes) @ (1 - codes).T
    return np.linalg.slogdet(kernel)[1]


@pytest.mark.slow
def test_data_driven_network_equals_materialised_network(space, data_driven, images):
    """Same parameters in, same logits, taps and NASWOT score out: masked channels never
    enter a kernel."""
    cells = [space.from_string(a) for a in EXTREMES] + list(space.sample(jax.random.key(7), 3))
    for i, genotype in enumerate(np.asarray(cells)):
        params, logits, taps, score = data_driven(jnp.asarray(genotype), images, jax.random.key(i))
        model = space.materialize(genotype)
        fixed = materialised_variables(model, params, images)
        fixed_logits, state = model.apply(
            fixed, images, train=True, mutable=["batch_stats", "taps"]
        )
        np.testing.assert_allclose(logits, fixed_logits, rtol=1e-4, atol=1e-4)
        fixed_taps = network.collect_taps(state["taps"])
        assert set(taps) == set(fixed_taps)
        for name, tap in taps.items():
            width = fixed_taps[name].value.shape[-1]
            weight = np.broadcast_to(np.asarray(tap.weight), tap.value.shape[-1:])
            np.testing.assert_array_equal(weight[:width], 1.0, err_msg=name)
            np.testing.assert_array_equal(weight[width:], 0.0, err_msg=name)
            np.testing.assert_allclose(
                tap.value[..., :width], fixed_taps[name].value, rtol=1e-4, atol=1e-4, err_msg=name
            )
        np.testing.assert_allclose(score, _naswot_numpy(fixed_taps), rtol=1e-5)


def test_score_population_compiles_once_and_vmapped_chunks_agree(space, data_driven, images):
    chex.clear_trace_counter()
    naswot = proxies.get_proxy("naswot")
    keys = jax.random.split(jax.random.key(3), 1)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def score(population):
        return proxies.score_population(naswot, space, population, {"x": images}, keys)

    first = np.stack([space.from_string(a) for a in EXTREMES])
    second = np.asarray(space.sample(jax.random.key(5), 4))
    scores = np.concatenate([score(first), score(second)])
    chex.assert_shape(scores, (8, 1))
    key_init, _ = jax.random.split(keys[0])
    for genotype, value in zip(np.concatenate([first, second]), scores[:, 0]):
        expected = data_driven(jnp.asarray(genotype), images, key_init)[-1]
        np.testing.assert_allclose(value, expected, rtol=1e-6)
    chunked = jax.jit(
        lambda p: proxies.score_population(naswot, space, p, {"x": images}, keys, chunk_size=2)
    )(first)
    np.testing.assert_allclose(chunked, scores[:4], rtol=1e-5)


def test_parameters_do_not_depend_on_the_genotype(space, images, key):
    a = space.network(jnp.zeros(5, jnp.int32)).init(key, images)
    b = space.network(jnp.full(5, 7, jnp.int32)).init(key, images)
    chex.assert_trees_all_equal(a, b)


def test_batch_norm_override_makes_every_bn_the_identity(images, key):
    genotype = jnp.asarray(nats_sss.from_string("64:32:16:8:64"))
    plain = nats_sss.space(batch_norm=False).network(genotype)
    params = plain.init(key, images)
    scaled = jax.tree_util.tree_map_with_path(
        lambda path, v: (
            v * 3.0 + 1.0
            if "bn" in jax.tree_util.keystr(path) or "lastact" in jax.tree_util.keystr(path)
            else v
        ),
        params,
    )
    apply = jax.jit(plain.apply)
    np.testing.assert_allclose(apply(scaled, images), apply(params, images), rtol=1e-6)


def _flops_formula(c, size, num_classes=10):
    """FLOPs per image of a NATS-SSS network on size x size images, tensorwatch's rules:
    conv multiply-accumulates, BatchNorm 2 per element, ReLU 1, k x k pooling k^2 per
    output, global pooling (H + 1)(W + 1) per channel; written from the module's
    docstring and `nats_sss.TOPOLOGY` (node 1: conv from 0; node 2: convs from 0 and 1;
    node 3: skip from 0, convs from 1 and 2)."""

    def relu_conv_bn(k, a, b, pixels_in, pixels_out):
        return a * pixels_in + k * k * a * b * pixels_out + 2 * b * pixels_out

    def cell(a, b, pixels):
        skip = a * b * pixels + 2 * b * pixels if a != b else 0
        return (
            2 * relu_conv_bn(3, a, b, pixels, pixels)
            + 3 * relu_conv_bn(3, b, b, pixels, pixels)
            + skip
        )

    def reduction(a, b, pixels):
        half = pixels // 4
        return (
            relu_conv_bn(3, a, b, pixels, half)
            + relu_conv_bn(3, b, b, half, half)
            + 4 * a * half  # 2x2 average pool of the shortcut
            + a * b * half  # its 1x1 conv
        )

    p = size * size
    last = size // 4
    return (
        9 * 3 * c[0] * p
        + 2 * c[0] * p
        + cell(c[0], c[0], p)
        + reduction(c[0], c[1], p)
        + cell(c[1], c[2], p // 4)
        + reduction(c[2], c[3], p // 4)
        + cell(c[3], c[4], p // 16)
        + 3 * c[4] * last * last  # lastact BatchNorm and ReLU
        + c[4] * (last + 1) ** 2
        + c[4] * num_classes
    )


def test_probe_proxies_equal_the_materialised_network_and_flops_the_formula(space, images, key):
    """fisher, flops and the Zen-score of the masked 64-wide network equal those of the
    network built at the architecture's widths (masked channels count in neither FLOPs,
    fan-ins, gradients nor BatchNorm statistics), and flops equals the formula."""
    batch = {"x": images, "y": jnp.arange(images.shape[0]) % 10}
    mixed = images + 0.01 * jax.random.normal(jax.random.key(1), images.shape)
    scores = probe_scores(batch, mixed)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def data_driven(genotype):
        net = space.network(genotype)
        params = network.initial_params(net, key, images)
        return params, scores(net, params)

    chex.clear_trace_counter()
    for arch in ("64:32:16:8:64", "8:64:8:64:8", "16:16:24:24:56"):
        genotype = space.from_string(arch)
        params, ours = data_driven(jnp.asarray(genotype))
        model = space.materialize(genotype)
        variables = materialised_variables(model, params, images)
        fixed = jax.jit(functools.partial(scores, network.from_linen(model, train=True)))(variables)
        for name, got, want in zip(("fisher", "flops", "zen"), ours, fixed):
            assert np.isfinite(want) and (name == "zen" or want > 0), (name, arch)
            np.testing.assert_allclose(got, want, rtol=1e-4, err_msg=f"{name}: {arch}")
        widths = [int(w) for w in arch.split(":")]
        np.testing.assert_allclose(ours[1] * 1e6, _flops_formula(widths, 8), rtol=1e-6)
