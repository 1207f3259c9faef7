"""NAS-Bench-Suite-Zero proxies: golden values from the PyTorch oracle, edge cases, robustness.

The fixture (`scripts/torch_suitezero_oracle.py golden`) holds one set of C=3, N=1
supernet weights shared by four cells, a batch of 8 images (8x8) with labels, and the
oracle's value of every proxy on every cell.
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

from jaxnas import errors, network, proxies
from jaxnas.proxies import epe_nas, gradients, jacob_cov, layerwise, zen
from jaxnas.spaces import nb201

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "suitezero_nb201_golden.npz")
TINY3 = dict(channels=3, cells_per_stage=1, num_stages=2)

# Relative tolerances against float64 / float32 PyTorch (the largest gaps are from
# float32 accumulation order in the backward passes).
RTOL = {
    "synflow": 1e-5,
    "snip": 1e-4,
    "plain": 1e-3,
    "grad_norm": 1e-4,
    "l2_norm": 1e-5,
    "grasp": 2e-3,
    "fisher": 1e-3,
    "jacob_cov": 1e-4,
    "epe_nas": 1e-4,
    "params": 0.0,
    "flops": 0.0,
}


@functools.cache
def _fixture():
    f = np.load(FIXTURE)
    values = dict(zip(f["value_names"].tolist(), f["values"].tolist()))
    return {k: f[k] for k in f.files}, values


def _unpack(f, prefix):
    sizes = [int(np.prod([int(d) for d in s.split(",")])) for s in f[f"{prefix}_shapes"]]
    offsets = np.cumsum([0] + sizes)
    return {
        name: f[f"{prefix}_flat"][offsets[i] : offsets[i + 1]].reshape(
            [int(d) for d in shape.split(",")]
        )
        for i, (name, shape) in enumerate(zip(f[f"{prefix}_names"], f[f"{prefix}_shapes"]))
    }


def _load(params, flat):
    """The supernet params with every leaf replaced by the fixture's weights."""
    leaves = traverse_util.flatten_dict(params["params"], sep="/")
    assert set(flat) <= set(leaves), sorted(set(flat) - set(leaves))[:3]
    leaves.update({k: jnp.asarray(v) for k, v in flat.items()})
    return {"params": traverse_util.unflatten_dict(leaves, sep="/")}


@functools.cache
def _case(num_classes=10):
    """(space, params, batch) of the golden cells."""
    f, _ = _fixture()
    space = nb201.space(**TINY3, num_classes=num_classes)
    x = jnp.asarray(f["x_nhwc"])
    params = space.network(jnp.zeros(6, jnp.int32)).init(jax.random.key(0), x)
    flat = _unpack(f, "weights")
    if num_classes != 10:
        flat.update(_unpack(f, "weights_120"))
    y = f["y"] if num_classes == 10 else f["y_120"]
    return space, _load(params, flat), {"x": x, "y": jnp.asarray(y)}


@functools.cache
def _scorer(name, num_classes=10):
    """A jitted `(genotype, params) -> score`; the genotype is data, one compile."""
    space, _, batch = _case(num_classes)
    proxy = proxies.get_proxy(name)
    overrides = proxies.network_overrides(proxy)
    return jax.jit(lambda g, p: proxy(space.network(g, **overrides), p, batch, jax.random.key(0)))


def _check(name, got, expected):
    if np.isinf(expected):
        assert float(got) == expected, (name, float(got), expected)
    elif RTOL[name] == 0.0:
        np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=name)
    else:
        np.testing.assert_allclose(got, expected, rtol=RTOL[name], atol=1e-6, err_msg=name)


class GoldenTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*sorted(RTOL))
    def test_matches_the_pytorch_oracle(self, name):
        """Jitted: every cell, one compile (the genotype is data). Eager: the first cell."""
        f, values = _fixture()
        space, params, batch = _case()
        proxy = proxies.get_proxy(name)
        overrides = proxies.network_overrides(proxy)
        score = self.variant(
            lambda g, p: proxy(space.network(g, **overrides), p, batch, jax.random.key(0))
        )
        eager = self.variant.type is chex.ChexVariantType.WITHOUT_JIT
        for i, genotype in enumerate(f["genotypes"][:1] if eager else f["genotypes"]):
            # Eagerly, lax.switch would compile every branch call; disable_jit runs Python.
            with jax.disable_jit(eager):
                got = score(jnp.asarray(genotype), params)
            chex.assert_shape(got, ())
            key = f"{name}_{i}"
            if key in values:
                _check(name, got, values[key])
            else:
                # Only the oracle's documented gap may be missing: the all-`none` cell has
                # a constant Jacobian, so its correlations are undefined (NaN).
                assert name in ("jacob_cov", "epe_nas") and not np.any(genotype), (
                    f"fixture has no value {key!r}"
                )
                assert np.isnan(got), (name, float(got))
        if not eager:
            # Robustness, on the same compiled function: overflowing weights never give
            # +inf (NaN = failed, or a valid -inf).
            huge = jax.tree.map(lambda v: v * 1e20, params)
            got = np.asarray(score(jnp.asarray(f["genotypes"][1]), huge))
            assert not (np.isinf(got) and got > 0), (name, got)

    def test_epe_nas_with_more_than_100_classes_uses_the_pairwise_variant(self):
        f, values = _fixture()
        _, params, _ = _case(120)
        got = _scorer("epe_nas", 120)(jnp.asarray(f["genotypes"][0]), params)
        np.testing.assert_allclose(got, values["epe_nas_120"], rtol=1e-4)

    def test_zen_score_matches_the_oracle_on_given_weights_and_inputs(self):
        f, values = _fixture()
        space, params, _ = _case()
        x, x_mixed = jnp.asarray(f["x_nhwc"]), jnp.asarray(f["x_mixed_nhwc"])
        fn = jax.jit(lambda g, p: zen.zen_score(space.network(g), p, x, x_mixed))
        for i, genotype in enumerate(f["genotypes"]):
            got = fn(jnp.asarray(genotype), params)
            expected = values[f"zen_{i}"]
            if np.isinf(expected):
                assert float(got) == expected
            else:
                np.testing.assert_allclose(got, expected, rtol=1e-4)


# ----------------------------------------------------------------- robustness


# Stack caps in bytes and the number of stacks they give: the three 288-byte leaves of
# one shape stack whole, two by two, or alone; the 16-byte pair always stacks.
@pytest.mark.parametrize("cap, stacks", [(2**20, 3), (600, 4), (100, 5)])
def test_leaf_values_by_shape_come_back_in_leaf_order(monkeypatch, cap, stacks):
    monkeypatch.setattr(gradients, "MAX_STACK_BYTES", cap)
    rng = np.random.default_rng(0)
    shapes = [(3, 3, 2, 4), (4,), (3, 3, 2, 4), (1, 1, 4, 8), (4,), (3, 3, 2, 4)]
    a = [jnp.asarray(rng.normal(size=s), jnp.float32) for s in shapes]
    b = [jnp.asarray(rng.normal(size=s), jnp.float32) for s in shapes]
    calls = []

    def fn(x, y):
        calls.append(x.shape)
        return jnp.sum(x * y) + x.size

    got = gradients.leaf_values(fn, a, b)
    chex.assert_shape(got, (len(shapes),))
    assert len(calls) == stacks
    np.testing.assert_allclose(got, [fn(x, y) for x, y in zip(a, b)], rtol=1e-6)


def test_synflow_in_log_space_equals_float64_where_float32_overflows():
    f, _ = _fixture()
    space, params, batch = _case()
    genotype = jnp.asarray([3, 3, 3, 1, 3, 3])  # no pooling: float64 below stays exact
    big = jax.tree.map(lambda v: v * 1e6, params)
    ours = float(_scorer("synflow")(genotype, big))
    net = space.network(genotype, batch_norm=False)
    mask = layerwise.weight_mask(net, big)

    def direct(p, dtype):
        p = jax.tree.map(lambda v: jnp.abs(v).astype(dtype), p)
        ones = jnp.ones((1, *batch["x"].shape[1:]), dtype)
        g = jax.grad(lambda q: jnp.sum(net.apply(q, ones)))(p)
        return layerwise.layer_sum(lambda w, d: jnp.sum(w * d), mask, p, g)

    assert not np.isfinite(direct(big, jnp.float32))  # the overflow this version avoids
    # float64 meets float32 constants inside the (traced, unselected) pooling branches.
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        expected = float(jnp.log(direct(big, jnp.float64)))
    assert expected > 89.0  # beyond float32's range (log 3.4e38 = 88.7)
    np.testing.assert_allclose(ours, expected, rtol=1e-5)


def test_jacob_cov_rank_deficient_kernel_gives_the_documented_finite_value():
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((3, 50))
    jacobian = np.concatenate([rows, rows[:1] * 2.0 + 1.0])  # row 4 correlates fully with 1
    score = jacob_cov.eigen_score(jacob_cov.correlation_eigenvalues(jnp.asarray(jacobian)))
    eig = np.clip(np.linalg.eigvalsh(np.corrcoef(jacobian)), 0.0, None)
    expected = -np.sum(np.log(eig + 1e-5) + 1.0 / (eig + 1e-5))
    assert np.isfinite(score) and expected < -9e4  # one zero eigenvalue: about -1e5
    np.testing.assert_allclose(score, expected, rtol=1e-4)
    # Fewer pixels than images: the missing eigenvalues are zeros, not an error.
    wide = jacob_cov.correlation_eigenvalues(jnp.asarray(rng.standard_normal((6, 4))))
    chex.assert_shape(wide, (6,))
    np.testing.assert_allclose(np.sort(wide)[:2], 0.0, atol=1e-6)


def test_jacob_cov_and_epe_nas_are_nan_for_a_constant_jacobian_row():
    jacobian = jnp.asarray(np.random.default_rng(1).standard_normal((4, 20)), jnp.float32)
    jacobian = jacobian.at[2].set(3.0)
    eig = jacob_cov.correlation_eigenvalues(jacobian)
    assert np.isnan(jacob_cov.eigen_score(eig))
    assert np.isnan(epe_nas.epe_score(jacobian, jnp.asarray([0, 1, 1, 2]), 10))


def test_epe_nas_brute_force_per_class_loop():
    rng = np.random.default_rng(2)
    jacobian = rng.standard_normal((7, 30))
    labels = np.asarray([4, 4, 1, 4, 9, 1, 3])
    expected = 0.0
    for c in np.unique(labels):
        rows = jacobian[labels == c]
        corr = np.corrcoef(rows) if len(rows) > 1 else np.ones((1, 1))
        expected += abs(np.sum(np.log(np.abs(corr) + 1e-5)))
    got = epe_nas.epe_score(jnp.asarray(jacobian, jnp.float32), jnp.asarray(labels), 10)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_gaussian_init_follows_zen_rules(key):
    space, params, _ = _case()
    out = traverse_util.flatten_dict(zen.gaussian_init(key, params)["params"], sep="/")
    kernels = np.concatenate([np.ravel(v) for k, v in out.items() if k.endswith("kernel")])
    assert abs(kernels.mean()) < 0.05 and abs(kernels.std() - 1.0) < 0.05
    for name, value in out.items():
        if name.endswith("scale"):
            np.testing.assert_array_equal(value, 1.0)
        elif name.endswith("bias"):
            np.testing.assert_array_equal(value, 0.0)


def test_proxies_needing_labels_or_probes_raise_clear_errors(tiny_space):
    net = tiny_space.network(jnp.zeros(6, jnp.int32))
    x = jnp.ones((4, 8, 8, 3))
    params = net.init(jax.random.key(0), x)
    for name in ("snip", "fisher", "epe_nas"):
        with np.testing.assert_raises_regex(errors.ShapeError, "needs labels"):
            proxies.get_proxy(name)(net, params, {"x": x}, jax.random.key(0))
    bare = network.Network(
        lambda k, x: {},
        lambda p, x, *, taps=False, probes=False: (
            (x.reshape(x.shape[0], -1), network.collect_probes({})) if probes else x
        ),
    )
    with np.testing.assert_raises_regex(errors.ConfigError, "no conv/linear layer probes"):
        proxies.get_proxy("fisher")(bare, {}, {"x": x, "y": jnp.zeros(4, jnp.int32)}, None)
    with np.testing.assert_raises_regex(errors.ConfigError, "no op costs"):
        proxies.get_proxy("flops")(bare, {}, {"x": x}, None)


def test_score_population_applies_the_proxy_network_overrides(tiny_space, tiny_batch):
    proxy = proxies.get_proxy("synflow")
    assert proxies.network_overrides(proxy) == {"batch_norm": False}
    seen = []

    def network(genotype, **overrides):
        seen.append(overrides)
        return tiny_space.network(genotype, **overrides)

    space = tiny_space._replace(network=network)
    population = jnp.asarray([[3, 2, 4, 1, 3, 0]])
    keys = jax.random.split(jax.random.key(1), 1)
    jax.eval_shape(lambda: proxies.score_population(proxy, space, population, tiny_batch, keys))
    assert seen and all(o == {"batch_norm": False} for o in seen)
    seen.clear()
    jax.eval_shape(
        lambda: proxies.score_population(
            proxy, space, population, tiny_batch, keys, network_kwargs={"batch_norm": True}
        )
    )
    assert seen and all(o == {"batch_norm": True} for o in seen)  # explicit kwargs win


def _uninstrumented_spaces():
    """The spaces whose ops record no probes, tiny, with an input (traced, not compiled)."""
    from test_autoformer import SETTINGS
    from test_nds import TINY_RESNET

    from jaxnas.spaces import autoformer, nds

    from conftest import TINY_VIT

    return {
        "nds": (nds.space(design=TINY_RESNET, stem_width=4), 8),
        "autoformer": (autoformer.space(vit=TINY_VIT, **SETTINGS), 16),
    }


def test_probe_proxies_raise_on_spaces_that_record_no_probes():
    """fisher, flops and zen refuse spaces whose layers record no probes (instead of
    silently scoring the few that do, e.g. only a classifier built from ops.Dense)."""
    expected = {  # no probe at all (AutoFormer), or some layers without one
        "fisher": "no conv/linear layer probes|not instrumented",
        "flops": "no op costs|not instrumented",
        "zen": "no 'pre_gap' feature map",
    }
    for space_name, (space, size) in _uninstrumented_spaces().items():
        genotype = jnp.asarray(space.sample(jax.random.key(1), 1))[0]
        x = jnp.ones((2, size, size, 3))
        batch = {"x": x, "y": jnp.zeros(2, jnp.int32)}
        net = space.network(genotype)
        params = jax.eval_shape(net.init, jax.random.key(0), x)
        for name, message in expected.items():
            score = functools.partial(
                proxies.get_proxy(name), net, batch=batch, key=jax.random.key(0)
            )
            with np.testing.assert_raises_regex(errors.ConfigError, message, msg=space_name):
                jax.eval_shape(score, params)
        # In a stack, snip asks first for the loss pass that carries fisher's gates.
        stacked = proxies.stack(proxies.get_proxy("snip"), proxies.get_proxy("fisher"))
        score = functools.partial(stacked, net, batch=batch, key=jax.random.key(0))
        with np.testing.assert_raises_regex(errors.ConfigError, expected["fisher"]):
            jax.eval_shape(score, params)


def test_grasp_equals_theta_dot_the_hessian_gradient_product():
    """grasp's forward-over-forward second derivative equals -sum theta * (H g) with H g
    from `jax.jvp` of `jax.grad` (the reference's double backward), on a masked cell."""
    f, _ = _fixture()
    space, params, batch = _case()
    net = space.network(jnp.asarray(f["genotypes"][1]))
    loss = layerwise.loss_fn(net, batch)
    mask = layerwise.weight_mask(net, params)

    @jax.jit
    def both(params):
        g = jax.tree.map(layerwise.masked, jax.grad(loss)(params), mask)
        _, hg = jax.jvp(jax.grad(loss), (params,), (g,))
        leaves = zip(*(jax.tree.leaves(t) for t in (params, hg, mask)))
        expected = -sum(
            jnp.sum(layerwise.masked(w, m) * layerwise.masked(h, m)) for w, h, m in leaves
        )
        return proxies.get_proxy("grasp")(net, params, batch, jax.random.key(0)), expected

    got, expected = both(params)
    assert abs(float(expected)) > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_stacked_proxies_equal_the_proxies_one_by_one():
    """The shared loss and input gradients give each proxy its own value, jitted."""
    f, _ = _fixture()
    space, params, batch = _case()
    # lswag with a window reads its taps by position: the shared pass keeps their order.
    names = (
        *("snip", "grad_norm", "plain", "grasp", "jacob_cov", "epe_nas", "fisher", "naswot"),
        "lswag(layers=(0, 4))",
    )
    stacked = proxies.stack(*[proxies.get_proxy(n) for n in names])
    genotype = jnp.asarray(f["genotypes"][1])
    got = jax.jit(lambda g, p: stacked(space.network(g), p, batch, jax.random.key(0)))(
        genotype, params
    )
    chex.assert_shape(got, (len(names),))
    for m, name in enumerate(names):
        np.testing.assert_allclose(got[m], _scorer(name)(genotype, params), rtol=1e-5)


def test_a_stack_of_loss_and_input_gradient_proxies_runs_one_forward_pass(monkeypatch):
    """snip, jacob_cov, fisher and naswot stacked take their gradients and taps from one
    forward pass; in stacks of one kind each takes only its own gradient (grasp's first
    gradient is snip's; fisher without a loss-gradient proxy takes its gate gradients
    alone; naswot and lswag share one forward pass with taps)."""
    passes = []
    names = ("loss_pass", "_loss_gradients", "_input_jacobian", "_gate_gradients", "_forward_taps")
    for name in names:
        original = getattr(layerwise, name)

        def counted(*args, _name=name, _original=original):
            passes.append(_name)
            return _original(*args)

        monkeypatch.setattr(layerwise, name, counted)
    space, params, batch = _case()
    net = space.network(jnp.asarray(_fixture()[0]["genotypes"][1]))
    key = jax.random.key(0)

    def traced(*names):
        passes.clear()
        stacked = proxies.stack(*[proxies.get_proxy(n) for n in names])
        jax.eval_shape(lambda p: stacked(net, p, batch, key), params)
        return sorted(passes)

    assert traced("snip", "grad_norm", "jacob_cov", "epe_nas") == ["loss_pass"]
    assert traced("snip", "fisher", "jacob_cov") == ["loss_pass"]
    assert traced("fisher", "plain") == ["loss_pass"]
    assert traced("fisher", "jacob_cov") == ["_gate_gradients", "_input_jacobian"]
    assert traced("fisher") == ["_gate_gradients"]
    assert traced("snip", "grad_norm") == ["_loss_gradients"]
    assert traced("grasp", "plain") == ["_loss_gradients"]
    assert traced("jacob_cov", "epe_nas") == ["_input_jacobian"]
    assert traced("naswot", "snip", "fisher", "jacob_cov") == ["loss_pass"]
    assert traced("naswot", "plain") == ["loss_pass"]
    assert traced("naswot", "jacob_cov") == ["_forward_taps", "_input_jacobian"]
    assert traced("naswot", "lswag") == ["_forward_taps"]


def test_shared_traces_each_computation_once_per_stack_only():
    calls = []

    def double(x):
        calls.append(x)
        return 2 * x

    x, y = jnp.ones(3), jnp.ones(3)
    with proxies.sharing():
        a = proxies.shared("double", double, x)
        b = proxies.shared("double", double, x)
        proxies.shared("double", double, y)  # another object: computed again
    assert a is b and len(calls) == 2
    proxies.shared("double", double, x)
    proxies.shared("double", double, x)
    assert len(calls) == 4  # outside `sharing`, nothing is cached


def test_stack_rejects_proxies_with_different_network_overrides():
    with np.testing.assert_raises_regex(errors.ConfigError, "different network overrides"):
        proxies.stack(proxies.get_proxy("synflow"), proxies.get_proxy("snip"))
