"""AZ-NAS: the registered component proxies, `components` and `rank_aggregate`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxnas import errors, proxies
from jaxnas.proxies import aznas

GENOTYPE = jnp.asarray([3, 2, 4, 1, 3, 0])


# XLA's optimisations cost more compile time than these tiny programs run.
pytestmark = pytest.mark.usefixtures("fast_compile")


def _jitted(spec, net):
    proxy = proxies.get_proxy(spec)
    return jax.jit(lambda p, b, k: proxy(net, p, b, k))


@pytest.fixture(scope="module")
def case(tiny_space, tiny_batch):
    net = tiny_space.network(GENOTYPE, **proxies.record("az_expressivity").network)
    return net, net.init(jax.random.key(1), tiny_batch["x"]), tiny_batch


def test_rank_aggregate_by_hand_and_against_scipy():
    scores = np.asarray(
        [[1.0, 3.0], [2.0, 2.0], [2.0, -np.inf], [np.nan, 1.0], [5.0, 4.0]], np.float32
    )
    got = np.asarray(aznas.rank_aggregate(scores))
    # Column 0 (NaN ranked as -inf): -inf, 1, 2, 2, 5 -> ranks 1, 2, 3.5, 3.5, 5.
    # Column 1: 3, 2, -inf, 1, 4 -> 4, 3, 1, 2, 5.  N = 5.
    expected = [
        np.log(2 / 5) + np.log(4 / 5),
        np.log(3.5 / 5) + np.log(3 / 5),
        np.log(3.5 / 5) + np.log(1 / 5),
        np.nan,
        0.0,  # best in every component
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    finite = np.where(np.isnan(scores), -np.inf, scores)
    ranks = np.stack([stats.rankdata(c) for c in finite.T], axis=1)
    np.testing.assert_allclose(got[[0, 1, 2, 4]], np.log(ranks / 5).sum(1)[[0, 1, 2, 4]], rtol=1e-6)
    with pytest.raises(errors.ShapeError, match=r"f32\[P, M\]"):
        aznas.rank_aggregate(np.zeros(3))


def test_each_registered_proxy_is_its_component(case):
    net, params, batch = case
    key = jax.random.key(7)
    _, _, key_g = jax.random.split(key, 3)
    expected = jax.jit(lambda p: aznas.components(net, p, batch["x"], key_g))(params)
    assert np.all(np.isfinite(expected)), expected
    for i, name in enumerate(aznas.COMPONENTS):
        proxy = _jitted(f"az_{name}(init='network', gaussian_input=False)", net)
        np.testing.assert_allclose(proxy(params, batch, key), expected[i], rtol=1e-5)


def test_init_and_gaussian_input_follow_the_reference_protocol(case):
    net, params, batch = case
    other = net.init(jax.random.key(2), batch["x"])
    # Other images (not a permutation or rescaling: the spectrum of the covariance over
    # all positions and the BatchNorm after the stem ignore those).
    shuffled = {**batch, "x": jax.random.normal(jax.random.key(9), batch["x"].shape)}
    key = jax.random.key(7)
    default = _jitted("az_expressivity", net)  # kaiming re-draw, Gaussian input
    a = default(params, batch, key)
    # The reference re-draws the weights from the key and feeds N(0, 1) images: neither
    # the given weights nor the batch's values matter, only its shape.
    np.testing.assert_allclose(default(other, shuffled, key), a, rtol=1e-5)
    assert not np.allclose(default(params, batch, jax.random.key(8)), a)
    as_given = _jitted("az_expressivity(init='network', gaussian_input=False)", net)
    b = as_given(params, batch, key)
    assert not np.allclose(as_given(other, batch, key), b)
    assert not np.allclose(as_given(params, shuffled, key), b)
    with pytest.raises(errors.ConfigError, match="unknown AZ-NAS init 'xavier'"):
        proxies.get_proxy("az_progressivity(init='xavier')")


def test_a_network_with_non_finite_output_fails_with_nan(case):
    net, params, batch = case
    huge = jax.tree.map(lambda v: v * 1e30, params)
    values = jax.jit(lambda p, x: aznas.components(net, p, x, jax.random.key(0)))(
        huge, batch["x"] * 1e30
    )
    assert np.all(np.isnan(values)), values


def test_stacked_components_share_one_pass_and_equal_the_components(case, monkeypatch):
    net, params, batch = case
    key = jax.random.key(3)
    specs = [f"az_{name}" for name in aznas.COMPONENTS]
    one_by_one = [np.asarray(_jitted(spec, net)(params, batch, key)) for spec in specs]
    passes = []
    original = aznas.blocks.input_gradients

    def counted(*args, **kwargs):
        passes.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(aznas.blocks, "input_gradients", counted)
    stacked = proxies.stack(*(proxies.get_proxy(spec) for spec in specs))
    got = jax.jit(lambda p, b, k: stacked(net, p, b, k))(params, batch, key)
    assert len(passes) == 1
    np.testing.assert_allclose(got, one_by_one, rtol=1e-5)
    # Another setting of the components is its own computation.
    mixed = proxies.stack(
        proxies.get_proxy("az_expressivity"), proxies.get_proxy("az_trainability(init='network')")
    )
    jax.jit(lambda p, b, k: mixed(net, p, b, k))(params, batch, key)
    assert len(passes) == 3
