"""The spaces' ops as pure functions of `(weights, x)`.

The data-driven networks call these functions inside `lax.switch` branches (Linen
modules cannot be called inside JAX control flow); the materialised networks call the
same functions through the Linen modules of `jaxnas.spaces.op_layers`, which declare the
parameters under the same names. Both paths therefore compute identical results from
identical parameters.

Conventions follow the PyTorch reference models: NHWC activations, HWIO kernels,
explicit symmetric padding, and BatchNorm eps 1e-5 with the biased batch variance.
"""

import contextlib
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from jaxnas import network as net_lib

BN_EPS = 1e-5

# Part of JAX's trace and compile cache keys: a function traced inside and outside
# `xla_conv_gradients()` gets two traces.
_XLA_CONV_GRADIENTS = jax.make_user_context(default_value=False)


@contextlib.contextmanager
def xla_conv_gradients():
    """Within this context, `conv2d` traces with XLA's own convolution gradients.

    For programs whose convolutions all sit at top level, outside `lax.switch`, `cond`
    and `scan` (a materialised network's training step): there XLA's kernel gradient of
    a 3x3 convolution is about twice as fast on CPU as `conv2d`'s custom one, which
    exists for convolutions inside control flow, where XLA's is many times slower
    (`scripts/bench_conv_grad.py`; figures in WORKSPACE_NOTES.md). 1x1 kernels keep the
    custom rule, a single matrix product (5 ms against XLA's 26 ms for f32[256, 32, 32,
    16]). Both rules give the same gradients up to float32 rounding.
    """
    with _XLA_CONV_GRADIENTS(True):
        yield


def as_pair(value) -> tuple[int, int]:
    """An int or an (H, W) pair as an (H, W) pair."""
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
    `groups == Ci` with a kernel f32[k, k, 1, Ci] is a depthwise convolution. A 1x1
    kernel at stride 1 without padding is a matrix product. Other ungrouped
    convolutions differentiate through `_conv2d` (a custom JVP, so forward and reverse
    mode both work), whose kernel and input gradients avoid a slow XLA:CPU path inside
    control flow; within `xla_conv_gradients()` those larger than 1x1 use XLA's own rule.
    """
    stride, padding = as_pair(stride), as_pair(padding)
    if groups == 1 and kernel.shape[:2] == (1, 1) and stride == (1, 1) and padding == (0, 0):
        # A matrix product over channels, whose gradients are matrix products too; as a
        # convolution, XLA:CPU ran its input gradient as a generic convolution with a
        # transposed kernel (NB201 snip 1.08x faster as a product, WORKSPACE_NOTES.md).
        return jnp.einsum("bhwc,co->bhwo", x, kernel[0, 0])
    if groups > 1 and groups == x.shape[-1] == kernel.shape[-1] and kernel.shape[2] == 1:
        return _depthwise_conv2d(x, kernel, stride, padding, dilation)
    if groups == 1 and (kernel.shape[:2] == (1, 1) or not _XLA_CONV_GRADIENTS.value):
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
        # Reverse mode transposes this term into the input gradient. XLA:CPU's transposed
        # 3x3 convolution inside a checkpointed switch took ~9 ms where the matrix
        # products take ~2-3 ms (snip on NB201 2.8x faster, scripts/bench_compile.py).
        # Strided or padded 1x1 kernels (unpadded stride-1 ones are matrix products,
        # `conv2d`) keep XLA's rule, as the training step's do.
        if kernel.shape[:2] == (1, 1):
            tangent = tangent + _conv(dx, kernel, stride, padding, dilation)
        else:
            tangent = tangent + _conv_by_kernel_remat(dx, kernel, stride, padding, dilation)
    if not isinstance(dk, SymbolicZero):
        # Reverse mode transposes this term into the kernel gradient. JAX's own rule for a
        # convolution's kernel is a convolution with permuted dimension labels; inside a
        # `lax.switch` branch XLA:CPU keeps that layout and runs a generic convolution
        # ~50x slower than outside (measured: 2.1 s vs 0.04 s for one 3x3 conv, batch 64,
        # 32x32x16). As a sum of shifted-input matrix products, its transpose is plain
        # matrix products.
        tangent = tangent + _conv_by_kernel_remat(x, dk, stride, padding, dilation)
    return out, tangent


def _conv_by_kernel(x, kernel, stride, padding, dilation):
    """`_conv(x, kernel)` as a sum over kernel taps of strided input slices times kernel[i, j]."""
    out = None
    for i, j, window in _shifted_windows(x, kernel.shape[:2], stride, padding, dilation):
        term = jnp.einsum("bhwc,co->bhwo", window, kernel[i, j])
        out = term if out is None else out + term
    return out


# Under `checkpoint` the backward pass keeps only the operands, not the k*k shifted copies.
_conv_by_kernel_remat = jax.checkpoint(_conv_by_kernel, static_argnums=(2, 3, 4))


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
