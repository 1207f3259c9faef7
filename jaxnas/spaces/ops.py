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
`Conv`, `ConvBN`, `BatchNorm` and `Dense` probe their outputs, statistics and FLOPs
themselves; code that calls the pure functions directly (inside `lax.switch` branches)
records the same things through `ConvBN.record`, `network.sow_cost` and the `*_flops`
functions below, so that every space gets the same probes.

FLOPs per image follow tensorwatch's counters, which NAS-Bench-Suite-Zero used through
NASLib's `get_model_stats`: a convolution or linear layer counts one per
multiply-accumulate (k_h k_w C_in/groups per output element; biases not counted),
BatchNorm 2 per element, ReLU 1 per element, a k x k pooling k^2 per output element,
global average pooling (H + 1)(W + 1) per channel (tensorwatch's adaptive-pool formula),
and additions of branches nothing.
"""

import functools
import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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
    """PyTorch-style 2-D convolution (no bias): f32[B, H, W, Ci] -> f32[B, H', W', Co]."""
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )


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


# ----------------------------------------------------------------------- FLOP counts


def _per_image(shape) -> int:
    return math.prod(shape[1:])


def conv_flops(out_shape, fan_in: float) -> float:
    """Multiply-accumulates per image of a conv / linear layer with this output shape."""
    return float(fan_in) * _per_image(out_shape)


def batch_norm_flops(shape) -> float:
    return 2.0 * _per_image(shape)


def relu_flops(shape) -> float:
    return float(_per_image(shape))


def avg_pool_flops(out_shape, window: int) -> float:
    return float(window * window * _per_image(out_shape))


def global_avg_pool_flops(shape) -> float:
    """Tensorwatch's adaptive-pool count for a 1x1 output: (H + 1)(W + 1) per channel."""
    _, h, w, c = shape
    return float(c * (h + 1) * (w + 1))


def global_pool_features(module: nn.Module, x: jax.Array) -> jax.Array:
    """Global average pooling that records its input as the feature map `"pre_gap"`."""
    net_lib.sow_feature(module, "pre_gap", x)
    net_lib.sow_cost(module, "global_pool_flops", global_avg_pool_flops(x.shape))
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


def conv_bn_parts(
    w: ConvBNWeights,
    x: jax.Array,
    stride: int,
    padding: int,
    bn: bool = True,
    relu: bool = False,
    perturbation: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`conv_bn` (after an optional ReLU) that also returns what probes record.

    Args:
      w: the op's weights.
      x: f32[B, H, W, Ci].
      stride, padding: of the convolution.
      bn: False makes the BatchNorm the identity.
      relu: apply a ReLU first (`relu_conv_bn`).
      perturbation: zeros added to the conv output (see `network.perturbation`).

    Returns:
      `(out, conv_out, variance)`: the op's output f32[B, H', W', Co], the conv output
      before BatchNorm (plus the perturbation), and its biased batch variance f32[Co]
      (zeros when `bn` is False).
    """
    if relu:
        x = jax.nn.relu(x)
    y = conv2d(x, w.kernel, stride, padding)
    if perturbation is not None:
        y = y + perturbation
    if not bn:
        return y, y, jnp.zeros(y.shape[-1:], y.dtype)
    mean, var = batch_stats(y)
    return normalize(y, mean, var, w.scale, w.bias), y, var


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

    def record(
        self, variance: jax.Array, count: float, shape, weight: jax.Array | float = 1.0
    ) -> None:
        """Probes statistics computed outside the module (inside a `lax.switch`)."""
        if self.enabled:
            net_lib.probe_norm(self, variance, count, weight)
            net_lib.sow_cost(
                self, "flops", batch_norm_flops(shape) * jnp.asarray(weight, jnp.float32)
            )

    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        if not self.enabled:
            return x
        net_lib.sow_cost(self, "flops", batch_norm_flops(x.shape))
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
    """A bias-free convolution kernel `f32[k, k, Ci, Co]` with PyTorch's default init.

    Calling it convolves and probes the output (`network.probe_layer`).
    """

    in_features: int
    features: int
    kernel_size: int

    def setup(self):
        k = self.kernel_size
        self.kernel = self.param(
            "kernel", torch_kernel_init, (k, k, self.in_features, self.features)
        )

    @property
    def fan_in(self) -> int:
        return self.kernel_size * self.kernel_size * self.in_features

    def perturbation(self) -> jax.Array | None:
        return net_lib.perturbation(self)

    def record(self, value: jax.Array, weight: jax.Array | float = 1.0) -> None:
        """Probes an output computed outside the module (perturbation already added)."""
        net_lib.probe_layer(self, value, self.fan_in, weight, add_perturbation=False)
        net_lib.sow_cost(
            self, "flops", conv_flops(value.shape, self.fan_in) * jnp.asarray(weight, jnp.float32)
        )

    def __call__(self, x: jax.Array, stride: int = 1, padding: int = 0) -> jax.Array:
        y = conv2d(x, self.kernel, stride, padding)
        net_lib.sow_cost(self, "flops", conv_flops(y.shape, self.fan_in))
        return net_lib.probe_layer(self, y, self.fan_in)


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

    def perturbation(self) -> jax.Array | None:
        """The conv output's perturbation, if passed (for `conv_bn_parts`)."""
        return self.conv.perturbation()

    def record(
        self,
        x_shape,
        conv_out: jax.Array,
        variance: jax.Array,
        weight: jax.Array | float = 1.0,
    ) -> None:
        """Probes an application computed by `conv_bn_parts` outside the module.

        Records what `__call__` records (conv output, BatchNorm statistics, FLOPs), with
        `weight` 0 for an op that is not in the architecture.
        """
        if self.relu:
            net_lib.sow_cost(
                self, "relu_flops", relu_flops(x_shape) * jnp.asarray(weight, jnp.float32)
            )
        self.conv.record(conv_out, weight)
        count = conv_out.size / conv_out.shape[-1]
        self.bn.record(variance, count, conv_out.shape, weight)

    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        if self.relu:
            net_lib.sow_cost(self, "relu_flops", relu_flops(x.shape))
            x = jax.nn.relu(x)
        return self.bn(self.conv(x, self.stride, self.padding), train)


class Dense(nn.Module):
    """A linear classifier with PyTorch's default init; probes its output."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        kernel = self.param("kernel", torch_kernel_init, (fan_in, self.features))
        bias = self.param("bias", torch_bias_init(fan_in), (self.features,))
        y = x @ kernel + bias[None, :]
        net_lib.sow_cost(self, "flops", conv_flops(y.shape, fan_in))
        return net_lib.probe_layer(self, y, fan_in)


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
