"""functional.conv2d's custom JVP: the same derivatives as XLA's convolution, in both modes."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from jaxnas.spaces import functional


def _reference(x, kernel, stride, padding, dilation):
    (sh, sw), (ph, pw) = functional.as_pair(stride), functional.as_pair(padding)
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(sh, sw),
        padding=((ph, ph), (pw, pw)),
        rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


class Conv2dTest(parameterized.TestCase):
    @parameterized.parameters(
        (2, 1, 1, (3, 3)),
        (1, 2, 2, (3, 3)),
        (2, 0, 1, (1, 1)),
        (1, 0, 1, (1, 1)),
        ((1, 2), (0, 3), 1, (1, 7)),
    )
    def test_forward_reverse_and_second_order_match_xla(self, stride, padding, dilation, size):
        key_x, key_k, key_t = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(key_x, (2, 7, 6, 3))
        kernel = jax.random.normal(key_k, (*size, 3, 4))
        tx, tk = jax.random.normal(key_t, x.shape), jnp.flip(kernel, 0)

        def loss(conv):
            return lambda v, k: jnp.sum(jnp.sin(conv(v, k, stride, padding, dilation)))

        ours, ref = loss(functional.conv2d), loss(_reference)

        @jax.jit
        def derivatives(v, k):
            out = {}
            for name, f in (("ours", ours), ("ref", ref)):
                out[name] = (
                    f(v, k),
                    jax.grad(f, (0, 1))(v, k),
                    jax.jvp(f, (v, k), (tx, tk))[1],
                    jax.jvp(jax.grad(f, 1), (v, k), (tx, tk))[1],  # forward over reverse
                    jax.grad(lambda w, f=f: jnp.sum(jax.grad(f, 1)(v, w) ** 2))(k),  # rev^2
                )
            return out

        values = derivatives(x, kernel)
        chex.assert_trees_all_close(values["ours"], values["ref"], rtol=2e-4, atol=2e-4)
        out = functional.conv2d(x, kernel, stride, padding, dilation)
        expected = _reference(x, kernel, stride, padding, dilation)
        if (stride, padding, size) == (1, 0, (1, 1)):  # a matrix product: another sum order
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(out, expected)


def test_xla_conv_gradients_context_selects_xla_rule_while_tracing():
    """Inside `xla_conv_gradients()` an ungrouped 3x3 conv traces to XLA's convolution
    without the custom JVP, a 1x1 conv keeps it; the context is part of jit's cache key
    (one jitted function traced inside and outside gets both rules)."""
    x = jnp.ones((1, 5, 5, 2))

    def primitives(fn, kernel):
        return {str(e.primitive) for e in fn.trace(x, kernel).jaxpr.eqns}

    conv = jax.jit(functools.partial(functional.conv2d, padding=1))
    k3, k1 = jnp.ones((3, 3, 2, 2)), jnp.ones((1, 1, 2, 2))
    assert "custom_jvp_call" in primitives(conv, k3)
    with functional.xla_conv_gradients():
        assert primitives(conv, k3) == {"conv_general_dilated"}
        assert "custom_jvp_call" in primitives(conv, k1)
    assert "custom_jvp_call" in primitives(conv, k3)
    # An unpadded stride-1 1x1 convolution is a matrix product, inside the context too.
    pointwise = jax.jit(functional.conv2d)
    with functional.xla_conv_gradients():
        ops = primitives(pointwise, k1)
    assert "dot_general" in ops and "conv_general_dilated" not in ops


class DepthwiseConvTest(parameterized.TestCase):
    """`functional._depthwise_conv2d` (shifted multiply-adds) against XLA's grouped convolution."""

    @parameterized.parameters(
        ((1, 1), (1, 1), 1, 3),
        ((2, 2), (1, 1), 1, 3),
        ((1, 1), (2, 2), 2, 3),
        ((2, 2), (2, 2), 1, 5),
        ((1, 2), (0, 3), 1, 3),
        ((2, 1), (4, 4), 2, 5),
    )
    def test_values_and_gradients_match_feature_grouped_conv(self, stride, padding, dilation, k):
        key_x, key_k, key_t = jax.random.split(jax.random.key(0), 3)
        channels = 4
        x = jax.random.normal(key_x, (2, 9, 8, channels))
        kernel = jax.random.normal(key_k, (k, k, 1, channels))

        def grouped(x, kernel):
            return jax.lax.conv_general_dilated(
                x,
                kernel,
                window_strides=stride,
                padding=[(padding[0], padding[0]), (padding[1], padding[1])],
                rhs_dilation=(dilation, dilation),
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=channels,
            )

        def ours(x, kernel):
            return functional._depthwise_conv2d(x, kernel, stride, padding, dilation)

        expected = grouped(x, kernel)
        got = jax.jit(ours)(x, kernel)
        chex.assert_shape(got, expected.shape)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        cotangent = jax.random.normal(key_t, expected.shape)
        grads = [
            jax.jit(jax.grad(lambda a, b, f=f: jnp.sum(f(a, b) * cotangent), argnums=(0, 1)))(
                x, kernel
            )
            for f in (ours, grouped)
        ]
        chex.assert_trees_all_close(grads[0], grads[1], rtol=1e-5, atol=1e-5)
