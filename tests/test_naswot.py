"""NASWOT: golden values from the independent PyTorch oracle, kernel identities, edge cases."""

import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from flax import traverse_util

from jaxnas import network, proxies, types
from jaxnas.proxies import kernels
from jaxnas.spaces import nb201

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "naswot_nb201_golden.npz")


def _golden_case(fixture, i):
    """(space, genotype, params, x): the oracle's weights loaded into the supernet."""
    space = nb201.space(channels=4, cells_per_stage=1)
    x = jnp.asarray(fixture["x_nhwc"])
    genotype = jnp.asarray(fixture["genotypes"][i])
    net = space.network(genotype)
    flat = traverse_util.flatten_dict(net.init(jax.random.key(5), x)["params"], sep="/")
    prefix = f"params_{i}/"
    loaded = [k for k in fixture.files if k.startswith(prefix)]
    for k in loaded:
        flat[k[len(prefix) :]] = jnp.asarray(fixture[k])  # unselected ops keep random weights
    params = {"params": traverse_util.unflatten_dict(flat, sep="/")}
    return net, params, x


class GoldenTest(parameterized.TestCase):
    """Values written by `scripts/torch_nb201_oracle.py golden` (hook-based PyTorch)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fixture = np.load(FIXTURE)

    @parameterized.parameters(0, 1, 2, 3)
    def test_logits_match_the_pytorch_network(self, i):
        net, params, x = _golden_case(self.fixture, i)
        logits = jax.jit(net.apply)(params, x)
        np.testing.assert_allclose(logits, self.fixture[f"logits_{i}"], atol=1e-5)

    @parameterized.parameters((i, double) for i in range(4) for double in (False, True))
    def test_naswot_matches_the_hook_based_oracle(self, i, double):
        net, params, x = _golden_case(self.fixture, i)
        proxy = proxies.naswot.naswot(count_relu_conv_bn_twice=double)
        score = jax.jit(lambda p: proxy(net, p, {"x": x}, None))(params)
        expected = self.fixture[f"naswot_{'double' if double else 'single'}_{i}"]
        if np.isinf(expected):
            self.assertEqual(float(score), float(expected))  # all-`none` cell: singular K
        else:
            np.testing.assert_allclose(score, expected, rtol=1e-6)

    @parameterized.parameters(0, 1, 2)
    def test_forward_only_naswot_matches_the_oracle_without_its_backward_pass(self, i):
        # The reference's backward pass only arms its hooks (reference.md §F.4); ours has
        # none, so our score must equal the oracle's forward-only score too.
        net, params, x = _golden_case(self.fixture, i)
        proxy = proxies.naswot.naswot(count_relu_conv_bn_twice=False)
        score = jax.jit(lambda p: proxy(net, p, {"x": x}, None))(params)
        np.testing.assert_allclose(score, self.fixture[f"naswot_forward_only_{i}"], rtol=1e-6)


class KernelTest(chex.TestCase):
    def _taps(self, key):
        k1, k2 = jax.random.split(key)
        return {
            "a": types.Tap(jax.random.normal(k1, (6, 4, 4, 3)), jnp.asarray(1.0)),
            "b": types.Tap(
                jax.random.normal(k2, (6, 2, 2, 5)), jnp.asarray([1.0, 0.0, 2.0, 1.0, 0.0])
            ),
        }

    @chex.variants(with_jit=True, without_jit=True)
    def test_hamming_kernel_equals_brute_force_agreement_counts(self):
        taps = self._taps(jax.random.key(0))
        kernel = self.variant(kernels.hamming_kernel)(taps)
        expected = np.zeros((6, 6))
        for tap in taps.values():
            codes = np.asarray(tap.value > 0).reshape(6, -1)
            w = np.broadcast_to(np.asarray(tap.weight), tap.value.shape[1:]).reshape(-1)
            for i in range(6):
                for j in range(6):
                    expected[i, j] += np.sum(w * (codes[i] == codes[j]))
        np.testing.assert_array_equal(kernel, expected)

    def test_one_shared_weight_on_packed_bits_equals_the_weight_per_unit(self):
        # A scalar weight takes the bit-packed count; 1,001 units leave a part word.
        value = jax.random.normal(jax.random.key(4), (9, 7, 11, 13))
        shared = kernels.hamming_kernel({"a": types.Tap(value, jnp.asarray(3.0))})
        per_unit = kernels.hamming_kernel({"a": types.Tap(value, jnp.full((7, 11, 13), 3.0))})
        chex.assert_shape(shared, (9, 9))
        np.testing.assert_array_equal(shared, per_unit)

    def test_a_tensor_tapped_twice_counts_twice(self):
        value = jax.random.normal(jax.random.key(1), (5, 3, 3, 2))
        once = kernels.hamming_kernel({"a": types.Tap(value, jnp.asarray(1.0))})
        twice = kernels.hamming_kernel(
            {"a": types.Tap(value, jnp.asarray(1.0)), "b": types.Tap(value, jnp.asarray(1.0))}
        )
        np.testing.assert_array_equal(twice, 2 * once)

    def test_zero_weight_taps_do_not_count(self):
        taps = self._taps(jax.random.key(2))
        dead = {
            **taps,
            "c": types.Tap(jax.random.normal(jax.random.key(3), (6, 7)), jnp.asarray(0.0)),
        }
        np.testing.assert_array_equal(kernels.hamming_kernel(dead), kernels.hamming_kernel(taps))

    def test_identical_codes_give_minus_infinity_not_nan(self):
        tap = types.Tap(jnp.ones((4, 10)), jnp.asarray(1.0))
        self.assertEqual(float(kernels.logdet(kernels.hamming_kernel({"a": tap}))), -np.inf)


class NaswotProxyTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_returns_a_finite_scalar_on_a_real_cell(self):
        space = nb201.space(channels=4, cells_per_stage=1)
        x = jax.random.normal(jax.random.key(0), (8, 8, 8, 3))
        net = space.network(jnp.asarray([3, 2, 4, 1, 3, 0]))
        params = net.init(jax.random.key(1), x)
        score = self.variant(lambda p: proxies.get_proxy("naswot")(net, p, {"x": x}, None))(params)
        chex.assert_shape(score, ())
        chex.assert_tree_all_finite(score)

    def test_non_finite_network_output_scores_nan(self):
        def apply(params, x, *, taps=False):
            logits = jnp.full((x.shape[0], 2), jnp.inf)
            return (logits, {"t": types.Tap(x, jnp.asarray(1.0))}) if taps else logits

        net = network.Network(lambda key, x: {}, apply)
        x = jax.random.normal(jax.random.key(0), (4, 3))
        self.assertTrue(np.isnan(proxies.get_proxy("naswot")(net, {}, {"x": x}, None)))


def test_proxy_spec_parsing_and_errors():
    assert proxies.parse_spec("naswot") == ("naswot", {})
    assert proxies.parse_spec("naswot(count_relu_conv_bn_twice=True)") == (
        "naswot",
        {"count_relu_conv_bn_twice": True},
    )
    assert proxies.get_proxy("naswot") is proxies.get_proxy("naswot")
    with pytest.raises(proxies.errors.ConfigError, match="unknown proxy 'nswot'"):
        proxies.get_proxy("nswot")
    with pytest.raises(proxies.errors.ConfigError, match="unexpected keyword"):
        proxies.get_proxy("naswot(bogus=1)")
