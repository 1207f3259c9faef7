"""Linen declarations of the spaces' ops, with their instrumentation.

Each module declares the parameters of an op of `jaxnas.spaces.functional` under the
names the data-driven networks use, and applies that function.

Instrumentation (`jaxnas.types.Probes`, recorded only when a caller asks): `Conv`,
`ConvBN`, `BatchNorm`, `Dense` and the DARTS op modules (`ReLUConvsBN`, `SepConv`,
`FactorizedReduce`) probe their layers, statistics and FLOPs themselves when called;
code that calls the pure functions directly (inside `lax.switch` branches) passes the
modules' gates in and records the same things through their `record` methods (with the
op modules' static `costs`), `network.sow_cost` and `jaxnas.spaces.flop_rules`, so that
every space gets the same probes.
"""

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas import network as net_lib
from jaxnas.spaces.flop_rules import (
    batch_norm_flops,
    conv_flops,
    global_avg_pool_flops,
    relu_flops,
    valid_fraction,
)
from jaxnas.spaces.functional import (
    ConvBNWeights,
    FactorizedReduceWeights,
    ReLUConvsBNWeights,
    as_pair,
    batch_stats,
    conv2d,
    factorized_reduce_inputs,
    global_avg_pool,
    normalize,
)
from jaxnas.spaces.init_rules import torch_bias_init, torch_kernel_init
from jaxnas.spaces.op_specs import ConvSpec, conv_out_shape

BN_MOMENTUM = 0.1  # PyTorch convention: running = (1 - m) * running + m * batch.


def global_pool_features(module: nn.Module, x: jax.Array, mask=None) -> jax.Array:
    """Global average pooling that records its input as the feature map `"pre_gap"`;
    `mask` (f32[C], 0/1) marks the valid channels of a masked input."""
    net_lib.sow_feature(module, "pre_gap", x)
    flops = global_avg_pool_flops(x.shape) * valid_fraction(1.0, mask)
    net_lib.sow_cost(module, "global_pool_flops", flops)
    return global_avg_pool(x)


class BatchNorm(nn.Module):
    """BatchNorm with PyTorch conventions.

    `weights()` returns `(scale, bias)` for the pure functions. `__call__(x, train)`
    uses batch statistics when `train` and, when `track_running_stats`, keeps running
    statistics in the `batch_stats` collection for evaluation mode. With `enabled`
    False the layer is the identity (its parameters still exist, unused): the
    `batch_norm=False` network override that synflow needs. With `affine` False it
    has no parameters (PyTorch `affine=False`) and `weights()` is `(None, None)`.
    `momentum` weighs the batch in the running statistics (PyTorch's convention; TF's
    decay d is momentum 1 - d).
    """

    features: int
    track_running_stats: bool = False
    enabled: bool = True
    affine: bool = True
    momentum: float = BN_MOMENTUM

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
                m = self.momentum
                self.running_mean.value = (1 - m) * self.running_mean.value + m * mean
                self.running_var.value = (1 - m) * self.running_var.value + m * unbiased
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
        kh, kw = as_pair(self.kernel_size)
        self.kernel = self.param(
            "kernel", self.kernel_init, (kh, kw, self.in_features, self.features)
        )

    @property
    def fan_in(self) -> int:
        kh, kw = as_pair(self.kernel_size)
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

    `kernel_init`: the conv kernel's Linen initialiser (default PyTorch's);
    `bn_momentum`: the BatchNorm's `momentum`.
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
    bn_momentum: float = BN_MOMENTUM

    def setup(self):
        self.conv = Conv(self.in_features, self.features, self.kernel_size, self.kernel_init)
        self.bn = BatchNorm(
            self.features,
            self.track_running_stats,
            self.batch_norm,
            self.affine,
            self.bn_momentum,
        )

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
