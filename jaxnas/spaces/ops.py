"""Building blocks shared by the search spaces: pure op functions and Linen parameter holders.

Each op is written once as a pure function of `(weights, x)`. The data-driven networks
call these functions inside `lax.switch` branches (Linen modules cannot be called inside
JAX control flow); the materialised networks call the same functions through the Linen
modules below, which declare the parameters under the same names. Both paths therefore
compute identical results from identical parameters.

Conventions follow the PyTorch reference models: NHWC activations, HWIO kernels,
explicit symmetric padding, BatchNorm eps 1e-5 with the biased batch variance, and
PyTorch's default initialisation (kaiming-uniform with a=sqrt(5), i.e.
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), for conv and linear weights and linear biases;
BatchNorm gamma=1, beta=0).
"""

import functools
import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from jaxnas.network import Network, from_linen

BN_EPS = 1e-5
BN_MOMENTUM = 0.1  # PyTorch convention: running = (1 - m) * running + m * batch.

torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int):
    """PyTorch's default bias init for a layer with `fan_in` inputs per output."""
    bound = 1.0 / np.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def torch_init(key: jax.Array, shapes) -> dict:
    """PyTorch's default initialisation of a parameter tree, from a single RNG call.

    Equivalent in distribution to initialising the Linen modules of this file, but the
    random numbers come from one `jax.random.uniform` draw that is sliced per leaf.
    Linen's own `init` derives a key and draws numbers per leaf: for a supernet with
    hundreds of leaves that costs tens of seconds of XLA compile time (WORKSPACE_NOTES).

    Rules by leaf name: `kernel` ~ U(+-1/sqrt(fan_in)) with fan_in the product of all
    but the last axis (HWIO conv, [in, out] linear); `bias` next to a `kernel` (a
    linear layer) ~ U(+-1/sqrt(fan_in)) of that kernel; BatchNorm `scale` = 1 and `bias`
    = 0.

    Args:
      key: PRNG key.
      shapes: nested dict of `jax.ShapeDtypeStruct` (e.g. from `jax.eval_shape`).

    Returns:
      A nested dict of f32 arrays with the structure of `shapes`.
    """
    bounds = {}  # path -> bound of a uniform leaf

    def collect(tree, path):
        for name, leaf in tree.items():
            if isinstance(leaf, dict):
                collect(leaf, path + (name,))
            elif name == "kernel":
                bounds[path + (name,)] = 1.0 / math.sqrt(math.prod(leaf.shape[:-1]))
            elif name == "bias" and "kernel" in tree:
                bounds[path + (name,)] = 1.0 / math.sqrt(math.prod(tree["kernel"].shape[:-1]))
            elif name not in ("scale", "bias"):
                raise ValueError(f"torch_init: no init rule for parameter {'/'.join(path)}/{name}")

    collect(shapes, ())
    sizes = [math.prod(_leaf(shapes, path).shape) for path in bounds]
    flat = jax.random.uniform(key, (sum(sizes),), jnp.float32, -1.0, 1.0)
    offsets = np.cumsum([0] + sizes)
    drawn = {
        path: flat[offsets[i] : offsets[i + 1]].reshape(_leaf(shapes, path).shape) * bound
        for i, (path, bound) in enumerate(bounds.items())
    }

    def build(tree, path):
        out = {}
        for name, leaf in tree.items():
            p = path + (name,)
            if isinstance(leaf, dict):
                out[name] = build(leaf, p)
            elif p in drawn:
                out[name] = drawn[p]
            elif name == "scale":
                out[name] = jnp.ones(leaf.shape, jnp.float32)
            else:
                out[name] = jnp.zeros(leaf.shape, jnp.float32)
        return out

    return build(shapes, ())


def _leaf(tree, path):
    for name in path:
        tree = tree[name]
    return tree


# ----------------------------------------------------------------------------- pure ops


def conv2d(
    x: jax.Array,
    kernel: jax.Array,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> jax.Array:
    """PyTorch-style 2-D convolution (no bias): f32[B, H, W, Ci] -> f32[B, H', W', Co].

    Ungrouped convolutions differentiate through `_conv2d` (a custom JVP, so forward and
    reverse mode both work), whose kernel gradient avoids a slow XLA:CPU path.
    """
    if groups == 1:
        return _conv2d(x, kernel, stride, padding, dilation)
    return _conv(x, kernel, stride, padding, dilation, groups)


def _conv(x, kernel, stride, padding, dilation, groups=1):
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def _conv2d(x, kernel, stride, padding, dilation):
    return _conv(x, kernel, stride, padding, dilation)


@functools.partial(_conv2d.defjvp, symbolic_zeros=True)
def _conv2d_jvp(stride, padding, dilation, primals, tangents):
    x, kernel = primals
    dx, dk = tangents
    out = _conv(x, kernel, stride, padding, dilation)
    tangent = jnp.zeros_like(out)
    if not isinstance(dx, SymbolicZero):
        tangent = tangent + _conv(dx, kernel, stride, padding, dilation)
    if not isinstance(dk, SymbolicZero):
        # Reverse mode transposes this term into the kernel gradient. JAX's own rule for a
        # convolution's kernel is a convolution with permuted dimension labels; inside a
        # `lax.switch` branch XLA:CPU keeps that layout and runs a generic convolution
        # ~50x slower than outside (measured: 2.1 s vs 0.04 s for one 3x3 conv, batch 64,
        # 32x32x16). As a sum of shifted-input matrix products, its transpose is plain
        # matrix products. `checkpoint` keeps only x for the backward pass (not k*k
        # shifted copies).
        tangent = tangent + jax.checkpoint(_conv_by_kernel, static_argnums=(2, 3, 4))(
            x, dk, stride, padding, dilation
        )
    return out, tangent


def _conv_by_kernel(x, kernel, stride, padding, dilation):
    """`_conv(x, kernel)` as a sum over kernel taps of strided input slices times kernel[i, j]."""
    kh, kw = kernel.shape[0], kernel.shape[1]
    xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    ho = (xp.shape[1] - dilation * (kh - 1) - 1) // stride + 1
    wo = (xp.shape[2] - dilation * (kw - 1) - 1) // stride + 1
    out = None
    for i in range(kh):
        for j in range(kw):
            start = (0, i * dilation, j * dilation, 0)
            limit = (
                xp.shape[0],
                i * dilation + stride * (ho - 1) + 1,
                j * dilation + stride * (wo - 1) + 1,
                xp.shape[3],
            )
            window = jax.lax.slice(xp, start, limit, (1, stride, stride, 1))
            term = jnp.einsum("bhwc,co->bhwo", window, kernel[i, j])
            out = term if out is None else out + term
    return out


def batch_stats(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-channel mean and biased variance over (B, H, W): two f32[C]."""
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes)
    return mean.reshape(-1), var


def normalize(x, mean, var, scale, bias):
    """Per-channel affine normalisation; the f32[C] vectors broadcast over NHW."""
    shape = (1,) * (x.ndim - 1) + (-1,)
    mean, var, scale, bias = (jnp.reshape(v, shape) for v in (mean, var, scale, bias))
    return (x - mean) * jax.lax.rsqrt(var + BN_EPS) * scale + bias


def batch_norm(x: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
    """BatchNorm in train mode: normalises with the statistics of this batch."""
    mean, var = batch_stats(x)
    return normalize(x, mean, var, scale, bias)


def avg_pool_3x3(x: jax.Array) -> jax.Array:
    """3x3 average pooling, stride 1, padding 1, `count_include_pad=False`."""
    # Separable sums of shifted slices: several times faster on CPU than reduce_window.
    h, w = x.shape[1], x.shape[2]
    p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    rows = p[:, :h] + p[:, 1 : h + 1] + p[:, 2 : h + 2]
    total = rows[:, :, :w] + rows[:, :, 1 : w + 1] + rows[:, :, 2 : w + 2]
    # The divisors depend only on the static spatial shape: trace-time constants.
    n_rows = np.minimum(np.arange(h) + 2, h) - np.maximum(np.arange(h) - 1, 0)
    n_cols = np.minimum(np.arange(w) + 2, w) - np.maximum(np.arange(w) - 1, 0)
    counts = (n_rows[:, None] * n_cols[None, :]).astype(np.float32)
    return total / counts[None, :, :, None]


def avg_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 average pooling with stride 2 (odd trailing rows/columns are dropped)."""
    b, h, w, c = x.shape
    x = x[:, : h - h % 2, : w - w % 2, :]
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def global_avg_pool(x: jax.Array) -> jax.Array:
    return jnp.mean(x, axis=(1, 2))


def max_pool_3x3(x: jax.Array) -> jax.Array:
    """3x3 max pooling, stride 1, 'same' padding that never wins (TF `same`, PyTorch pad 1)."""
    # Separable maxima of shifted slices, like `avg_pool_3x3` (reduce_window is slow on CPU).
    h, w = x.shape[1], x.shape[2]
    p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
    rows = jnp.maximum(jnp.maximum(p[:, :h], p[:, 1 : h + 1]), p[:, 2 : h + 2])
    return jnp.maximum(jnp.maximum(rows[:, :, :w], rows[:, :, 1 : w + 1]), rows[:, :, 2 : w + 2])


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max pooling with stride 2 (odd trailing rows/columns are dropped)."""
    b, h, w, c = x.shape
    x = x[:, : h - h % 2, : w - w % 2, :]
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def channel_mask(count: jax.Array, width: int) -> jax.Array:
    """f32[width]: 1 for the first `count` channels (the valid ones), 0 for the rest."""
    return (jnp.arange(width) < count).astype(jnp.float32)


def mask_channels(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Multiplies NHWC activations by a per-channel mask f32[C] (explicit broadcast)."""
    return x * jnp.reshape(mask, (1,) * (x.ndim - 1) + (-1,))


class ConvBNWeights(NamedTuple):
    kernel: jax.Array  # f32[k, k, Ci, Co]
    scale: jax.Array  # f32[Co]
    bias: jax.Array  # f32[Co]


def conv_bn(
    w: ConvBNWeights, x: jax.Array, stride: int, padding: int, bn: bool = True
) -> jax.Array:
    """Conv (no bias) -> BatchNorm (train mode; identity when `bn` is False)."""
    y = conv2d(x, w.kernel, stride, padding)
    return batch_norm(y, w.scale, w.bias) if bn else y


def relu_conv_bn(
    w: ConvBNWeights, x: jax.Array, stride: int, padding: int, bn: bool = True
) -> jax.Array:
    """NB201's ReLUConvBN: ReLU -> Conv (no bias) -> BatchNorm (train mode)."""
    return conv_bn(w, jax.nn.relu(x), stride, padding, bn)


# ------------------------------------------------------------------ Linen declarations


class BatchNorm(nn.Module):
    """BatchNorm with PyTorch conventions.

    `weights()` returns `(scale, bias)` for the pure functions. `__call__(x, train)`
    uses batch statistics when `train` and, when `track_running_stats`, keeps running
    statistics in the `batch_stats` collection for evaluation mode. With `enabled`
    False the layer is the identity (its parameters still exist, unused): the
    `batch_norm=False` network override that synflow needs.
    """

    features: int
    track_running_stats: bool = False
    enabled: bool = True

    def setup(self):
        self.scale = self.param("scale", nn.initializers.ones, (self.features,))
        self.bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.track_running_stats:
            self.running_mean = self.variable(
                "batch_stats", "mean", jnp.zeros, (self.features,), jnp.float32
            )
            self.running_var = self.variable(
                "batch_stats", "var", jnp.ones, (self.features,), jnp.float32
            )

    def weights(self) -> tuple[jax.Array, jax.Array]:
        return self.scale, self.bias

    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        if not self.enabled:
            return x
        if train or not self.track_running_stats:
            mean, var = batch_stats(x)
            if self.track_running_stats and not self.is_initializing():
                n = x.size / x.shape[-1]
                unbiased = var * n / max(n - 1, 1)
                self.running_mean.value = (
                    1 - BN_MOMENTUM
                ) * self.running_mean.value + BN_MOMENTUM * mean
                self.running_var.value = (
                    1 - BN_MOMENTUM
                ) * self.running_var.value + BN_MOMENTUM * unbiased
        else:
            mean, var = self.running_mean.value, self.running_var.value
        return normalize(x, mean, var, self.scale, self.bias)


class Conv(nn.Module):
    """A bias-free convolution kernel `f32[k, k, Ci, Co]` with PyTorch's default init."""

    in_features: int
    features: int
    kernel_size: int

    def setup(self):
        k = self.kernel_size
        self.kernel = self.param(
            "kernel", torch_kernel_init, (k, k, self.in_features, self.features)
        )


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm; with `relu=True` it is NB201's ReLUConvBN."""

    in_features: int
    features: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    relu: bool = False
    track_running_stats: bool = False
    batch_norm: bool = True

    def setup(self):
        self.conv = Conv(self.in_features, self.features, self.kernel_size)
        self.bn = BatchNorm(self.features, self.track_running_stats, self.batch_norm)

    def weights(self) -> ConvBNWeights:
        return ConvBNWeights(self.conv.kernel, *self.bn.weights())

    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        if self.relu:
            x = jax.nn.relu(x)
        return self.bn(conv2d(x, self.conv.kernel, self.stride, self.padding), train)


class Dense(nn.Module):
    """A linear classifier with PyTorch's default init."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        kernel = self.param("kernel", torch_kernel_init, (fan_in, self.features))
        bias = self.param("bias", torch_bias_init(fan_in), (self.features,))
        return x @ kernel + bias[None, :]


# -------------------------------------------------------------------- data-driven nets


@functools.lru_cache(maxsize=128)
def _param_shapes(module: nn.Module, x: jax.ShapeDtypeStruct, genotype: jax.ShapeDtypeStruct):
    variables = jax.eval_shape(module.init, jax.random.key(0), x, genotype)
    return variables["params"]


def supernet(
    module: nn.Module, genotype: jax.Array, param_mask=None, init_fn=torch_init
) -> Network:
    """The `Network` of a data-driven Linen module called as `module(x, genotype)`.

    Its parameters (`{"params": ...}`) do not depend on the genotype's value, and `init`
    uses `init_fn(key, shapes)` (default `torch_init`; a space whose reference code
    initialises differently passes its own one-RNG-call initialiser), so one
    initialisation serves a whole population. `param_mask` is passed through to the
    `Network`.
    """
    genotype = jnp.asarray(genotype)
    linen = from_linen(module, genotype, mutable=())

    def init(key, x):
        shapes = _param_shapes(
            module,
            jax.ShapeDtypeStruct(x.shape, x.dtype),
            jax.ShapeDtypeStruct(genotype.shape, genotype.dtype),
        )
        return {"params": init_fn(key, shapes)}

    return Network(init, linen.apply, param_mask)


def restrict_params(params, template):
    """A materialised network's parameters, cut out of a data-driven network's.

    Every leaf of `template` (the materialised network's parameters, arrays or
    `jax.ShapeDtypeStruct`s) takes the data-driven parameter at the same path. Spaces
    that mask channels keep a layer's valid channels first, so the materialised
    parameter is the leading slice `[:n0, :n1, ...]` of the data-driven one.

    Args:
      params: nested dict of the data-driven network's parameters.
      template: nested dict with a subset of the paths of `params`.

    Returns:
      A nested dict with the structure and shapes of `template`.
    """
    out = {}
    for name, leaf in template.items():
        if isinstance(leaf, dict):
            out[name] = restrict_params(params[name], leaf)
        else:
            out[name] = params[name][tuple(slice(0, n) for n in leaf.shape)]
    return out
