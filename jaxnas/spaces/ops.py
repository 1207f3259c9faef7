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

Instrumentation (`jaxnas.types.Probes`, recorded only when a caller asks): the modules
`Conv`, `ConvBN`, `BatchNorm`, `Dense` and the DARTS op modules (`ReLUConvsBN`,
`SepConv`, `FactorizedReduce`) probe their layers, statistics and FLOPs themselves when
called; code that calls the pure functions directly (inside `lax.switch` branches)
passes the modules' gates in and records the same things through their `record`
methods (with the op modules' static `costs`), `network.sow_cost` and the `*_flops`
functions below, so that every space gets the same probes.

FLOPs per image follow tensorwatch's counters, which NAS-Bench-Suite-Zero used through
NASLib's `get_model_stats`: a convolution or linear layer counts one per
multiply-accumulate (k_h k_w C_in/groups per output element; biases not counted),
BatchNorm 2 per element (1 without affine parameters), ReLU 1 per element, a k x k
pooling k^2 per output element, global average pooling (H + 1)(W + 1) per channel
(tensorwatch's adaptive-pool formula), and additions of branches nothing.
"""

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from jaxnas import network as net_lib
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
    uniform = functools.partial(jax.random.uniform, dtype=jnp.float32, minval=-1.0, maxval=1.0)
    return _draw_scaled(key, shapes, bounds, uniform)


def fan_out_normal_init(key: jax.Array, shapes) -> dict:
    """Kaiming-normal (fan-out) convolutions and N(0, 0.01^2) linear layers, one RNG call.

    The initialisation of the NB101 PyTorch models (`Network._initialize_weights` in
    NASWOT's `nas_101_api/model.py` and NASLib's `nasbench101/model.py`, which NAS-Bench-
    Suite-Zero scored): conv kernels
    [k_h, k_w, C_in, C_out] ~ N(0, 2 / (k_h k_w C_out)), linear kernels ~ N(0, 0.01^2),
    every bias 0, BatchNorm `scale` 1.

    Args:
      key: PRNG key.
      shapes: nested dict of `jax.ShapeDtypeStruct` (e.g. from `jax.eval_shape`).

    Returns:
      A nested dict of f32 arrays with the structure of `shapes`.
    """
    stds = {}

    def collect(tree, path):
        for name, leaf in tree.items():
            if isinstance(leaf, dict):
                collect(leaf, path + (name,))
            elif name == "kernel" and len(leaf.shape) == 4:
                stds[path + (name,)] = math.sqrt(2.0 / math.prod((*leaf.shape[:2], leaf.shape[3])))
            elif name == "kernel" and len(leaf.shape) == 2:
                stds[path + (name,)] = 0.01
            elif name not in ("scale", "bias"):
                raise ValueError(
                    f"fan_out_normal_init: no init rule for parameter {'/'.join(path)}/{name}"
                )

    collect(shapes, ())
    return _draw_scaled(key, shapes, stds, functools.partial(jax.random.normal, dtype=jnp.float32))


def _draw_scaled(key: jax.Array, shapes, scales: dict, sample) -> dict:
    """`fill_params` with each leaf of `scales` (path -> scale) drawn by one `sample(key,
    (n,))` call for all of them, sliced per leaf and multiplied by its scale."""
    sizes = [math.prod(_leaf(shapes, path).shape) for path in scales]
    flat = sample(key, (sum(sizes),))
    offsets = np.cumsum([0] + sizes)
    drawn = {
        path: flat[offsets[i] : offsets[i + 1]].reshape(_leaf(shapes, path).shape) * scale
        for i, (path, scale) in enumerate(scales.items())
    }
    return fill_params(shapes, drawn)


def _mask_count(mask: jax.Array, shape: tuple[int, ...], axes) -> jax.Array:
    """Sum over `axes` (kept) of a 0/1 mask broadcastable to `shape`, not materialised."""
    m = jnp.asarray(mask, jnp.float32)
    m = m.reshape((1,) * (len(shape) - m.ndim) + m.shape)
    for a in axes:
        m = m.sum(a, keepdims=True) if m.shape[a] > 1 else m * shape[a]
    return m


def _width_factor(mask, shape, axes) -> jax.Array:
    """sqrt(full fan / selected fan) per unit; 1 where nothing is selected."""
    selected = _mask_count(mask, shape, axes)
    full = math.prod(shape[a] for a in axes)
    return jnp.where(selected > 0, jnp.sqrt(full / jnp.maximum(selected, 1.0)), 1.0)


def _rescale_kernels(params, mask, rule, scale_bias: bool):
    """Multiplies every `kernel` by `rule(kernel, its mask)` (None: unchanged), and with
    `scale_bias` the `bias` beside it by the same per-output factor."""
    out = {
        name: _rescale_kernels(leaf, mask[name], rule, scale_bias)
        if isinstance(leaf, dict)
        else leaf
        for name, leaf in params.items()
    }
    factor = rule(params["kernel"], mask["kernel"]) if "kernel" in params else None
    if factor is not None:
        out["kernel"] = params["kernel"] * factor
        if scale_bias and "bias" in params:
            out["bias"] = params["bias"] * factor.reshape(-1)
    return out


def rescale_fan_in(params, mask):
    """Rescales a `torch_init` draw at maximum widths to the selected fan-ins.

    `torch_init` draws a kernel and the bias beside it from U(+-1/sqrt(fan_in)), fan_in
    the product of all but the last kernel axis at the space's maximum widths. The
    materialised network's layer reads only the selected inputs, so its bound is
    1/sqrt(selected fan_in): each output unit's kernel column and bias are multiplied by
    sqrt(fan_in / selected fan_in), which makes the selected slice exactly its
    distribution. Units that read no selected input are left as drawn.

    Args:
      params: `{"params": ...}` drawn by `torch_init`.
      mask: `param_mask(params)` (leaves broadcastable to the parameters).

    Returns:
      `params` with the rescaled kernels and biases.
    """

    def rule(kernel, kernel_mask):
        return _width_factor(kernel_mask, kernel.shape, tuple(range(kernel.ndim - 1)))

    return _rescale_kernels(params, mask, rule, scale_bias=True)


def rescale_fan_out(params, mask):
    """Rescales a `fan_out_normal_init` draw at maximum widths to the selected fan-outs.

    A conv kernel's std sqrt(2 / (k_h k_w C_out)) depends on its output width: each
    input row of a kernel is multiplied by sqrt(k_h k_w C_out / selected k_h k_w C_out).
    Linear layers (fixed std) and biases (0) are unchanged.

    Args:
      params: `{"params": ...}` drawn by `fan_out_normal_init`.
      mask: `param_mask(params)`.

    Returns:
      `params` with the rescaled conv kernels.
    """

    def rule(kernel, kernel_mask):
        if kernel.ndim != 4:
            return None
        return _width_factor(kernel_mask, kernel.shape, (0, 1, 3))

    return _rescale_kernels(params, mask, rule, scale_bias=False)


def fill_params(shapes, drawn: dict) -> dict:
    """Parameters shaped like `shapes`: the `drawn[path]` arrays where given, else the
    PyTorch defaults of the remaining leaves (BatchNorm / LayerNorm `scale` 1, others 0)."""

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


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def conv2d(
    x: jax.Array,
    kernel: jax.Array,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int = 1,
    groups: int = 1,
) -> jax.Array:
    """PyTorch-style 2-D convolution (no bias): f32[B, H, W, Ci] -> f32[B, H', W', Co].

    `stride` and `padding` are an int or an (H, W) pair (e.g. NASNet's 1x7 convs);
    `groups == Ci` with a kernel f32[k, k, 1, Ci] is a depthwise convolution. Ungrouped
    convolutions differentiate through `_conv2d` (a custom JVP, so forward and reverse
    mode both work), whose kernel gradient avoids a slow XLA:CPU path.
    """
    stride, padding = _pair(stride), _pair(padding)
    if groups > 1 and groups == x.shape[-1] == kernel.shape[-1] and kernel.shape[2] == 1:
        return _depthwise_conv2d(x, kernel, stride, padding, dilation)
    if groups == 1:
        return _conv2d(x, kernel, stride, padding, dilation)
    return _conv(x, kernel, stride, padding, dilation, groups)


def switch(index: jax.Array, branches, *operands):
    """`lax.switch(index, branches, *operands)` that keeps only its operands for reverse mode.

    Reverse-mode differentiation of `lax.switch` makes the forward switch return the
    residuals of every branch (zeros from those not taken), so a gradient through an
    edge keeps the intermediates of all its candidate ops, and XLA:CPU allocates them
    all (a DARTS network's 5-proxy gradient program asked for 53.6 GB at batch 64).
    Under `jax.checkpoint` the backward pass recomputes the taken branch from the
    operands instead.
    """
    return jax.checkpoint(lambda i, *xs: jax.lax.switch(i, branches, *xs))(index, *operands)


def _conv(x, kernel, stride, padding, dilation, groups=1):
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        window_strides=stride,
        padding=[(padding[0], padding[0]), (padding[1], padding[1])],
        rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )


def _shifted_windows(x, kernel_size, stride, padding, dilation):
    """Yields `(i, j, window)`: the strided input slice that kernel tap (i, j) multiplies."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    p = jax.lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (ph, ph, 0), (pw, pw, 0), (0, 0, 0)))
    b, hp, wp, c = p.shape
    h = (hp - dilation * (kh - 1) - 1) // sh + 1
    w = (wp - dilation * (kw - 1) - 1) // sw + 1
    for i in range(kh):
        for j in range(kw):
            r, col = i * dilation, j * dilation
            limit = (b, r + (h - 1) * sh + 1, col + (w - 1) * sw + 1, c)
            yield i, j, jax.lax.slice(p, (0, r, col, 0), limit, (1, sh, sw, 1))


@functools.partial(jax.checkpoint, static_argnums=(2, 3, 4))
def _depthwise_conv2d(x, kernel, stride, padding, dilation):
    """A depthwise convolution as a sum of shifted, strided slices times kernel taps.

    XLA:CPU lowers grouped convolutions to a slow generic loop: on this project's CPU a
    jitted 5x5 depthwise conv of f32[32, 32, 32, 32] took 95 ms with
    `conv_general_dilated` and 7 ms as shifted multiply-adds (both under a load of 8 on
    2 cores). `lax` primitives keep the k * k terms cheap to trace. Under
    `jax.checkpoint`, reverse mode keeps only x and the kernel, not the k * k input
    slices and broadcast taps (a one-cell DARTS gradient program: 1.32 -> 0.53 GB).
    """
    out = None
    for i, j, window in _shifted_windows(x, kernel.shape[:2], stride, padding, dilation):
        tap = jax.lax.broadcast_in_dim(kernel[i, j, 0], window.shape, (3,))
        term = jax.lax.mul(window, tap)
        out = term if out is None else jax.lax.add(out, term)
    return out


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
    out = None
    for i, j, window in _shifted_windows(x, kernel.shape[:2], stride, padding, dilation):
        term = jnp.einsum("bhwc,co->bhwo", window, kernel[i, j])
        out = term if out is None else out + term
    return out


def batch_stats(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-channel mean and biased variance over (B, H, W): two f32[C]."""
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes)
    return mean.reshape(-1), var


def normalize(x, mean, var, scale=None, bias=None):
    """Per-channel normalisation; the f32[C] vectors broadcast over NHW.

    `scale` and `bias` None is PyTorch's `affine=False` (no learnable parameters).
    """
    shape = (1,) * (x.ndim - 1) + (-1,)
    y = (x - jnp.reshape(mean, shape)) * jax.lax.rsqrt(jnp.reshape(var, shape) + BN_EPS)
    if scale is None:
        return y
    return y * jnp.reshape(scale, shape) + jnp.reshape(bias, shape)


def batch_norm_parts(y: jax.Array, scale, bias, bn: bool = True) -> tuple[jax.Array, jax.Array]:
    """`(batch_norm(y), variance f32[C])`; `(y, zeros)` when `bn` is False."""
    if not bn:
        return y, jnp.zeros(y.shape[-1:], y.dtype)
    mean, var = batch_stats(y)
    return normalize(y, mean, var, scale, bias), var


def batch_norm(x: jax.Array, scale: jax.Array | None, bias: jax.Array | None) -> jax.Array:
    """BatchNorm in train mode: normalises with the statistics of this batch."""
    return batch_norm_parts(x, scale, bias)[0]


def _separable_window(p: jax.Array, size: int, h: int, w: int, combine) -> jax.Array:
    """Reduces `size` shifted slices along H, then along W, of a padded array."""
    rows = p[:, :h]
    for i in range(1, size):
        rows = combine(rows, p[:, i : h + i])
    out = rows[:, :, :w]
    for i in range(1, size):
        out = combine(out, rows[:, :, i : w + i])
    return out


def avg_pool(x: jax.Array, size: int, stride: int = 1) -> jax.Array:
    """PyTorch `AvgPool2d(size, stride, padding=size // 2, count_include_pad=False)`.

    Odd `size` only: f32[B, H, W, C] -> f32[B, ceil(H / stride), ceil(W / stride), C].
    """
    # Separable sums of shifted slices: several times faster on CPU than reduce_window.
    # A strided pool is the stride-1 pool sampled every `stride` positions.
    h, w, r = x.shape[1], x.shape[2], size // 2
    p = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)))
    total = _separable_window(p, size, h, w, jnp.add)
    # The divisors depend only on the static spatial shape: trace-time constants.
    n_rows = np.minimum(np.arange(h) + r + 1, h) - np.maximum(np.arange(h) - r, 0)
    n_cols = np.minimum(np.arange(w) + r + 1, w) - np.maximum(np.arange(w) - r, 0)
    counts = (n_rows[:, None] * n_cols[None, :]).astype(np.float32)
    return (total / counts[None, :, :, None])[:, ::stride, ::stride]


def avg_pool_3x3(x: jax.Array) -> jax.Array:
    """3x3 average pooling, stride 1, padding 1, `count_include_pad=False`."""
    return avg_pool(x, 3)


def max_pool(x: jax.Array, size: int, stride: int = 1) -> jax.Array:
    """PyTorch `MaxPool2d(size, stride, padding=size // 2)` (padding never wins).

    Odd `size` only: f32[B, H, W, C] -> f32[B, ceil(H / stride), ceil(W / stride), C].
    """
    h, w, r = x.shape[1], x.shape[2], size // 2
    p = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), constant_values=-jnp.inf)
    return _separable_window(p, size, h, w, jnp.maximum)[:, ::stride, ::stride]


def max_pool_3x3(x: jax.Array) -> jax.Array:
    """3x3 max pooling, stride 1, 'same' padding that never wins (TF `same`, PyTorch pad 1)."""
    return max_pool(x, 3)


def avg_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 average pooling with stride 2 (odd trailing rows/columns are dropped)."""
    b, h, w, c = x.shape
    x = x[:, : h - h % 2, : w - w % 2, :]
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def global_avg_pool(x: jax.Array) -> jax.Array:
    return jnp.mean(x, axis=(1, 2))


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


# ----------------------------------------------------------------------- FLOP counts


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


def global_pool_features(module: nn.Module, x: jax.Array, mask=None) -> jax.Array:
    """Global average pooling that records its input as the feature map `"pre_gap"`;
    `mask` (f32[C], 0/1) marks the valid channels of a masked input."""
    net_lib.sow_feature(module, "pre_gap", x)
    flops = global_avg_pool_flops(x.shape) * valid_fraction(1.0, mask)
    net_lib.sow_cost(module, "global_pool_flops", flops)
    return global_avg_pool(x)


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


class ConvSpec(NamedTuple):
    """A static bias-free convolution of a `ReLUConvsBN` chain (DARTS / NDS cell ops).

    `depthwise` convolutions keep the channel count (kernel f32[kh, kw, 1, C]); the
    others map to the chain's output width (kernel f32[kh, kw, Ci, Co]).
    """

    kernel_size: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: int = 1
    depthwise: bool = False


def conv_out_shape(shape, spec: ConvSpec, features: int) -> tuple[int, ...]:
    """NHWC output shape of a `ConvSpec` convolution of an input of `shape`."""
    b, h, w, _ = shape
    (kh, kw), (sh, sw), (ph, pw), d = spec.kernel_size, spec.stride, spec.padding, spec.dilation
    return (
        b,
        (h + 2 * ph - d * (kh - 1) - 1) // sh + 1,
        (w + 2 * pw - d * (kw - 1) - 1) // sw + 1,
        features,
    )


def _gate_of(gates, i):
    return None if gates is None else gates[i]


def relu_convs(kernels, x: jax.Array, convs, gates=None) -> jax.Array:
    """ReLU followed by a chain of bias-free convolutions (`convs`: ConvSpec, ...).

    `gates`: None, or one f32[B, C] gate (or None) per conv, scaling its output by
    `1 + gate` (`network.gate`).
    """
    y = jax.nn.relu(x)
    for i, (kernel, spec) in enumerate(zip(kernels, convs, strict=True)):
        groups = y.shape[-1] if spec.depthwise else 1
        y = conv2d(y, kernel, spec.stride, spec.padding, spec.dilation, groups)
        y = net_lib.apply_gate(y, _gate_of(gates, i))
    return y


class ReLUConvsBNWeights(NamedTuple):
    kernels: tuple[jax.Array, ...]  # one kernel per ConvSpec
    scale: jax.Array | None  # f32[Co]; None without affine BatchNorm parameters
    bias: jax.Array | None


def relu_convs_bn(
    w: ReLUConvsBNWeights, x: jax.Array, convs, bn: bool = True, gates=None
) -> tuple[jax.Array, tuple[jax.Array]]:
    """ReLU -> convs -> BatchNorm (train mode; identity when `bn` is False).

    With one conv it is DARTS' ReLUConvBN; depthwise + pointwise is DARTS' DilConv and
    each half of its SepConv; a 1x7 then 7x1 conv is NASNet's `conv_7x1_1x7`.

    Returns:
      `(out, (variance,))`: the output and the BatchNorm's batch variance f32[Co].
    """
    out, var = batch_norm_parts(relu_convs(w.kernels, x, convs, gates), w.scale, w.bias, bn)
    return out, (var,)


def conv_specs(size: int, stride: int) -> tuple[ConvSpec]:
    """One square conv, padding `size // 2` (DARTS / NDS `conv_1x1`, `conv_3x3`)."""
    return (ConvSpec((size, size), (stride, stride), (size // 2, size // 2)),)


def factorized_conv_specs(size: int, stride: int) -> tuple[ConvSpec, ConvSpec]:
    """A 1xk then a kx1 conv (NASNet's `conv_3x1_1x3`, `conv_7x1_1x7`)."""
    r = size // 2
    return (
        ConvSpec((1, size), (1, stride), (0, r)),
        ConvSpec((size, 1), (stride, 1), (r, 0)),
    )


def dil_conv_specs(size: int, stride: int, dilation: int = 2) -> tuple[ConvSpec, ConvSpec]:
    """Depthwise (dilated) kxk conv then pointwise 1x1 conv: DARTS' DilConv."""
    pad = dilation * (size // 2)
    return (
        ConvSpec((size, size), (stride, stride), (pad, pad), dilation, depthwise=True),
        ConvSpec((1, 1)),
    )


def sep_conv_specs(size: int, stride: int, dilation: int = 1):
    """The two halves of DARTS' SepConv: (ReLU, depthwise, pointwise, BN) twice.

    Only the first depthwise conv is strided; `dilation=2` is NDS' `dil_sep_conv`.
    """
    return dil_conv_specs(size, stride, dilation), dil_conv_specs(size, 1, dilation)


def sep_conv(
    w: tuple[ReLUConvsBNWeights, ReLUConvsBNWeights],
    x: jax.Array,
    specs,
    bn: bool = True,
    gates=None,
) -> tuple[jax.Array, jax.Array, tuple[jax.Array, jax.Array]]:
    """DARTS' SepConv with `specs = sep_conv_specs(...)`; `gates` one per conv (4).

    Returns:
      `(out, mid, variances)`: the output and the input of the second ReLU (a
      pre-activation that kernel proxies tap), both f32[B, H', W', C], and the batch
      variances f32[C] of the two BatchNorms.
    """
    first, second = (None, None) if gates is None else (gates[:2], gates[2:])
    mid, (var1,) = relu_convs_bn(w[0], x, specs[0], bn, first)
    out, (var2,) = relu_convs_bn(w[1], mid, specs[1], bn, second)
    return out, mid, (var1, var2)


class FactorizedReduceWeights(NamedTuple):
    conv_1: jax.Array  # f32[1, 1, Ci, Co // 2]
    conv_2: jax.Array  # f32[1, 1, Ci, Co // 2]
    scale: jax.Array | None  # f32[Co]
    bias: jax.Array | None


def factorized_reduce_inputs(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The ReLU of `x` and its copy shifted by one pixel (zero-padded at the bottom /
    right as in pycls, which also admits odd H and W): FactorizedReduce's conv inputs."""
    x = jax.nn.relu(x)
    return x, jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))[:, 1:, 1:]


def factorized_reduce(
    w: FactorizedReduceWeights, x: jax.Array, bn: bool = True, gates=None
) -> tuple[jax.Array, tuple[jax.Array]]:
    """DARTS' FactorizedReduce: halves H and W. ReLU, then two stride-2 1x1 convs (the
    second on the shifted input), concatenated along channels, then BatchNorm.

    Returns:
      `(out, (variance,))`: f32[B, H', W', Co] and the batch variance f32[Co].
    """
    x, shifted = factorized_reduce_inputs(x)
    y = jnp.concatenate(
        [
            net_lib.apply_gate(conv2d(x, w.conv_1, 2), _gate_of(gates, 0)),
            net_lib.apply_gate(conv2d(shifted, w.conv_2, 2), _gate_of(gates, 1)),
        ],
        axis=-1,
    )
    out, var = batch_norm_parts(y, w.scale, w.bias, bn)
    return out, (var,)


def conv_bn_parts(
    w: ConvBNWeights,
    x: jax.Array,
    stride: int,
    padding: int,
    bn: bool = True,
    relu: bool = False,
    gate: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """`conv_bn` (after an optional ReLU) that also returns what probes record.

    Args:
      w: the op's weights.
      x: f32[B, H, W, Ci].
      stride, padding: of the convolution.
      bn: False makes the BatchNorm the identity.
      relu: apply a ReLU first (`relu_conv_bn`).
      gate: f32[B, Co] zeros scaling the conv output by `1 + gate` (`network.gate`).

    Returns:
      `(out, variance)`: the op's output f32[B, H', W', Co] and the biased batch
      variance f32[Co] of the conv output (zeros when `bn` is False).
    """
    if relu:
        x = jax.nn.relu(x)
    y = net_lib.apply_gate(conv2d(x, w.kernel, stride, padding), gate)
    return batch_norm_parts(y, w.scale, w.bias, bn)


# ------------------------------------------------------------------ Linen declarations


class BatchNorm(nn.Module):
    """BatchNorm with PyTorch conventions.

    `weights()` returns `(scale, bias)` for the pure functions. `__call__(x, train)`
    uses batch statistics when `train` and, when `track_running_stats`, keeps running
    statistics in the `batch_stats` collection for evaluation mode. With `enabled`
    False the layer is the identity (its parameters still exist, unused): the
    `batch_norm=False` network override that synflow needs. With `affine` False it
    has no parameters (PyTorch `affine=False`) and `weights()` is `(None, None)`.
    """

    features: int
    track_running_stats: bool = False
    enabled: bool = True
    affine: bool = True

    def setup(self):
        if self.affine:
            self.scale = self.param("scale", nn.initializers.ones, (self.features,))
            self.bias = self.param("bias", nn.initializers.zeros, (self.features,))
        else:
            self.scale = self.bias = None
        if self.track_running_stats:
            self.running_mean = self.variable(
                "batch_stats", "mean", jnp.zeros, (self.features,), jnp.float32
            )
            self.running_var = self.variable(
                "batch_stats", "var", jnp.ones, (self.features,), jnp.float32
            )

    def weights(self) -> tuple[jax.Array | None, jax.Array | None]:
        return self.scale, self.bias

    def record(
        self,
        variance: jax.Array,
        shape,
        weight: jax.Array | float = 1.0,
        channels: jax.Array | None = None,
    ) -> None:
        """Probes the statistics of an input of `shape` normalised outside the module
        (inside a `lax.switch`).

        `channels` (f32[C], 0/1) marks the valid channels of a layer whose width the
        data-driven network masks: only they count in the FLOPs and the statistics.
        """
        if self.enabled:
            count = math.prod(shape[:-1])
            net_lib.probe_norm(
                self, variance, count, weight if channels is None else weight * channels
            )
            flops = batch_norm_flops(shape, self.affine)
            net_lib.sow_cost(self, "flops", flops * valid_fraction(weight, channels))

    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        if not self.enabled:
            return x
        net_lib.sow_cost(self, "flops", batch_norm_flops(x.shape, self.affine))
        if train or not self.track_running_stats:
            mean, var = batch_stats(x)
            net_lib.probe_norm(self, var, x.size / x.shape[-1])
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
    """A bias-free convolution kernel `f32[kh, kw, Ci, Co]`.

    `kernel_size` is an int (square) or an (H, W) pair; `in_features` is the number of
    inputs per group (1 for a depthwise convolution); `kernel_init` is the kernel's Linen
    initialiser (default PyTorch's). Calling it convolves and probes the output
    (`network.probe_layer`).
    """

    in_features: int
    features: int
    kernel_size: int | tuple[int, int]
    kernel_init: Callable = torch_kernel_init

    def setup(self):
        kh, kw = _pair(self.kernel_size)
        self.kernel = self.param(
            "kernel", self.kernel_init, (kh, kw, self.in_features, self.features)
        )

    @property
    def fan_in(self) -> int:
        kh, kw = _pair(self.kernel_size)
        return kh * kw * self.in_features

    def gate(self) -> jax.Array | None:
        return net_lib.gate(self)

    def record(
        self,
        out_shape,
        weight: jax.Array | float = 1.0,
        fan_in: jax.Array | None = None,
        channels: jax.Array | None = None,
        flops: jax.Array | None = None,
    ) -> None:
        """Probes an output of shape `out_shape` computed outside the module (inside a
        `lax.switch` branch that applied the gate).

        A data-driven network that masks channels passes the layer's own `fan_in`
        (traced; default the kernel's) and its valid output `channels` (f32[C], 0/1):
        the FLOPs count only those, and fisher weighs the layer by that fan-in. `flops`
        overrides the count (an op whose switch branches run it at several strides).
        """
        fan_in = self.fan_in if fan_in is None else fan_in
        net_lib.record_layer(self, out_shape, fan_in, weight)
        if flops is None:
            flops = conv_flops(out_shape, fan_in) * valid_fraction(weight, channels)
        net_lib.sow_cost(self, "flops", flops)

    def __call__(
        self,
        x: jax.Array,
        stride=1,
        padding=0,
        dilation: int = 1,
        groups: int = 1,
        in_mask: jax.Array | None = None,
    ) -> jax.Array:
        """Convolves `x`; `in_mask` (f32[Ci], 0/1; ungrouped convolutions) marks the
        valid input channels of a data-driven network's masked input: the FLOPs and the
        fan-in count only those."""
        y = conv2d(x, self.kernel, stride, padding, dilation, groups)
        fan_in = self.fan_in if in_mask is None else self.fan_in * jnp.mean(in_mask)
        net_lib.sow_cost(self, "flops", conv_flops(y.shape, fan_in))
        return net_lib.probe_layer(self, y, fan_in)


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm; with `relu=True` it is NB201's ReLUConvBN.

    `kernel_init`: the conv kernel's Linen initialiser (default PyTorch's).
    """

    in_features: int
    features: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    relu: bool = False
    track_running_stats: bool = False
    batch_norm: bool = True
    affine: bool = True
    kernel_init: Callable = torch_kernel_init

    def setup(self):
        self.conv = Conv(self.in_features, self.features, self.kernel_size, self.kernel_init)
        self.bn = BatchNorm(self.features, self.track_running_stats, self.batch_norm, self.affine)

    def weights(self) -> ConvBNWeights:
        return ConvBNWeights(self.conv.kernel, *self.bn.weights())

    def gate(self) -> jax.Array | None:
        """The conv output's gate, if passed (for `conv_bn_parts`)."""
        return self.conv.gate()

    def record(
        self,
        x_shape,
        out_shape,
        variance: jax.Array,
        weight: jax.Array | float = 1.0,
        fan_in: jax.Array | None = None,
        channels: jax.Array | None = None,
    ) -> None:
        """Probes an application computed by `conv_bn_parts` outside the module.

        Records what `__call__` records (conv layer, BatchNorm statistics, FLOPs), with
        `weight` 0 for an op that is not in the architecture; `fan_in` and `channels`
        as in `Conv.record`, for a layer whose input and output channels are masked.
        """
        if self.relu:
            net_lib.sow_cost(
                self, "relu_flops", relu_flops(x_shape) * valid_fraction(weight, channels)
            )
        self.conv.record(out_shape, weight, fan_in, channels)
        self.bn.record(variance, out_shape, weight, channels)

    def __call__(
        self, x: jax.Array, train: bool = True, in_mask: jax.Array | None = None
    ) -> jax.Array:
        """`in_mask`: valid input channels, as in `Conv.__call__`."""
        if self.relu:
            net_lib.sow_cost(self, "relu_flops", relu_flops(x.shape) * valid_fraction(1.0, in_mask))
            x = jax.nn.relu(x)
        return self.bn(self.conv(x, self.stride, self.padding, in_mask=in_mask), train)


def _record_convs(module, convs, variants, variance) -> None:
    """Records an op applied inside a `lax.switch` (ReLU -> convs -> BatchNorm).

    `variants`: `(weight, costs)` pairs, the op's static `costs` at each stride it may
    run at (one per branch of the switch) weighted by whether that branch ran; the
    recorded FLOPs are their weighted sum.
    """
    weight = sum(w for w, _ in variants)
    net_lib.sow_cost(module, "relu_flops", sum(w * c["relu"] for w, c in variants))
    shapes = variants[0][1]["shapes"]
    for i, conv in enumerate(convs):
        conv.record(shapes[i], weight, flops=sum(w * c["convs"][i] for w, c in variants))
    module.bn.record(variance, variants[0][1]["out"], weight)


def _chain_costs(x_shape, convs, specs) -> dict:
    """Static FLOPs per image (tensorwatch's rules) of ReLU -> `convs` on `x_shape`."""
    shape, flops, shapes = x_shape, [], []
    for conv, spec in zip(convs, specs, strict=True):
        shape = conv_out_shape(shape, spec, conv.features)
        flops.append(conv_flops(shape, conv.fan_in))
        shapes.append(shape)
    return {"relu": relu_flops(x_shape), "convs": tuple(flops), "shapes": shapes, "out": shape}


class ReLUConvsBN(nn.Module):
    """ReLU -> a chain of bias-free convs (`convs`: ConvSpec, ...) -> BatchNorm.

    The Linen declaration of `relu_convs_bn`: kernels `conv0`, `conv1`, ... and `bn`.
    Called, it records its costs and probes; applied inside a `lax.switch` through the
    pure function, `costs` and `record` record the same.
    """

    in_features: int
    features: int
    convs: tuple[ConvSpec, ...]
    affine: bool = True
    track_running_stats: bool = False
    batch_norm: bool = True

    def setup(self):
        width = self.in_features
        for i, spec in enumerate(self.convs):
            if spec.depthwise:
                setattr(self, f"conv{i}", Conv(1, width, spec.kernel_size))
            else:
                setattr(self, f"conv{i}", Conv(width, self.features, spec.kernel_size))
                width = self.features
        self.bn = BatchNorm(width, self.track_running_stats, self.batch_norm, self.affine)

    def _convs(self) -> list[Conv]:
        return [getattr(self, f"conv{i}") for i in range(len(self.convs))]

    def kernels(self) -> tuple[jax.Array, ...]:
        return tuple(conv.kernel for conv in self._convs())

    def weights(self) -> ReLUConvsBNWeights:
        return ReLUConvsBNWeights(self.kernels(), *self.bn.weights())

    def gates(self) -> tuple[jax.Array | None, ...]:
        return tuple(conv.gate() for conv in self._convs())

    def costs(self, x_shape, convs=None) -> dict:
        """Static FLOPs per image on an input of `x_shape`, with this op's kernels at
        `convs` (default its own; the same kernels at another stride)."""
        return _chain_costs(x_shape, self._convs(), self.convs if convs is None else convs)

    def record(self, variants, variances) -> None:
        """Records an application inside a `lax.switch`; see `_record_convs`."""
        _record_convs(self, self._convs(), variants, variances[0])

    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        net_lib.sow_cost(self, "relu_flops", relu_flops(x.shape))
        y = jax.nn.relu(x)
        for conv, spec in zip(self._convs(), self.convs, strict=True):
            groups = y.shape[-1] if spec.depthwise else 1
            y = conv(y, spec.stride, spec.padding, spec.dilation, groups)
        return self.bn(y, train)


class SepConv(nn.Module):
    """The Linen declaration of `sep_conv`: two `ReLUConvsBN` halves `half1`, `half2`.

    `__call__(x, train)` returns `(out, mid)`.
    """

    features: int
    specs: tuple[tuple[ConvSpec, ...], tuple[ConvSpec, ...]]
    affine: bool = True
    track_running_stats: bool = False
    batch_norm: bool = True

    def setup(self):
        c, args = self.features, (self.affine, self.track_running_stats, self.batch_norm)
        self.half1 = ReLUConvsBN(c, c, self.specs[0], *args)
        self.half2 = ReLUConvsBN(c, c, self.specs[1], *args)

    def weights(self) -> tuple[ReLUConvsBNWeights, ReLUConvsBNWeights]:
        return self.half1.weights(), self.half2.weights()

    def gates(self) -> tuple[jax.Array | None, ...]:
        return self.half1.gates() + self.half2.gates()

    def costs(self, x_shape, specs=None) -> dict:
        """Static FLOPs per image of both halves (see `ReLUConvsBN.costs`)."""
        specs = self.specs if specs is None else specs
        first = self.half1.costs(x_shape, specs[0])
        return {"half1": first, "half2": self.half2.costs(first["out"], specs[1])}

    def record(self, variants, variances) -> None:
        """Records an application inside a `lax.switch`; see `_record_convs`."""
        for half, key, variance in zip((self.half1, self.half2), ("half1", "half2"), variances):
            half.record([(w, c[key]) for w, c in variants], (variance,))

    def __call__(self, x: jax.Array, train: bool = True) -> tuple[jax.Array, jax.Array]:
        mid = self.half1(x, train)
        return self.half2(mid, train), mid


class FactorizedReduce(nn.Module):
    """The Linen declaration of `factorized_reduce`: `conv_1`, `conv_2` and `bn`."""

    in_features: int
    features: int
    affine: bool = True
    track_running_stats: bool = False
    batch_norm: bool = True

    def setup(self):
        if self.features % 2:
            raise ValueError(f"FactorizedReduce needs an even width, got {self.features}")
        self.conv_1 = Conv(self.in_features, self.features // 2, 1)
        self.conv_2 = Conv(self.in_features, self.features // 2, 1)
        self.bn = BatchNorm(self.features, self.track_running_stats, self.batch_norm, self.affine)

    def weights(self) -> FactorizedReduceWeights:
        return FactorizedReduceWeights(self.conv_1.kernel, self.conv_2.kernel, *self.bn.weights())

    def gates(self) -> tuple[jax.Array | None, ...]:
        return self.conv_1.gate(), self.conv_2.gate()

    def costs(self, x_shape, specs=None) -> dict:
        """Static FLOPs per image on an input of `x_shape` (always stride 2)."""
        del specs
        spec = ConvSpec((1, 1), (2, 2))
        costs = _chain_costs(x_shape, (self.conv_1,), (spec,))
        half = costs["out"]
        return {
            **costs,
            "convs": costs["convs"] * 2,
            "shapes": [half, half],
            "out": (*half[:-1], self.features),
        }

    def record(self, variants, variances) -> None:
        """Records an application inside a `lax.switch`; see `_record_convs`."""
        _record_convs(self, (self.conv_1, self.conv_2), variants, variances[0])

    def __call__(
        self, x: jax.Array, train: bool = True, in_mask: jax.Array | None = None
    ) -> jax.Array:
        """`in_mask`: valid input channels, as in `Conv.__call__`."""
        net_lib.sow_cost(self, "relu_flops", relu_flops(x.shape) * valid_fraction(1.0, in_mask))
        x, shifted = factorized_reduce_inputs(x)
        y = jnp.concatenate(
            [self.conv_1(x, 2, in_mask=in_mask), self.conv_2(shifted, 2, in_mask=in_mask)], axis=-1
        )
        return self.bn(y, train)


class Dense(nn.Module):
    """A linear classifier; probes its output.

    `kernel_init` and `bias_init` are Linen initialisers; None for the bias is PyTorch's
    default, U(+-1/sqrt(fan_in)).
    """

    features: int
    kernel_init: Callable = torch_kernel_init
    bias_init: Callable | None = None

    @nn.compact
    def __call__(self, x: jax.Array, in_mask: jax.Array | None = None) -> jax.Array:
        """`in_mask`: valid input features, as in `Conv.__call__`."""
        width = x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (width, self.features))
        bias_init = torch_bias_init(width) if self.bias_init is None else self.bias_init
        bias = self.param("bias", bias_init, (self.features,))
        y = x @ kernel + bias[None, :]
        fan_in = width if in_mask is None else width * jnp.mean(in_mask)
        net_lib.sow_cost(self, "flops", conv_flops(y.shape, fan_in))
        return net_lib.probe_layer(self, y, fan_in)


# -------------------------------------------------------------------- data-driven nets


@functools.lru_cache(maxsize=128)
def _param_shapes(module: nn.Module, x: jax.ShapeDtypeStruct, genotype: jax.ShapeDtypeStruct):
    return jax.eval_shape(module.init, jax.random.key(0), x, genotype)


def supernet(
    module: nn.Module,
    genotype: jax.Array,
    param_mask=None,
    init_fn=torch_init,
    rescale_fn=rescale_fan_in,
    stacks=None,
) -> Network:
    """The `Network` of a data-driven Linen module called as `module(x, genotype)`.

    Its parameters (`{"params": ...}`) do not depend on the genotype's value, and `init`
    uses `init_fn(key, shapes)` (default `torch_init`; a space whose reference code
    initialises differently passes its own one-RNG-call initialiser), so one
    initialisation serves a whole population. `param_mask` is passed through to the
    `Network`; with it, `rescale_fn(params, param_mask(params))` (default
    `rescale_fan_in`, the companion of `torch_init`; None for an initialisation whose
    scale does not depend on layer widths) becomes the network's `rescale_init`. A
    module that scans its repeated cells passes their `stacks` (`jaxnas.spaces.stacking`):
    its parameters are then drawn and seen per cell, as if each cell were its own module.
    """
    genotype = jnp.asarray(genotype)
    linen = from_linen(module, genotype, mutable=(), stacks=stacks)

    def init(key, x):
        shapes = _param_shapes(
            module,
            jax.ShapeDtypeStruct(x.shape, x.dtype),
            jax.ShapeDtypeStruct(genotype.shape, genotype.dtype),
        )
        if stacks is not None:
            shapes = stacks.unstack(shapes)
        return {"params": init_fn(key, shapes["params"])}

    rescale_init = None
    if param_mask is not None and rescale_fn is not None:

        def rescale_init(params):
            return rescale_fn(params, param_mask(params))

    return Network(init, linen.apply, param_mask, rescale_init)


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
