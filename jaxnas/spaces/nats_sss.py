"""NATS-Bench size search space (SSS).

Dong, Liu, Musial, Gabrys, "NATS-Bench: Benchmarking NAS Algorithms for Architecture
Topology and Size", TPAMI 2021 (reference code: D-X-Y/AutoDL-Projects,
`xautodl/models/shape_infers/InferTinyCellNet.py`, `exps/NATS-Bench/main-sss.py`).

Every network has the fixed NB201 cell `TOPOLOGY` (the best cell of the topology space
on CIFAR-100 validation) and five layers whose widths are searched, each from
`CHANNELS` = {8, 16, ..., 64}: 8**5 = 32,768 architectures. A genotype is `int32[5]` of
indices into `CHANNELS`; the notation is the benchmark's channel string, e.g.
`64:32:16:8:64`. `enumerate()` lists the space in the benchmark's index order
(`traverse_net`: the first layer varies slowest).

Macro network (`DynamicShapeTinyNet` with one cell per stage): 3x3 conv stem with c0
channels + BN; layer 0: cell c0 -> c0; layer 1: residual reduction block c0 -> c1
(ReLUConvBN 3x3 stride 2 -> ReLUConvBN 3x3, shortcut 2x2 average pool -> 1x1 conv);
layer 2: cell c1 -> c2; layer 3: reduction block c2 -> c3; layer 4: cell c3 -> c4; BN ->
ReLU; global average pool; linear classifier. Inside a cell, edges leaving node 0 map the
cell's input width to its output width: a conv edge is a ReLUConvBN from c_in to c_out,
and the skip edge becomes a 1x1 conv + BN without ReLU (`FactorizedReduce` with stride 1)
when the widths differ; edges between inner nodes keep c_out.

The data-driven network masks channels to the maximum width 64: every layer computes 64
channels, of which the first c are valid; activations are multiplied by the channel mask
after every op, taps carry it as a per-channel weight, and `param_mask` marks the valid
rows and columns of every kernel. One compiled program serves the whole space (and
vmaps across a population); the materialised network's parameters are the leading slices
of the data-driven ones (`base.restrict_params`). Probes (fisher's layers and gates,
BatchNorm statistics, FLOPs) count the valid channels only, so fisher, flops and zen
equal those of the materialised network.

Initialisation: the data-driven parameters are drawn once for the 64-wide network
(PyTorch default init, bound 1/sqrt(fan_in) at width 64) and `Network.rescale_init`
(`init_rules.rescale_fan_in`) scales each architecture's slices to the bound of its own
fan-in, so they are distributed as a network built for that architecture alone.
"""

import re
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors
from jaxnas import network as net_lib
from jaxnas.network import sow_tap
from jaxnas.spaces import base, flop_rules, functional, nb201, op_layers, supernet

TOPOLOGY = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|"
)
CELL = tuple(nb201.OPS[o] for o in nb201.from_string(TOPOLOGY))  # op per nb201.EDGES
CHANNELS = (8, 16, 24, 32, 40, 48, 56, 64)
MAX_WIDTH = max(CHANNELS)
NUM_LAYERS = 5
NUM_NODES = nb201.NUM_NODES
_CONV, _SKIP = "nor_conv_3x3", "skip_connect"
_REDUCE = "factorized_reduce"  # parameters of a skip edge that changes the width


def _layer_name(layer: int) -> str:
    """Parameter scope of a layer, as in NB201 (`stageS_cell0`, `reductionS`)."""
    return f"reduction{(layer + 1) // 2}" if layer % 2 else f"stage{layer // 2}_cell0"


def _cell(edge_fn, x: jax.Array) -> jax.Array:
    """Node j = sum over i < j (in increasing i) of edge (i -> j) applied to node i."""
    nodes = [x]
    for j in range(1, NUM_NODES):
        terms = [edge_fn(e, i, nodes[i]) for e, (i, to) in enumerate(nb201.EDGES) if to == j]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        nodes.append(total)
    return nodes[-1]


# ------------------------------------------------------------------ data-driven network


def _masked_conv_bn(
    module: op_layers.ConvBN,
    x: jax.Array,
    stride: int,
    padding: int,
    bn: bool,
    in_mask: jax.Array | None,
    out_mask: jax.Array,
    relu: bool = False,
    weight: jax.Array | float = 1.0,
) -> jax.Array:
    """`module`'s (ReLU ->) conv -> BN of a 64-wide input, masked to `out_mask`.

    `in_mask` marks the valid input channels (None: all). When probes are requested the
    layer, its BatchNorm statistics and its FLOPs (ReLU, conv, BN) are recorded over the
    valid channels only, with `weight` (0 for an op the architecture does not use): what
    the materialised network of these widths records.
    """
    w = module.weights()
    gate = module.gate()
    if not net_lib.probing(module, gate):
        out = functional.conv_bn(w, jax.nn.relu(x) if relu else x, stride, padding, bn)
        return functional.mask_channels(out, out_mask)
    out, var = functional.conv_bn_parts(w, x, stride, padding, bn, relu=relu, gate=gate)
    fan_in = module.conv.fan_in * (1.0 if in_mask is None else jnp.mean(in_mask))
    if relu:
        flops = flop_rules.relu_flops(x.shape) * flop_rules.valid_fraction(weight, in_mask)
        net_lib.sow_cost(module, "relu_flops", flops)
    module.record(x.shape, out.shape, var, weight, fan_in, out_mask)
    return functional.mask_channels(out, out_mask)


class _MaskedEdge(nn.Module):
    op: str
    may_reduce: bool  # a skip edge leaving node 0 of a cell whose width may change
    batch_norm: bool

    @nn.compact
    def __call__(self, x, in_mask, out_mask, same_width):
        w = MAX_WIDTH
        if self.op == _CONV:
            conv = op_layers.ConvBN(w, w, 3, name=_CONV)
            sow_tap(self, "relu_conv_bn", x, in_mask)
            return _masked_conv_bn(conv, x, 1, 1, self.batch_norm, in_mask, out_mask, relu=True)
        if not self.may_reduce:
            return x
        reduce = op_layers.ConvBN(w, w, 1, name=_REDUCE)
        weight = 1.0 - same_width.astype(jnp.float32)
        reduced = _masked_conv_bn(
            reduce, x, 1, 0, self.batch_norm, in_mask, out_mask, weight=weight
        )
        return jnp.where(same_width, x, reduced)


class _MaskedCell(nn.Module):
    may_change_width: bool
    batch_norm: bool

    @nn.compact
    def __call__(self, x, in_mask, out_mask, same_width):
        def edge(e, source, h):
            module = _MaskedEdge(
                CELL[e], self.may_change_width and source == 0, self.batch_norm, name=f"edge_{e}"
            )
            return module(h, in_mask if source == 0 else out_mask, out_mask, same_width)

        return _cell(edge, x)


class _MaskedReduction(nn.Module):
    """NB201's residual reduction block at width 64, masked to the valid channels."""

    batch_norm: bool

    @nn.compact
    def __call__(self, x, in_mask, out_mask):
        w, bn = MAX_WIDTH, self.batch_norm
        conv_a = op_layers.ConvBN(w, w, 3, name="conv_a")
        conv_b = op_layers.ConvBN(w, w, 3, name="conv_b")
        sow_tap(self, "conv_a_relu_conv_bn", x, in_mask)
        h = _masked_conv_bn(conv_a, x, 2, 1, bn, in_mask, out_mask, relu=True)
        sow_tap(self, "conv_b_relu_conv_bn", h, out_mask)
        h = _masked_conv_bn(conv_b, h, 1, 1, bn, out_mask, out_mask, relu=True)
        pooled = functional.avg_pool_2x2(x)
        pool_flops = flop_rules.avg_pool_flops(pooled.shape, 2) * flop_rules.valid_fraction(
            1.0, in_mask
        )
        net_lib.sow_cost(self, "pool_flops", pool_flops)
        shortcut = op_layers.Conv(w, w, 1, name="downsample")
        gate = shortcut.gate()
        residual = net_lib.apply_gate(functional.conv2d(pooled, shortcut.kernel), gate)
        if net_lib.probing(shortcut, gate):
            shortcut.record(residual.shape, 1.0, w * jnp.mean(in_mask), out_mask)
        return functional.mask_channels(residual, out_mask) + h


class NATSSizeNetwork(nn.Module):
    """The data-driven NATS-SSS network: the layer widths are the call argument.

    Call as `module(x, genotype)` with x f32[B, H, W, C] and genotype int32[5] (indices
    into `CHANNELS`). Returns f32[B, num_classes].
    """

    # Read by `jaxnas.proxies.blocks`, which refuses networks that set it.
    NO_BLOCKS = (
        "the data-driven NATS-SSS network: its stem is not applied as a module and its "
        "cells return no channel masks, so its blocks would differ from the materialised "
        "network's"
    )

    num_classes: int
    in_channels: int
    batch_norm: bool

    @nn.compact
    def __call__(self, x: jax.Array, genotype: jax.Array) -> jax.Array:
        base.check_images(x, "NATS-SSS", self.in_channels, 4)
        widths = jnp.asarray(CHANNELS, jnp.int32)[jnp.asarray(genotype)]
        masks = [functional.channel_mask(widths[i], MAX_WIDTH) for i in range(NUM_LAYERS)]
        bn = self.batch_norm
        stem = op_layers.ConvBN(self.in_channels, MAX_WIDTH, 3, name="stem")
        x = _masked_conv_bn(stem, x, 1, 1, bn, None, masks[0])
        for layer in range(NUM_LAYERS):
            previous = masks[max(layer - 1, 0)]
            if layer % 2:
                x = _MaskedReduction(bn, name=_layer_name(layer))(x, previous, masks[layer])
            else:
                cell = _MaskedCell(layer > 0, bn, name=_layer_name(layer))
                x = cell(x, previous, masks[layer], widths[max(layer - 1, 0)] == widths[layer])
        lastact = op_layers.BatchNorm(MAX_WIDTH, enabled=bn, name="lastact")
        x, var = functional.batch_norm_parts(x, *lastact.weights(), bn)
        if net_lib.probing(lastact):
            lastact.record(var, x.shape, 1.0, masks[-1])
        x = functional.mask_channels(x, masks[-1])
        sow_tap(self, "lastact_relu", x, masks[-1])
        net_lib.sow_cost(
            self,
            "lastact_relu_flops",
            flop_rules.relu_flops(x.shape) * flop_rules.valid_fraction(1.0, masks[-1]),
        )
        x = op_layers.global_pool_features(self, jax.nn.relu(x), masks[-1])
        return op_layers.Dense(self.num_classes, name="classifier")(x, masks[-1])


def param_mask(params, genotype: jax.Array):
    """The valid rows and columns of every parameter for the widths of `genotype`.

    A conv kernel counts on its valid input rows and output columns, a BatchNorm on its
    valid channels; a cell's factorized-reduce 1x1 conv counts only when the cell changes
    the width. Leaves are f32 arrays broadcastable to the parameters.
    """
    widths = jnp.asarray(CHANNELS, jnp.int32)[jnp.asarray(genotype)]
    masks = [functional.channel_mask(widths[i], MAX_WIDTH) for i in range(NUM_LAYERS)]
    layer_of = {_layer_name(layer): layer for layer in range(NUM_LAYERS)}
    images = jnp.ones((1,), jnp.float32)  # the stem reads every image channel

    def io_masks(names):
        """(input mask, output mask, keep) of the layer holding a parameter."""
        scope = names[0]
        if scope in ("stem", "lastact"):
            return images, masks[0 if scope == "stem" else -1], 1.0
        layer = layer_of[scope]
        source, target = masks[max(layer - 1, 0)], masks[layer]
        if scope.startswith("reduction"):
            return (target if names[1] == "conv_b" else source), target, 1.0
        edge = int(names[1][len("edge_") :])
        if nb201.EDGES[edge][0] != 0:
            source = target
        if names[2] == _REDUCE:
            return source, target, (widths[layer - 1] != widths[layer]).astype(jnp.float32)
        return source, target, 1.0

    def leaf_mask(path, leaf):
        names = [getattr(k, "key", str(k)) for k in path][1:]  # below "params"
        if names[0] == "classifier":
            return masks[-1][:, None] if names[-1] == "kernel" else jnp.ones((), jnp.float32)
        source, target, keep = io_masks(names)
        if names[-1] != "kernel":
            return keep * target
        return keep * (source[:, None] * target[None, :]).reshape(1, 1, -1, MAX_WIDTH)

    return jax.tree_util.tree_map_with_path(leaf_mask, params)


# ------------------------------------------------------------------- materialised network


class _FixedEdge(nn.Module):
    op: str
    in_features: int
    features: int
    track_running_stats: bool
    batch_norm: bool

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        settings = (self.track_running_stats, self.batch_norm)
        if self.op == _CONV:
            sow_tap(self, "relu_conv_bn", x)
            conv = op_layers.ConvBN(
                self.in_features, self.features, 3, 1, 1, True, *settings, name=_CONV
            )
            return conv(x, train)
        if self.in_features == self.features:
            return x
        reduce = op_layers.ConvBN(
            self.in_features, self.features, 1, 1, 0, False, *settings, name=_REDUCE
        )
        return reduce(x, train)


class _FixedCell(nn.Module):
    in_features: int
    features: int
    track_running_stats: bool
    batch_norm: bool

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        def edge(e, source, h):
            c_in = self.in_features if source == 0 else self.features
            module = _FixedEdge(
                CELL[e],
                c_in,
                self.features,
                self.track_running_stats,
                self.batch_norm,
                name=f"edge_{e}",
            )
            return module(h, train)

        return _cell(edge, x)


class NATSSizeModel(nn.Module):
    """A materialised NATS-SSS network with fixed layer `channels`; call as `module(x, train)`."""

    channels: tuple[int, ...]
    num_classes: int
    in_channels: int
    track_running_stats: bool
    batch_norm: bool

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        base.check_images(x, "NATS-SSS", self.in_channels, 4)
        c, settings = self.channels, (self.track_running_stats, self.batch_norm)
        x = op_layers.ConvBN(self.in_channels, c[0], 3, 1, 1, False, *settings, name="stem")(
            x, train
        )
        for layer in range(NUM_LAYERS):
            c_in, name = c[max(layer - 1, 0)], _layer_name(layer)
            if layer % 2:
                x = nb201.ReductionBlock(c_in, c[layer], *settings, name=name)(x, train)
            else:
                x = _FixedCell(c_in, c[layer], *settings, name=name)(x, train)
        x = op_layers.BatchNorm(c[-1], *settings, name="lastact")(x, train)
        sow_tap(self, "lastact_relu", x)
        net_lib.sow_cost(self, "lastact_relu_flops", flop_rules.relu_flops(x.shape))
        x = op_layers.global_pool_features(self, jax.nn.relu(x))
        return op_layers.Dense(self.num_classes, name="classifier")(x)


# ------------------------------------------------------------------------ notation


def to_string(genotype: Sequence[int]) -> str:
    """int32[5] -> the benchmark's channel string, e.g. `64:32:16:8:64`."""
    return ":".join(str(CHANNELS[int(v)]) for v in np.asarray(genotype).reshape(-1))


_STRING = re.compile(r"^\d+(?::\d+)*$")


def from_string(arch: str) -> np.ndarray:
    """Parses a channel string such as `64:32:16:8:64` into int32[5]."""
    if not isinstance(arch, str):
        raise errors.ArchitectureError(f"NATS-SSS architecture must be a string, got {arch!r}")
    text = arch.strip()
    widths = text.split(":")
    if not _STRING.match(text) or len(widths) != NUM_LAYERS:
        raise errors.ArchitectureError(
            f"malformed NATS-SSS string {arch!r}: expected {NUM_LAYERS} widths joined by "
            f"':', e.g. '64:32:16:8:64'"
        )
    for layer, width in enumerate(widths):
        if int(width) not in CHANNELS:
            raise errors.ArchitectureError(
                f"NATS-SSS string {arch!r}: width {width} of layer {layer} is not one of {CHANNELS}"
            )
    return np.asarray([CHANNELS.index(int(w)) for w in widths], np.int32)


# --------------------------------------------------------------------------- space


def space(num_classes: int = 10, in_channels: int = 3, batch_norm: bool = True) -> base.SearchSpace:
    """The NATS-Bench size space; the arguments are the defaults of `network`/`materialize`.

    `network(g, batch_norm=False)` is the BN-free network synflow scores. There is one
    dispatch mode, channel masking, which vmaps across a population.
    """
    defaults = dict(num_classes=num_classes, in_channels=in_channels, batch_norm=batch_norm)
    num_choices = (len(CHANNELS),) * NUM_LAYERS

    def network(genotype, settings):
        module = NATSSizeNetwork(**settings)
        return supernet.network(module, genotype, lambda params: param_mask(params, genotype))

    def materialize(genotype, settings):
        channels = tuple(CHANNELS[v] for v in genotype)
        return NATSSizeModel(channels=channels, **settings, track_running_stats=True)

    return base.build(
        "nats_sss", num_choices, defaults, network, materialize, to_string, from_string
    )
