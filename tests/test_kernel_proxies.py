"""Kernel and gradient proxies: golden values from the PyTorch oracle, NTK implementations,
edge cases.

Golden values come from `scripts/torch_kernel_oracle.py golden` (per-sample backward
loops, hooks, float64 NumPy). Every proxy of a golden network is computed by one
function of (params, genotype, x, ...), so one compilation serves every case.
"""

import functools
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from flax import traverse_util

from jaxnas import data, errors, proxies
from jaxnas.proxies import aznas, blocks, gradients, ntk, regions
from jaxnas.spaces import autoformer as af
from jaxnas.spaces import base, nb201

from conftest import TINY_VIT

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "kernel_proxies_golden.npz")
GOLDEN = dict(channels=4, cells_per_stage=1, num_stages=2)
MICRO = dict(channels=1, cells_per_stage=1, num_stages=2, stem=False, in_channels=1)
SPECS = {
    "knas_paper": "knas",
    "knas_code": "knas(variant='code')",
    "zico": "zico",
    "swap": "swap(init='network')",
    "lswag": "lswag",
    "meco": "meco",
}


# XLA's optimisations cost more compile time than these tiny programs run.
pytestmark = pytest.mark.usefixtures("fast_compile")


@functools.cache
def fixture():
    return dict(np.load(FIXTURE))


def load_params(space, genotype, x, prefix):
    """The oracle's weights (float16-exact) in the supernet; unselected ops stay random."""
    f = fixture()
    flat = traverse_util.flatten_dict(
        space.network(genotype).init(jax.random.key(5), x)["params"], sep="/"
    )
    values, offset = f[f"{prefix}values"].astype(np.float32), 0
    for entry in f[f"{prefix}layout"]:
        name, shape = str(entry).split("|")
        shape = tuple(int(v) for v in shape.split(","))
        size = int(np.prod(shape))
        flat[name] = jnp.asarray(values[offset : offset + size].reshape(shape))
        offset += size
    return {"params": traverse_util.unflatten_dict(flat, sep="/")}


def weight_ntk(net, params, x, impl):
    """The NTK (f32[B, B]) of TE-NAS's weights, as `ntk_cond` computes it."""
    sel = gradients.Selection(net, params, gradients.is_weight)
    out = ntk.logit_sum(net)
    fn = ntk.ntk_fn(lambda leaves, v: out(sel.merge(sel.masked(leaves)), v), impl=impl)
    return fn(sel.leaves, x)


def all_values(space, params, genotype, x, y, g_outs):
    """Every golden quantity of one network: a dict of arrays."""
    net = space.network(genotype)
    batch = {"x": x, "y": y}
    out = {name: proxies.get_proxy(spec)(net, params, batch, None) for name, spec in SPECS.items()}
    out["ntk_logcond"] = -proxies.get_proxy("ntk_cond")(net, params, batch, None)
    for impl in ntk.NtkImpl:
        out[f"ntk_theta_{impl.name}"] = weight_ntk(net, params, x, impl)
    _, outputs, gos, gis = blocks.input_gradients(net, params, x, lambda outs: g_outs)
    out["az"] = aznas.components_from(outputs, gos, gis)
    return out


all_values_jit = jax.jit(all_values, static_argnums=0)


@functools.cache
def golden_space(prefix):
    """One space object per network, so that `all_values_jit` compiles once for it."""
    # The AZ-NAS values intercept each cell module: cells unrolled (the block proxies' override).
    return nb201.space(**(MICRO if prefix else GOLDEN), scan_cells=False)


def golden_case(i, prefix=""):
    """(space, params, genotype, x, y, g_outs) of golden network i; prefix "micro_" gives
    the micro network (C=1, no stem, 4x4x1 inputs, batch 4)."""
    f = fixture()
    space = golden_space(prefix)
    x, y = jnp.asarray(f[f"{prefix}x_nhwc"]), jnp.asarray(f[f"{prefix}y"])
    genotype = jnp.asarray(f["genotypes"][i])
    params = load_params(space, genotype, x, f"{prefix}params_{i}/")
    n = len([k for k in f if k.startswith(f"{prefix}az_gout_{i}_")])
    g_outs = [jnp.asarray(f[f"{prefix}az_gout_{i}_{k}"], jnp.float32) for k in range(n)]
    return space, params, genotype, x, y, g_outs


def assert_golden(values, i, prefix=""):
    f = fixture()
    for name in SPECS:
        expected = f[f"{prefix}{name}_{i}"]
        if name == "swap":
            np.testing.assert_array_equal(values[name], expected)
        elif name == "knas_code":  # a sum of small cross-covariances
            np.testing.assert_allclose(values[name], expected, atol=2e-6, err_msg=name)
        elif name in ("zico", "lswag"):
            # mean / std over two mini-batches amplifies float32 rounding of the gradients
            # (both sides compute them in float32) where the two nearly agree.
            np.testing.assert_allclose(values[name], expected, rtol=1e-3, err_msg=name)
        else:
            np.testing.assert_allclose(values[name], expected, rtol=2e-5, err_msg=name)
    np.testing.assert_allclose(values["ntk_logcond"], f[f"{prefix}ntk_logcond_{i}"], rtol=1e-5)
    np.testing.assert_allclose(values["az"], f[f"{prefix}az_{i}"], rtol=1e-5, atol=1e-6)
    if not prefix:
        for impl in ntk.NtkImpl:
            np.testing.assert_allclose(
                values[f"ntk_theta_{impl.name}"], f[f"ntk_theta_{i}"], rtol=1e-5, atol=1e-3
            )


class GoldenTest(chex.TestCase):
    @parameterized.parameters(0, 1, 2)
    def test_every_proxy_matches_the_pytorch_oracle(self, i):
        assert_golden(all_values_jit(*golden_case(i)), i)

    @chex.variants(with_jit=True, without_jit=True)
    def test_micro_network_ntk_and_swap_with_and_without_jit(self):
        space, params, genotype, x, _, _ = golden_case(0, "micro_")
        f = fixture()

        def values(params, genotype, x):
            net, batch = space.network(genotype), {"x": x}
            return (
                -proxies.get_proxy("ntk_cond")(net, params, batch, None),
                proxies.get_proxy("swap(init='network')")(net, params, batch, None),
            )

        logcond, swap = self.variant(values)(params, genotype, x)
        np.testing.assert_allclose(logcond, f["micro_ntk_logcond_0"], rtol=1e-5)
        np.testing.assert_array_equal(swap, f["micro_swap_0"])

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0, 2)
    @pytest.mark.slow
    def test_micro_network_matches_the_oracle_with_and_without_jit(self, i):
        space, *args = golden_case(i, "micro_")
        assert_golden(self.variant(functools.partial(all_values, space))(*args), i, "micro_")

    @chex.variants(with_jit=True, without_jit=True)
    def test_thin_network_regions_match_the_oracle_exactly(self):
        f = fixture()
        thin = nb201.space(**regions.TENAS_REGIONS_NETWORK)
        crops = jnp.asarray(f["crops_nhwc"], jnp.float32)
        proxy = regions.linear_regions(chunk_size=200)
        count = self.variant(lambda p, g: proxy(thin.network(g), p, {"x": crops}, None))
        for i in range(3):
            genotype = jnp.asarray(f["genotypes"][i])
            params = load_params(thin, genotype, crops, f"thin_params_{i}/")
            got = float(count(params, genotype))
            # Both oracle counts: pattern hashing, and TE-NAS's own unique-rows method.
            self.assertEqual(got, float(f[f"regions_{i}"]))
            self.assertEqual(got, float(f[f"regions_tenas_{i}"]))

    def test_tenas_ntk_network_is_tenas_network(self):
        f = fixture()
        space = nb201.space(**ntk.TENAS_NTK_NETWORK)
        x = jnp.asarray(f["x_nhwc"])
        genotype = jnp.asarray(f["genotypes"][0])
        params = load_params(space, genotype, x, "tenas_params/")
        net = space.network(genotype)

        @jax.jit
        def logits_and_score(p):
            return net.apply(p, x), proxies.get_proxy("ntk_cond")(net, p, {"x": x}, None)

        logits, score = logits_and_score(params)
        np.testing.assert_allclose(logits, f["tenas_logits"], atol=1e-5)
        np.testing.assert_allclose(-score, f["tenas_ntk_logcond"], rtol=1e-5)


@pytest.mark.slow
class NtkImplementationsTest(parameterized.TestCase):
    """Both NTK implementations against `jax.jacrev`, batched and per example."""

    @staticmethod
    def _case(batch_norm):
        space = nb201.space(channels=2, cells_per_stage=1, num_stages=1, batch_norm=batch_norm)
        x = jax.random.normal(jax.random.key(0), (5, 4, 4, 3))
        net = space.network(jnp.asarray([3, 2, 4, 1, 3, 0]))
        return net, net.init(jax.random.key(1), x), x

    @staticmethod
    def _reference(net, params, x, per_example):
        def f(p, v):
            return jnp.sum(net.apply(p, v), axis=-1)

        if per_example:
            jac = jax.vmap(lambda xi: jax.jacrev(lambda p: f(p, xi[None])[0])(params))(x)
        else:
            jac = jax.jacrev(lambda p: f(p, x))(params)
        rows = jnp.concatenate([j.reshape(x.shape[0], -1) for j in jax.tree.leaves(jac)], 1)
        return rows @ rows.T

    def test_implementations_equal_jacrev_and_per_example_needs_no_batch_interaction(self):
        free, free_params, x = self._case(batch_norm=False)
        bn, bn_params, _ = self._case(batch_norm=True)

        def logit_sum(net):
            return lambda q, v: jnp.sum(net.apply(q, v), axis=-1)

        @jax.jit
        def kernels(free_params, bn_params):
            out = {
                "free/ref": self._reference(free, free_params, x, per_example=False),
                "free/ref_per_example": self._reference(free, free_params, x, per_example=True),
                "bn/ref": self._reference(bn, bn_params, x, per_example=False),
            }
            for impl in ntk.NtkImpl:
                for per_example in (False, True):
                    name = f"{impl.name}/per_example={per_example}"
                    fn = ntk.ntk_fn(logit_sum(free), impl=impl, per_example=per_example)
                    out[f"free/{name}"] = fn(free_params, x)
                    fn = ntk.ntk_fn(logit_sum(bn), impl=impl, per_example=per_example)
                    out[f"bn/{name}"] = fn(bn_params, x)
                # Rows two at a time: chunks of 2, 2 and 1 for the batch of 5.
                fn = ntk.ntk_fn(logit_sum(bn), impl=impl, rows_per_chunk=2)
                out[f"bn/{impl.name}/per_example=False/rows_per_chunk=2"] = fn(bn_params, x)
            return out

        values = kernels(free_params, bn_params)
        for name, theta in values.items():
            chex.assert_shape(theta, (5, 5))
            if name == "bn/ref":
                continue
            if name.startswith("free/") or "per_example=False" in name:
                reference = values["free/ref" if name.startswith("free/") else "bn/ref"]
                np.testing.assert_allclose(theta, reference, rtol=2e-5, atol=1e-4, err_msg=name)
            else:  # per-example evaluation silently changes the BatchNorm statistics
                self.assertGreater(float(jnp.max(jnp.abs(theta - values["bn/ref"]))), 1e-2)


class RobustnessTest(parameterized.TestCase):
    def test_rows_per_chunk_below_one_is_rejected(self):
        with self.assertRaisesRegex(errors.ConfigError, "rows_per_chunk must be None or >= 1"):
            ntk.ntk_cond(rows_per_chunk=0)

    def test_log_condition_number_edge_cases(self):
        cap = np.log(1.0 / (4 * np.finfo(np.float32).eps))
        self.assertAlmostEqual(float(ntk.log_condition_number(jnp.eye(4))), 0.0, places=5)
        self.assertAlmostEqual(float(ntk.log_condition_number(jnp.zeros((4, 4)))), cap, places=4)
        ones = jnp.ones((4, 4))  # rank one
        self.assertAlmostEqual(float(ntk.log_condition_number(ones)), cap, places=4)
        self.assertTrue(np.isnan(ntk.log_condition_number(jnp.full((4, 4), jnp.nan))))
        diag = jnp.diag(jnp.asarray([1.0, 2.0, 4.0, 8.0]))
        self.assertAlmostEqual(float(ntk.log_condition_number(diag)), np.log(8.0), places=5)

    def test_duplicated_inputs_and_constant_cells_give_finite_documented_values(self):
        space, params, genotype, x, y, g_outs = golden_case(0)
        cap = np.log(1.0 / (x.shape[0] * np.finfo(np.float32).eps))
        duplicated = all_values_jit(space, params, genotype, x.at[1].set(x[0]), y, g_outs)
        self.assertAlmostEqual(float(duplicated["ntk_logcond"]), cap, places=4)
        none = all_values_jit(space, params, jnp.zeros(6, jnp.int32), x, y, g_outs)
        self.assertAlmostEqual(float(none["ntk_logcond"]), cap, places=4)
        for values in (duplicated, none):
            for name, value in values.items():
                self.assertFalse(np.any(np.isnan(value)), name)
                self.assertFalse(np.any(value == np.inf), name)
        # An all-`none` cell has a zero feature map: AZ-NAS's worst score (as its reference).
        self.assertEqual(float(none["az"][0]), -np.inf)

    def test_non_finite_inputs_fail_with_nan(self):
        space, params, genotype, x, y, g_outs = golden_case(1)
        values = all_values_jit(space, params, genotype, x.at[0, 0, 0, 0].set(jnp.nan), y, g_outs)
        for name in (*SPECS, "ntk_logcond"):
            self.assertTrue(np.isnan(values[name]), name)


class ProtocolTest(parameterized.TestCase):
    def test_random_crops_follow_tenas(self):
        # Every element is distinct, so a crop's corner value says where it was cut.
        images = np.arange(2 * 5 * 5 * 3, dtype=np.float32).reshape(2, 5, 5, 3)
        crops = np.asarray(
            jax.jit(lambda k: data.random_crops(k, images, 50, 3))(jax.random.key(0))
        )
        chex.assert_shape(crops, (50, 3, 3, 1))
        for crop in crops:
            n, y, x, c = np.unravel_index(int(crop[0, 0, 0]), images.shape)
            np.testing.assert_array_equal(crop, images[n, y : y + 3, x : x + 3, c : c + 1])
        self.assertGreater(len({float(c[0, 0, 0]) for c in crops}), 10)
        with pytest.raises(errors.ShapeError, match="cannot cut"):
            data.random_crops(jax.random.key(0), images, 5, 6)

    def test_options_are_checked(self):
        with pytest.raises(errors.ConfigError, match="unknown KNAS variant"):
            proxies.get_proxy("knas(variant='gram')")
        with pytest.raises(errors.ConfigError, match="both mu and sigma"):
            proxies.get_proxy("swap(mu=300.0)")
        with pytest.raises(errors.ConfigError, match="layers"):
            proxies.get_proxy("lswag(layers=(3, 12))")
        with pytest.raises(errors.ConfigError, match="unknown AZ-NAS init"):
            proxies.get_proxy("az_trainability(init='xavier')")
        with pytest.raises(errors.ConfigError, match="unknown initialisation"):
            gradients.reinitialize({}, jax.random.key(0), "xavier")

    def test_batch_requirements_raise_clear_errors(self):
        space = nb201.space(**MICRO, scan_cells=False)
        x = jnp.zeros((6, 4, 4, 1))
        net = space.network(jnp.zeros(6, jnp.int32))
        params = net.init(jax.random.key(0), x)
        with pytest.raises(errors.ShapeError, match="needs labels"):
            proxies.get_proxy("zico")(net, params, {"x": x}, None)
        with pytest.raises(errors.ShapeError, match="into 4 equal parts"):
            proxies.get_proxy("zico(num_batches=4)")(
                net, params, {"x": x, "y": jnp.zeros(6, jnp.int32)}, None
            )
        with pytest.raises(errors.ShapeError, match="not a multiple"):
            proxies.get_proxy("linear_regions(chunk_size=4)")(net, params, {"x": x}, None)
        with pytest.raises(errors.ConfigError, match="block pattern"):
            proxies.get_proxy("meco(blocks_pattern='cell')")(net, params, {"x": x}, None)


class GeluTest(parameterized.TestCase):
    """SWAP and L-SWAG on a GeLU network: a tiny AutoFormer supernet (masked hidden units)."""

    @staticmethod
    def _case():
        space = af.space(vit=TINY_VIT, patch_size=4, num_classes=10, max_relative_position=2)
        key_x, key_y = jax.random.split(jax.random.key(3))
        batch = {
            "x": jax.random.normal(key_x, (8, 16, 16, 3)),
            "y": jax.random.randint(key_y, (8,), 0, 10),
        }
        genotype = np.asarray([1, 1, 1, 0, 0, 1])  # embed 12, two layers, ratios (1.0, 2.5)
        net = space.network(jnp.asarray(genotype))
        return space, genotype, net, net.init(jax.random.key(0), batch["x"]), batch

    def test_swap_counts_the_materialised_subnets_gelu_patterns(self):
        space, genotype, net, params, batch = self._case()
        score = jax.jit(lambda p: proxies.get_proxy("swap(init='network')")(net, p, batch, None))
        model = space.materialize(genotype)
        shapes = jax.eval_shape(model.init, jax.random.key(0), batch["x"])
        variables = {"params": base.restrict_params(params["params"], shapes["params"])}
        _, state = model.apply(variables, batch["x"], mutable=["taps"])
        taps = traverse_util.flatten_dict(
            state["taps"], is_leaf=lambda _, v: not isinstance(v, dict)
        ).values()
        values = [np.asarray(t.value).reshape(8, -1) > 0 for t in taps]  # GeLU(v) > 0 iff v > 0
        units = np.concatenate(values, axis=1).T
        self.assertEqual(float(score(params)), float(len(np.unique(units, axis=0))))

    @pytest.mark.slow
    def test_lswag_is_finite_and_positive(self):
        _, _, net, params, batch = self._case()
        score = jax.jit(lambda p: proxies.get_proxy("lswag")(net, p, batch, None))(params)
        self.assertTrue(np.isfinite(score))
        self.assertGreater(float(score), 0.0)
