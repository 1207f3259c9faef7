"""FLOPs per image of the spaces' ops, by tensorwatch's counters.

NAS-Bench-Suite-Zero counted FLOPs with tensorwatch through NASLib's `get_model_stats`:
a convolution or linear layer counts one per multiply-accumulate (k_h k_w C_in/groups
per output element; biases not counted), BatchNorm 2 per element (1 without affine
parameters), ReLU 1 per element, a k x k pooling k^2 per output element, global average
pooling (H + 1)(W + 1) per channel (tensorwatch's adaptive-pool formula), and additions
of branches nothing.
"""

import math

import jax
import jax.numpy as jnp


def _per_image(shape) -> int:
    return math.prod(shape[1:])


def conv_flops(out_shape, fan_in) -> jax.Array:
    """Multiply-accumulates per image of a conv / linear layer with this output shape:
    f32[]; `fan_in` may be traced (a layer's valid fan-in in a masked network)."""
    return jnp.asarray(fan_in, jnp.float32) * _per_image(out_shape)


def valid_fraction(weight, channels: jax.Array | None = None) -> jax.Array:
    """`weight` times the fraction of valid channels (all when `channels` is None).

    Scales the FLOPs of a layer computed at full width down to its valid channels.
    """
    weight = jnp.asarray(weight, jnp.float32)
    return weight if channels is None else weight * jnp.mean(channels)


def batch_norm_flops(shape, affine: bool = True) -> float:
    """Tensorwatch's count: 2 per element with affine parameters, 1 without."""
    return (2.0 if affine else 1.0) * _per_image(shape)


def relu_flops(shape) -> float:
    return float(_per_image(shape))


def avg_pool_flops(out_shape, window: int) -> float:
    return float(window * window * _per_image(out_shape))


def global_avg_pool_flops(shape) -> float:
    """Tensorwatch's adaptive-pool count for a 1x1 output: (H + 1)(W + 1) per channel."""
    _, h, w, c = shape
    return float(c * (h + 1) * (w + 1))
