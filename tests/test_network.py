"""Network adapters: a Linen module and an NNX model with the same weights score alike."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxnas import network, proxies, types
from jaxnas.spaces import init_rules


class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        h = nn.Dense(16, name="hidden")(x)
        network.sow_tap(self, "relu", h)
        return nn.Dense(3, name="out")(jax.nn.relu(h))


class NnxNet(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(12, 16, rngs=rngs)
        self.out = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
        h = self.hidden(x.reshape(x.shape[0], -1))
        self.sow(nnx.Intermediate, "relu", types.Tap(h, jnp.asarray(1.0)))
        return self.out(jax.nn.relu(h))


def test_linen_and_nnx_adapters_give_the_same_naswot_for_the_same_weights():
    x = jax.random.normal(jax.random.key(0), (10, 2, 2, 3))
    linen = network.from_linen(LinenNet())
    nnx_net = network.from_nnx(NnxNet)
    linen_params = linen.init(jax.random.key(1), x)
    nnx_params = nnx_net.init(jax.random.key(2), x)
    assert jax.tree.structure(nnx_params) == jax.tree.structure(linen_params)
    nnx_params = linen_params
    np.testing.assert_allclose(
        nnx_net.apply(nnx_params, x), linen.apply(linen_params, x), atol=1e-6
    )
    proxy = proxies.get_proxy("naswot")
    batch = {"x": x}
    a = jax.jit(lambda p: proxy(linen, p, batch, None))(linen_params)
    b = jax.jit(lambda p: proxy(nnx_net, p, batch, None))(nnx_params)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert np.isfinite(a)


def test_taps_are_only_collected_on_request_and_not_returned_by_init():
    x = jnp.ones((2, 2, 2, 3))
    linen = network.from_linen(LinenNet())
    params = linen.init(jax.random.key(0), x)
    assert set(params) == {"params"}
    logits, taps = linen.apply(params, x, taps=True)
    assert list(taps) == ["relu"] and taps["relu"].value.shape == (2, 16)
    np.testing.assert_array_equal(linen.apply(params, x), logits)


def test_collect_taps_accepts_plain_sown_arrays():
    taps = network.collect_taps(
        {"block": {"act": (jnp.ones((2, 3)),)}, "x": (jnp.ones(1), jnp.ones(1))}
    )
    assert set(taps) == {"block/act", "x/0", "x/1"}
    assert float(taps["block/act"].weight) == 1.0


def test_rescale_fan_in_gives_each_unit_the_bound_of_its_selected_inputs():
    params = {"dense": {"kernel": jnp.ones((3, 4)), "bias": jnp.ones((4,))}}
    selected = jnp.asarray([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0]], jnp.float32)
    out = init_rules.rescale_fan_in(params, {"dense": {"kernel": selected, "bias": jnp.ones(())}})
    factor = np.asarray([1.0, np.sqrt(3 / 2), 1.0, 1.0])  # fan-ins 3, 2 of 3; none
    np.testing.assert_allclose(out["dense"]["kernel"], np.broadcast_to(factor, (3, 4)), rtol=1e-6)
    np.testing.assert_allclose(out["dense"]["bias"], factor, rtol=1e-6)


def test_rescale_fan_out_scales_conv_rows_by_their_selected_outputs():
    params = {
        "conv": {"kernel": jnp.ones((3, 3, 4, 2))},
        "classifier": {"kernel": jnp.ones((2, 5)), "bias": jnp.zeros((5,))},
    }
    rows = jnp.asarray([1, 1, 0, 0], jnp.float32)[:, None]
    mask = {
        "conv": {"kernel": (rows * jnp.asarray([[1, 0]], jnp.float32)).reshape(1, 1, 4, 2)},
        "classifier": {"kernel": jnp.ones(()), "bias": jnp.ones(())},
    }
    out = init_rules.rescale_fan_out(params, mask)
    row_factor = np.asarray([np.sqrt(2.0), np.sqrt(2.0), 1.0, 1.0])  # 9 of 18 outputs; none
    np.testing.assert_allclose(out["conv"]["kernel"][0, 0, :, 0], row_factor, rtol=1e-6)
    chex.assert_trees_all_equal(out["classifier"], params["classifier"])


@pytest.mark.parametrize("rescale", [init_rules.rescale_fan_in, init_rules.rescale_fan_out])
def test_whole_layer_masks_leave_the_draw_as_it_is(rescale):
    rng = np.random.default_rng(0)
    params = {
        f"op{i}": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 4, 2)), jnp.float32)}
        for i in range(2)
    }
    mask = {"op0": {"kernel": jnp.ones(())}, "op1": {"kernel": jnp.zeros((1, 1, 1, 1))}}
    chex.assert_trees_all_equal(rescale(params, mask), params)
    # The same selection written out entry by entry gives the same (unit) factors.
    full = jax.tree.map(lambda m, p: jnp.broadcast_to(m, p.shape), mask, params)
    chex.assert_trees_all_close(rescale(params, full), params, rtol=1e-6)
