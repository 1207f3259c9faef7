"""NAS-Bench-101 search space.

Ying et al., "NAS-Bench-101: Towards Reproducible Neural Architecture Search", ICML 2019
(reference code: google-research/nasbench, `lib/model_builder.py`, `lib/model_spec.py`).

A cell is a DAG on 7 vertices: vertex 0 is the input, vertex 6 the output, and each
interior vertex 1..5 applies one op from `OPS` to the sum of its inputs. Vertices not on
an input -> output path are pruned before anything is built (NB101's `ModelSpec`); a cell
is valid when the input reaches the output and at most 9 edges remain after pruning.

Genotype: `int32[26]`. Positions 0..20 are the 21 entries above the diagonal of the 7x7
adjacency matrix in row-major order, `EDGES` = (0,1), (0,2), ..., (0,6), (1,2), ..., (5,6)
(1 = edge from row vertex to column vertex). Positions 21..25 are the ops of vertices
1..5 as indices into `OPS`, NB101's canonical op order. The encoding is the benchmark's
unpruned (matrix, ops) form, so every 7x7 spec round-trips; pruned vertices keep their op.
There are 1,538,083 valid matrices, hence 373,754,169 valid genotypes; they describe the
benchmark's 423,624 distinct (pruned, non-isomorphic) models.

Channel rules (NB101 `compute_vertex_channels`, on the pruned graph): a cell with C output
channels splits C among the k interior vertices feeding the output (C // k each, the first
C % k of them one more); every other vertex takes the maximum of its successors. Inputs
from the cell input are projected by 1x1 conv-BN-ReLU to the vertex width, inputs from
another vertex are truncated to it (they are at most one channel wider); vertex inputs are
summed; the output concatenates the vertices feeding it, plus a 1x1 conv-BN-ReLU
projection of the cell input when the input feeds the output directly.

Macro network: 3x3 conv-BN-ReLU stem (128 channels in the benchmark; NASWOT scores a
16-channel stem), 3 stacks of 3 cells, 2x2 max pooling (stride 2) before stacks 2 and 3,
which double the channels; global average pooling; a linear classifier. The pool runs
inside the stack's first cell module and the stem's ReLU inside the stem module, so every
module maps the previous one's output to its own (the blocks of `jaxnas.proxies.blocks`).
Every conv op is Conv -> BN -> ReLU; taps record the ReLU inputs (the BN outputs).

Vertex widths depend on the architecture. The data-driven network masks channels: each
interior vertex of a C-channel cell computes C channels, of which the first `c_v` are
valid; activations are multiplied by the channel mask after every op, taps carry it as a
per-channel weight and `param_mask` marks the valid rows and columns of every kernel. So
one compiled program serves the whole space, and the materialised network's parameters are
the leading slices of the data-driven ones (`base.restrict_params`).

Dispatch modes of the data-driven network (see `network`):
  * "switch": each vertex runs its op through `lax.switch` and each projection runs only
    when its edge exists (`lax.cond`). Map over a population with `lax.map`.
  * "mask": every op and projection runs and is weighted by 0/1 (vmappable).
"""

import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors
from jaxnas import network as net_lib
from jaxnas.network import sow_tap
from jaxnas.spaces import base, flop_rules, functional, init_rules, op_layers, stacking, supernet

OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
INPUT, OUTPUT = "input", "output"
NUM_VERTICES = 7
EDGES = tuple((i, j) for i in range(NUM_VERTICES) for j in range(i + 1, NUM_VERTICES))
NUM_EDGES = len(EDGES)
NUM_INTERIOR = NUM_VERTICES - 2
GENOTYPE_LENGTH = NUM_EDGES + NUM_INTERIOR
MAX_EDGES = 9
NUM_VALID_MATRICES = 1_538_083
NUM_UNIQUE_MODELS = 423_624  # distinct NB101 models (after pruning and isomorphism)
DEAD = len(OPS)  # the op index given to a pruned vertex inside the data-driven network
_CONV = {0: ("conv3x3", 3, 1), 1: ("conv1x1", 1, 0)}  # op index -> (param name, size, pad)

# NASLib / NAS-Bench-Suite-Zero tuple: the 49 matrix entries, then one index per vertex
# into this list (`naslib/search_spaces/nasbench101/conversions.py`).
NASLIB_OPS = (INPUT, OUTPUT, "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu")

DISPATCH_MODES = ("switch", "mask")


# The materialised network's BatchNorm momentum (PyTorch convention): nasbench's
# `BN_MOMENTUM = 0.997` is a TF decay, i.e. momentum 1 - 0.997. Only running statistics
# (evaluation mode after training) depend on it.
NASBENCH_BN_MOMENTUM = 1 - 0.997


class Init(NamedTuple):
    """An initialisation rule, for the data-driven and the materialised networks."""

    draw: Callable  # one-RNG-call draw at the supernet's widths (`supernet.network`)
    rescale: Callable  # its rescale to an architecture's widths
    conv: Callable  # the Linen initialisers of the same rule, at the materialised widths
    linear: Callable
    linear_bias: Callable | None  # None: PyTorch's U(+-1/sqrt(fan_in))


INITS = {
    "nb101": Init(
        init_rules.fan_out_normal_init,
        init_rules.rescale_fan_out,
        nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
        nn.initializers.normal(0.01),
        nn.initializers.zeros,
    ),
    "pytorch": Init(
        init_rules.torch_init,
        init_rules.rescale_fan_in,
        init_rules.torch_kernel_init,
        init_rules.torch_kernel_init,
        None,
    ),
}

_EDGE_TO_MATRIX = np.zeros((NUM_EDGES, NUM_VERTICES, NUM_VERTICES), np.int32)
for _e, (_i, _j) in enumerate(EDGES):
    _EDGE_TO_MATRIX[_e, _i, _j] = 1


# -------------------------------------------------------------------- graph structure
# Written once for NumPy (host validation, materialised networks) and jax.numpy (traced
# genotypes): `xp` is the array module.


def adjacency(edges, xp=jnp):
    """Edge bits int32[..., 21] -> the 7x7 upper-triangular 0/1 matrix int32[..., 7, 7]."""
    return xp.einsum("...e,eij->...ij", edges.astype(np.int32), xp.asarray(_EDGE_TO_MATRIX))


def prune(matrix, xp=jnp):
    """NB101's pruning: keeps the vertices on an input -> output path.

    Args:
      matrix: int32[..., 7, 7] upper-triangular adjacency.
      xp: `numpy` or `jax.numpy`.

    Returns:
      `(alive, pruned)`: bool[..., 7] (vertex on an input -> output path; all False when
      the output is unreachable) and bool[..., 7, 7], the edges between alive vertices.
    """
    a = matrix > 0
    batch = a.shape[:-2]
    n = NUM_VERTICES
    from_input = [xp.ones(batch, bool)]
    for j in range(1, n):
        reached = xp.zeros(batch, bool)
        for i in range(j):
            reached = reached | (from_input[i] & a[..., i, j])
        from_input.append(reached)
    to_output = [None] * n
    to_output[n - 1] = xp.ones(batch, bool)
    for i in range(n - 2, -1, -1):
        reaches = xp.zeros(batch, bool)
        for j in range(i + 1, n):
            reaches = reaches | (to_output[j] & a[..., i, j])
        to_output[i] = reaches
    alive = xp.stack([from_input[v] & to_output[v] for v in range(n)], axis=-1)
    return alive, a & alive[..., :, None] & alive[..., None, :]


def vertex_channels(pruned, out_channels: int, xp=jnp):
    """Channels of vertices 1..5 in a cell with `out_channels` outputs: int32[..., 5].

    NB101's `compute_vertex_channels` on the pruned graph (pruned vertices get 0).
    """
    n = NUM_VERTICES
    feeds = pruned[..., 1 : n - 1, n - 1].astype(np.int32)
    k = xp.maximum(feeds.sum(axis=-1), 1)
    size, extra = out_channels // k, out_channels % k
    rank = xp.cumsum(feeds, axis=-1) - 1  # order among the vertices feeding the output
    channels = [
        xp.where(feeds[..., v] > 0, size + (rank[..., v] < extra).astype(np.int32), 0)
        for v in range(n - 2)
    ]
    # Backwards: a vertex not feeding the output is as wide as its widest successor.
    for v in range(n - 3, 0, -1):
        widest = xp.zeros_like(channels[v - 1])
        for dst in range(v + 1, n - 1):
            widest = xp.maximum(widest, xp.where(pruned[..., v, dst], channels[dst - 1], 0))
        channels[v - 1] = xp.where(feeds[..., v - 1] > 0, channels[v - 1], widest)
    return xp.stack(channels, axis=-1).astype(np.int32)


def _concat_index(channels: jax.Array, feeds: jax.Array, width: int, out_channels: int):
    """Where each output channel of the concatenation comes from.

    The vertex tensors (each `width` channels, `channels[v]` valid) are stacked along
    the channel axis; output channel j reads stacked channel `source[j]`. `valid[j]` is 0
    when no interior vertex feeds the output (the output is the input projection alone).
    """
    used = channels * feeds.astype(jnp.int32)
    ends = jnp.cumsum(used)
    j = jnp.arange(out_channels)
    vertex = jnp.minimum(jnp.sum(ends[None, :] <= j[:, None], axis=1), NUM_INTERIOR - 1)
    source = vertex * width + j - (ends[vertex] - used[vertex])
    return source, (j < ends[-1]).astype(jnp.float32)


def _traced_structure(genotype: jax.Array):
    """(pruned bool[7, 7], op choice int32[5] with DEAD for pruned vertices)."""
    alive, pruned = prune(adjacency(genotype[:NUM_EDGES], jnp), jnp)
    choice = jnp.where(alive[1:-1], genotype[NUM_EDGES:], DEAD)
    return pruned, choice


def is_valid(genotypes, xp=jnp):
    """bool[...]: the input reaches the output and at most 9 edges survive pruning."""
    alive, pruned = prune(adjacency(genotypes[..., :NUM_EDGES], xp), xp)
    return alive[..., 0] & (pruned.sum(axis=(-2, -1)) <= MAX_EDGES)


# ------------------------------------------------------------------------------ modules


def _select(dispatch: str, index: jax.Array, branches, operand: jax.Array):
    """`branches[index](operand)`: a real branch ("switch") or a 0/1-weighted sum ("mask").

    Branches may return pytrees (the same structure from every branch).
    """
    if dispatch == "switch":
        return functional.switch(index, branches, operand)
    outs = [b(operand) for b in branches]
    weights = [(index == i).astype(jnp.float32) for i in range(len(branches))]
    return jax.tree.map(lambda *vals: sum(w * v for w, v in zip(weights, vals)), *outs)


class _MixedProjection(nn.Module):
    """1x1 conv-BN-ReLU from the cell input to a vertex, computed when its edge exists.

    When probes are requested (or gates passed) the conv and BatchNorm record their
    layer, statistics and FLOPs over the vertex's valid channels, with weight 0
    when the edge is absent.
    """

    in_features: int
    features: int
    dispatch: str
    batch_norm: bool

    @nn.compact
    def __call__(self, x: jax.Array, present: jax.Array, mask: jax.Array) -> jax.Array:
        conv = op_layers.Conv(self.in_features, self.features, 1, name="conv")
        bn = op_layers.BatchNorm(self.features, enabled=self.batch_norm, name="bn")
        w = functional.ConvBNWeights(conv.kernel, *bn.weights())
        shape = (*x.shape[:-1], self.features)
        index = present.astype(jnp.int32)
        weight = present.astype(jnp.float32)
        gate = conv.gate()
        if not net_lib.probing(self, gate):
            pre = _select(
                self.dispatch,
                index,
                (
                    lambda h: jnp.zeros(shape, h.dtype),
                    lambda h: functional.conv_bn(w, h, 1, 0, self.batch_norm),
                ),
                x,
            )
        else:
            pre, var = _select(
                self.dispatch,
                index,
                (
                    lambda h: (jnp.zeros(shape, h.dtype), jnp.zeros(shape[-1:], h.dtype)),
                    lambda h: functional.conv_bn_parts(w, h, 1, 0, self.batch_norm, gate=gate),
                ),
                x,
            )
            conv.record(shape, weight, channels=mask)
            bn.record(var, shape, weight, mask)
        net_lib.sow_cost(
            self,
            "relu_flops",
            flop_rules.relu_flops(shape) * flop_rules.valid_fraction(weight, mask),
        )
        sow_tap(self, "conv_bn_relu", pre, weight * mask)
        return functional.mask_channels(jax.nn.relu(pre), weight * mask)


class _MixedVertex(nn.Module):
    """An interior vertex: every op's parameters at full width, the selected op applied.

    When probes are requested (or gates passed) each conv op records its layer,
    statistics and FLOPs over the vertex's valid channels (fan-in k^2 c_v), with weight
    0 when the op is not selected.
    """

    features: int
    dispatch: str
    batch_norm: bool

    @nn.compact
    def __call__(self, h: jax.Array, choice: jax.Array, mask: jax.Array) -> jax.Array:
        c = self.features
        modules = {
            o: op_layers.ConvBN(c, c, size, batch_norm=self.batch_norm, name=name)
            for o, (name, size, _) in _CONV.items()
        }
        w = {o: m.weights() for o, m in modules.items()}
        gates = {o: m.gate() for o, m in modules.items()}
        if not net_lib.probing(self, *gates.values()):
            branches = (
                lambda v: functional.conv_bn(w[0], v, 1, _CONV[0][2], self.batch_norm),
                lambda v: functional.conv_bn(w[1], v, 1, _CONV[1][2], self.batch_norm),
                functional.max_pool_3x3,
                lambda v: v * 0.0,  # a pruned vertex
            )
            pre = _select(self.dispatch, choice, branches, h)
        else:
            empty = jnp.zeros((c,), h.dtype)

            def conv_parts(o, v):
                out, var = functional.conv_bn_parts(
                    w[o], v, 1, _CONV[o][2], self.batch_norm, gate=gates[o]
                )
                return out, tuple(var if p == o else empty for p in _CONV)

            branches = (
                lambda v: conv_parts(0, v),
                lambda v: conv_parts(1, v),
                lambda v: (functional.max_pool_3x3(v), (empty,) * len(_CONV)),
                lambda v: (v * 0.0, (empty,) * len(_CONV)),
            )
            pre, slots = _select(self.dispatch, choice, branches, h)
            width = jnp.sum(mask)
            for (o, m), var in zip(modules.items(), slots):
                size = _CONV[o][1]
                selected = (choice == o).astype(jnp.float32)
                m.record(h.shape, h.shape, var, selected, size * size * width, mask)
        is_conv = choice < len(_CONV)
        is_pool = (choice == OPS.index("maxpool3x3")).astype(jnp.float32)
        net_lib.sow_cost(
            self,
            "relu_flops",
            flop_rules.relu_flops(h.shape) * flop_rules.valid_fraction(is_conv, mask),
        )
        net_lib.sow_cost(
            self,
            "pool_flops",
            flop_rules.avg_pool_flops(h.shape, 3) * flop_rules.valid_fraction(is_pool, mask),
        )
        sow_tap(self, "conv_bn_relu", pre, jnp.where(is_conv, mask, 0.0))
        return functional.mask_channels(jnp.where(is_conv, jax.nn.relu(pre), pre), mask)


def _downsample(cell: nn.Module, x: jax.Array) -> jax.Array:
    """The 2x2 max-pool that opens every stack after the first.

    It runs inside the stack's first cell, so that each block of the network (the stem,
    every cell) maps the previous block's output to its own, as AZ-NAS's and MeCo's
    per-block readings assume (`jaxnas.proxies.blocks`).
    """
    x = functional.max_pool_2x2(x)
    net_lib.sow_cost(cell, "downsample_flops", flop_rules.avg_pool_flops(x.shape, 2))
    return x


class _Stem(op_layers.ConvBN):
    """The stem block: conv -> BatchNorm -> ReLU, with `ConvBN`'s parameters.

    The ReLU is inside the module so that the stem block's output is the feature map the
    first cell reads (`_downsample` says why).
    """

    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        pre = self.bn(self.conv(x, self.stride, self.padding), train)
        net_lib.sow_cost(self, "relu_flops", flop_rules.relu_flops(pre.shape))
        sow_tap(self, "conv_bn_relu", pre)
        return jax.nn.relu(pre)


class _MixedCell(nn.Module):
    in_features: int
    features: int
    dispatch: str
    batch_norm: bool
    downsample: bool = False  # see `_downsample`

    @nn.compact
    def __call__(self, x, pruned, choice, channels):
        if self.downsample:
            x = _downsample(self, x)
        c, n = self.features, NUM_VERTICES
        present = pruned.astype(jnp.float32)
        tensors = [x]
        for t in range(1, n - 1):
            mask = functional.channel_mask(channels[t - 1], c)
            projection = _MixedProjection(
                self.in_features, c, self.dispatch, self.batch_norm, name=f"proj_{t}"
            )(x, present[0, t], mask)
            # Sources in increasing order, then the projection, as NB101 sums them; the
            # mask truncates a source that is one channel wider than this vertex.
            terms = [present[src, t] * tensors[src] for src in range(1, t)] + [projection]
            h = terms[0]
            for term in terms[1:]:
                h = h + term
            h = functional.mask_channels(h, mask)
            vertex = _MixedVertex(c, self.dispatch, self.batch_norm, name=f"vertex_{t}")
            tensors.append(vertex(h, choice[t - 1], mask))
        source, valid = _concat_index(channels, pruned[1 : n - 1, n - 1], c, c)
        out = jnp.take(jnp.concatenate(tensors[1:], axis=-1), source, axis=-1)
        out = functional.mask_channels(out, valid)
        projection = _MixedProjection(
            self.in_features, c, self.dispatch, self.batch_norm, name=f"proj_{n - 1}"
        )
        return out + projection(x, present[0, n - 1], jnp.ones((c,), jnp.float32))


class _FixedProjection(nn.Module):
    in_features: int
    features: int
    track_running_stats: bool
    batch_norm: bool
    init_rule: str
    bn_momentum: float

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv = op_layers.Conv(
            self.in_features, self.features, 1, INITS[self.init_rule].conv, name="conv"
        )
        bn = op_layers.BatchNorm(
            self.features,
            self.track_running_stats,
            self.batch_norm,
            momentum=self.bn_momentum,
            name="bn",
        )
        pre = bn(conv(x), train)
        net_lib.sow_cost(self, "relu_flops", flop_rules.relu_flops(pre.shape))
        sow_tap(self, "conv_bn_relu", pre)
        return jax.nn.relu(pre)


class _FixedVertex(nn.Module):
    features: int
    op: int
    track_running_stats: bool
    batch_norm: bool
    init_rule: str
    bn_momentum: float

    @nn.compact
    def __call__(self, h: jax.Array, train: bool) -> jax.Array:
        if self.op not in _CONV:
            net_lib.sow_cost(self, "pool_flops", flop_rules.avg_pool_flops(h.shape, 3))
            return functional.max_pool_3x3(h)
        name, size, pad = _CONV[self.op]
        c = self.features
        conv = op_layers.ConvBN(
            c,
            c,
            size,
            1,
            pad,
            False,
            self.track_running_stats,
            self.batch_norm,
            kernel_init=INITS[self.init_rule].conv,
            bn_momentum=self.bn_momentum,
            name=name,
        )
        pre = conv(h, train)
        net_lib.sow_cost(self, "relu_flops", flop_rules.relu_flops(pre.shape))
        sow_tap(self, "conv_bn_relu", pre)
        return jax.nn.relu(pre)


class _FixedCell(nn.Module):
    """A materialised cell: only the alive vertices and present edges exist."""

    in_features: int
    features: int
    pruned: tuple[tuple[bool, ...], ...]
    choice: tuple[int, ...]
    track_running_stats: bool
    batch_norm: bool
    init_rule: str
    bn_momentum: float
    downsample: bool = False  # see `_downsample`

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.downsample:
            x = _downsample(self, x)
        n, c = NUM_VERTICES, self.features
        a = np.asarray(self.pruned)
        channels = [int(v) for v in vertex_channels(a, c, np)]
        settings = (self.track_running_stats, self.batch_norm, self.init_rule, self.bn_momentum)
        tensors, concat = {0: x}, []
        for t in range(1, n - 1):
            if self.choice[t - 1] == DEAD:
                continue
            width = channels[t - 1]
            terms = [tensors[src][..., :width] for src in range(1, t) if a[src, t]]
            if a[0, t]:
                terms.append(
                    _FixedProjection(self.in_features, width, *settings, name=f"proj_{t}")(x, train)
                )
            h = terms[0]
            for term in terms[1:]:
                h = h + term
            vertex = _FixedVertex(width, self.choice[t - 1], *settings, name=f"vertex_{t}")
            tensors[t] = vertex(h, train)
            if a[t, n - 1]:
                concat.append(tensors[t])
        out = jnp.concatenate(concat, axis=-1) if concat else None
        if a[0, n - 1]:
            projection = _FixedProjection(self.in_features, c, *settings, name=f"proj_{n - 1}")
            skip = projection(x, train)
            out = skip if out is None else out + skip
        return out


class _Macro(nn.Module):
    """The NB101 skeleton (stem, stacks of cells, pooling, classifier) around a cell."""

    stem_channels: int
    num_stacks: int
    cells_per_stack: int
    num_classes: int
    in_channels: int
    track_running_stats: bool
    batch_norm: bool
    init_rule: str = "nb101"  # a key of INITS
    bn_momentum: float = NASBENCH_BN_MOMENTUM

    def body(self, x, stack_fn, train):
        """The skeleton around `stack_fn(stack, c_in, c, x)`, which applies one stack's
        `cells_per_stack` cells (the first reads c_in channels, the others c; in every
        stack after the first, the first cell opens with the 2x2 max-pool)."""
        factor = 2 ** (self.num_stacks - 1)
        base.check_images(x, "NB101", self.in_channels, factor, f" ({self.num_stacks} stacks)")
        rule = INITS[self.init_rule]
        stem = _Stem(
            self.in_channels,
            self.stem_channels,
            3,
            1,
            1,
            False,
            self.track_running_stats,
            self.batch_norm,
            kernel_init=rule.conv,
            bn_momentum=self.bn_momentum,
            name="stem",
        )
        x = stem(x, train)
        c_prev = self.stem_channels
        for s in range(self.num_stacks):
            c = self.stem_channels * 2**s
            x = stack_fn(s, c_prev, c, x)
            c_prev = c
        # The reference pools with `torch.mean`, a function that FLOP counters skip.
        net_lib.sow_feature(self, "pre_gap", x)
        classifier = op_layers.Dense(
            self.num_classes, rule.linear, rule.linear_bias, name="classifier"
        )
        return classifier(functional.global_avg_pool(x))


class NB101Network(_Macro):
    """The data-driven NB101 network: the architecture is the call argument `genotype`.

    Call as `module(x, genotype)` with x f32[B, H, W, C] and genotype int32[26] (a valid
    cell; see `validate`). Returns f32[B, num_classes].
    """

    dispatch: str = "switch"
    scan: bool = False  # same-width cells of a stack under `nn.scan`; see `stacks`

    @nn.compact
    def __call__(self, x: jax.Array, genotype: jax.Array) -> jax.Array:
        if self.dispatch not in DISPATCH_MODES:
            raise errors.ConfigError(
                f"unknown NB101 dispatch {self.dispatch!r}; expected one of {DISPATCH_MODES}"
            )
        pruned, choice = _traced_structure(jnp.asarray(genotype))

        def stack(s, c_in, c, h):
            channels = vertex_channels(pruned, c, jnp)
            settings = (self.dispatch, self.batch_norm)
            if not self.scan:
                for i in range(self.cells_per_stack):
                    width = c_in if i == 0 else c
                    cell = _MixedCell(
                        width, c, *settings, downsample=s > 0 and i == 0, name=f"stack{s}_cell{i}"
                    )
                    h = cell(h, pruned, choice, channels)
                return h
            first, length = _scanned_cells(s, c_in, c, self.cells_per_stack)
            if first:
                cell = _MixedCell(c_in, c, *settings, downsample=s > 0, name=f"stack{s}_cell0")
                h = cell(h, pruned, choice, channels)
            if length:
                cell = _MixedCell(c, c, *settings, name=f"stack{s}_cells")
                h = stacking.scan_cells(cell, length, h, pruned, choice, channels)[0]
            return h

        return self.body(x, stack, True)


def _scanned_cells(stack: int, c_in: int, c: int, cells_per_stack: int) -> tuple[bool, int]:
    """`(first_alone, length)`: whether cell 0 of a stack runs on its own (it reads c_in !=
    c channels, or opens with the stack's max-pool) and how many cells `NB101Network`
    scans as `stack{s}_cells` after it."""
    first = c_in != c or stack > 0
    return first, cells_per_stack - int(first)


def stacks(stem_channels: int, num_stacks: int, cells_per_stack: int) -> stacking.Stacks:
    """The scanned cell modules of `NB101Network` and the per-cell names they map to."""
    cells = {}
    c_in = stem_channels
    for s in range(num_stacks):
        c = stem_channels * 2**s
        first, length = _scanned_cells(s, c_in, c, cells_per_stack)
        if length:
            cells[f"stack{s}_cells"] = [
                f"stack{s}_cell{i}" for i in range(int(first), cells_per_stack)
            ]
        c_in = c
    # The order in which `_MixedCell` calls its submodules.
    children = [name for t in range(1, NUM_VERTICES - 1) for name in (f"proj_{t}", f"vertex_{t}")]
    children.append(f"proj_{NUM_VERTICES - 1}")
    return stacking.Stacks(cells, children={name: children for name in cells})


class NB101Model(_Macro):
    """A materialised NB101 network for one fixed cell; call as `module(x, train)`.

    `pruned` is the pruned 7x7 adjacency (bools) and `choice` the op index of vertices
    1..5 (`DEAD` for pruned ones); `space.materialize` fills both from a genotype.
    """

    pruned: tuple[tuple[bool, ...], ...] = ()
    choice: tuple[int, ...] = ()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        def stack(s, c_in, c, h):
            for i in range(self.cells_per_stack):
                module = _FixedCell(
                    c_in if i == 0 else c,
                    c,
                    self.pruned,
                    self.choice,
                    self.track_running_stats,
                    self.batch_norm,
                    self.init_rule,
                    self.bn_momentum,
                    downsample=s > 0 and i == 0,
                    name=f"stack{s}_cell{i}",
                )
                h = module(h, train)
            return h

        return self.body(x, stack, train)


def param_mask(params, genotype: jax.Array):
    """Which parameters of the data-driven network belong to `genotype`.

    Inside cell `stackS_cellI` a vertex conv counts iff its vertex is alive and runs
    that op, a projection `proj_t` iff the edge (0, t) survives pruning; of those, only
    the rows and columns of valid channels count. Stem and classifier always count.
    Leaves are f32 arrays broadcastable to the parameters.
    """
    pruned, choice = _traced_structure(jnp.asarray(genotype))
    names_of_ops = {name: o for o, (name, _, _) in _CONV.items()}
    n = NUM_VERTICES
    vertex_masks = {}  # cell width -> f32[5, width], computed once per width

    def leaf_mask(path, leaf):
        names = [getattr(k, "key", str(k)) for k in path][1:]  # below "params"
        if not names[0].startswith("stack"):
            return jnp.ones((), jnp.float32)
        kind, t = names[1].split("_")
        t, c = int(t), leaf.shape[-1]
        if c not in vertex_masks:
            widths = vertex_channels(pruned, c, jnp)
            vertex_masks[c] = jnp.stack([functional.channel_mask(w, c) for w in widths])
        mask = vertex_masks[c][t - 1] if t < n - 1 else jnp.ones((c,), jnp.float32)
        if kind == "vertex":
            keep = choice[t - 1] == names_of_ops[names[2]]
        else:
            keep = pruned[0, t]
        out = jnp.where(keep, mask, 0.0)
        if names[-1] != "kernel":
            return out
        if kind == "vertex":  # a square kernel: valid input rows and output columns
            return (out[:, None] * mask[None, :]).reshape(1, 1, c, c)
        return out.reshape(1, 1, 1, c)

    return jax.tree_util.tree_map_with_path(leaf_mask, params)


# ---------------------------------------------------------------------- notation


def _matrix_string(matrix: np.ndarray) -> str:
    return "/".join("".join(str(int(v)) for v in row) for row in matrix)


def to_spec(genotype: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """int32[26] -> NB101's unpruned `(matrix int32[7, 7], ops)` (`ModelSpec` arguments)."""
    g = np.asarray(genotype).reshape(-1)
    matrix = adjacency(g[:NUM_EDGES], np)
    return matrix, [INPUT, *(OPS[int(o)] for o in g[NUM_EDGES:]), OUTPUT]


def _check_valid(genotype: np.ndarray) -> None:
    alive, pruned = prune(adjacency(genotype[..., :NUM_EDGES], np), np)
    no_path = np.flatnonzero(~alive[..., 0].reshape(-1))
    if no_path.size:
        row = genotype.reshape(-1, GENOTYPE_LENGTH)[no_path[0]]
        raise errors.ArchitectureError(
            f"invalid NB101 cell {_matrix_string(adjacency(row[:NUM_EDGES], np))}: no path "
            f"from the input to the output vertex"
        )
    num_edges = pruned.sum(axis=(-2, -1)).reshape(-1)
    too_many = np.flatnonzero(num_edges > MAX_EDGES)
    if too_many.size:
        row = genotype.reshape(-1, GENOTYPE_LENGTH)[too_many[0]]
        raise errors.ArchitectureError(
            f"invalid NB101 cell {_matrix_string(adjacency(row[:NUM_EDGES], np))}: "
            f"{num_edges[too_many[0]]} edges after pruning, NB101 allows at most {MAX_EDGES}"
        )


def from_spec(matrix, ops_list: Sequence[str]) -> np.ndarray:
    """NB101's `(matrix, ops)` -> int32[26]; raises ArchitectureError naming the problem.

    Accepts the 7x7 form and the pruned n x n form of the benchmark's records (n <= 7):
    interior vertices go to positions 1..n-2, the output to 6, and the unused vertices
    are left unconnected (with op conv3x3-bn-relu, as NASLib fills them).
    """
    try:
        m = np.asarray(matrix)
    except (TypeError, ValueError) as exc:
        raise errors.ArchitectureError(f"NB101 matrix is not an array: {matrix!r}") from exc
    n = m.shape[0] if m.ndim == 2 else 0
    if m.ndim != 2 or m.shape[1] != n or not 2 <= n <= NUM_VERTICES:
        raise errors.ArchitectureError(
            f"an NB101 adjacency matrix is square with 2 to {NUM_VERTICES} vertices, "
            f"got shape {m.shape}"
        )
    if not np.isin(m, (0, 1)).all():
        raise errors.ArchitectureError(f"NB101 adjacency entries must be 0 or 1, got {m.tolist()}")
    below = np.argwhere(np.tril(m) != 0)
    if below.size:
        i, j = below[0]
        raise errors.ArchitectureError(
            f"NB101 adjacency matrix {_matrix_string(m)} is not upper-triangular: entry "
            f"({i}, {j}) is 1 on or below the diagonal"
        )
    ops_list = list(ops_list)
    if len(ops_list) != n:
        raise errors.ArchitectureError(
            f"NB101 ops must name each of the {n} vertices, got {len(ops_list)}: {ops_list}"
        )
    if ops_list[0] != INPUT or ops_list[-1] != OUTPUT:
        raise errors.ArchitectureError(
            f"NB101 ops must start with {INPUT!r} and end with {OUTPUT!r}, got {ops_list}"
        )
    for v, op in enumerate(ops_list[1:-1], start=1):
        if op not in OPS:
            raise errors.ArchitectureError(
                f"unknown NB101 op {op!r} at vertex {v}; expected one of {OPS}"
            )
    full = np.zeros((NUM_VERTICES, NUM_VERTICES), np.int32)
    position = [*range(n - 1), NUM_VERTICES - 1]  # vertex -> index in the 7x7 matrix
    full[np.ix_(position, position)] = m
    choice = [OPS.index(op) for op in ops_list[1:-1]] + [0] * (NUM_VERTICES - n)
    genotype = np.asarray([full[i, j] for i, j in EDGES] + choice, np.int32)
    _check_valid(genotype)
    return genotype


_STRING = re.compile(r"^([01]+(?:/[01]+)*);([^;]+)$")


def to_string(genotype: Sequence[int]) -> str:
    """int32[26] -> `adjacency rows;ops`, e.g.
    `0100001/0010000/0001000/0000100/0000010/0000001/0000000;input|conv3x3-bn-relu|...|output`
    (rows of the unpruned matrix joined by '/', then the 7 op names joined by '|': the
    `adjacency_rows` and `ops` columns of the NAS-Bench-Suite-Zero NB101 table).
    """
    matrix, names = to_spec(genotype)
    return f"{_matrix_string(matrix)};{'|'.join(names)}"


def from_string(arch: str) -> np.ndarray:
    """Parses `adjacency rows;ops` (see `to_string`) into int32[26]."""
    if not isinstance(arch, str):
        raise errors.ArchitectureError(f"NB101 architecture must be a string, got {arch!r}")
    m = _STRING.match(arch.strip())
    rows = m.group(1).split("/") if m else []
    if m is None or any(len(r) != len(rows) for r in rows):
        raise errors.ArchitectureError(
            f"malformed NB101 string {arch!r}: expected 'ROWS;OPS' with n rows of n '0'/'1' "
            f"characters joined by '/' and n op names joined by '|', e.g. "
            f"'011/001/000;input|maxpool3x3|output'"
        )
    matrix = [[int(ch) for ch in row] for row in rows]
    return from_spec(matrix, m.group(2).split("|"))


def from_naslib(values: Sequence[int] | str) -> np.ndarray:
    """NASLib / Suite-Zero tuple (49 matrix entries, then 7 indices into `NASLIB_OPS`)."""
    if isinstance(values, str):
        try:
            values = [int(v) for v in values.strip().strip("()").split(",")]
        except ValueError as exc:
            raise errors.ArchitectureError(f"malformed NASLib NB101 tuple {values!r}") from exc
    values = list(values)
    n = NUM_VERTICES
    if len(values) != n * n + n or any(not 0 <= v < len(NASLIB_OPS) for v in values[n * n :]):
        raise errors.ArchitectureError(
            f"malformed NASLib NB101 tuple {tuple(values)}: expected {n * n} matrix entries "
            f"and {n} op indices into {NASLIB_OPS}"
        )
    matrix = np.asarray(values[: n * n]).reshape(n, n)
    return from_spec(matrix, [NASLIB_OPS[v] for v in values[n * n :]])


def to_naslib(genotype: Sequence[int]) -> tuple[int, ...]:
    matrix, names = to_spec(genotype)
    return tuple(int(v) for v in matrix.reshape(-1)) + tuple(NASLIB_OPS.index(o) for o in names)


# --------------------------------------------------------------------------- space


def _check_settings(settings: dict) -> dict:
    if settings["init"] not in INITS:
        raise errors.ConfigError(
            f"unknown NB101 init {settings['init']!r}; expected one of {sorted(INITS)}"
        )
    momentum = settings["bn_momentum"]
    if isinstance(momentum, bool) or not isinstance(momentum, int | float) or not 0 < momentum <= 1:
        raise errors.ConfigError(f"NB101 bn_momentum must be a number in (0, 1], got {momentum!r}")
    return settings


def space(
    stem_channels: int = 128,
    num_stacks: int = 3,
    cells_per_stack: int = 3,
    num_classes: int = 10,
    dispatch: str = "switch",
    in_channels: int = 3,
    batch_norm: bool = True,
    init: str = "nb101",
    scan_cells: bool = False,
    bn_momentum: float = NASBENCH_BN_MOMENTUM,
) -> base.SearchSpace:
    """The NB101 space; the arguments are the defaults of `network`/`materialize`.

    Defaults are the benchmark's network (128-channel stem, 3 stacks of 3 cells, 10
    classes). `network(g, stem_channels=16)` is the network NASWOT scores
    (`nas_101_api/model.py`, `--stem_out_channels 16`), `network(g, batch_norm=False)`
    the BN-free network synflow scores.

    `init` is the data-driven network's initialisation: "nb101", the rule of the NB101
    PyTorch models that the references score (`Network._initialize_weights` in NASWOT's
    `nas_101_api/model.py` and NASLib's `nasbench101/model.py`, which NAS-Bench-Suite-
    Zero used; `init_rules.fan_out_normal_init`), or "pytorch", PyTorch's default. Either is
    drawn at the supernet's widths and rescaled to each architecture's vertex widths
    (`Network.rescale_init`), so the selected parameters have the distribution of the
    materialised network under the same rule (`network(g, init=...)` overrides it per
    network). BatchNorm follows every conv, so
    forward-only proxies do not depend on the choice; parameter norms, gradient norms
    and BN-free synflow do. `materialize` builds Linen modules whose initialisers follow
    the same rule at the cell's own widths (`Init`).

    `sample` draws uniformly among valid genotypes (rejection, like NASLib's sampler);
    `mutate` changes one position and redraws until the cell is valid. `enumerate`
    raises: the space has `size` = 373,754,169 valid genotypes.

    `bn_momentum` is the materialised network's BatchNorm momentum for its running
    statistics (default nasbench's TF decay 0.997, i.e. 0.003 in PyTorch's convention).

    `scan_cells` runs the data-driven network's same-width cells of each stack under
    `nn.scan` (one traced cell per stack shape; parameters, taps, probes and scores are
    the same either way; WORKSPACE_NOTES.md "Performance (issue 14)").
    """
    defaults = dict(
        stem_channels=stem_channels,
        num_stacks=num_stacks,
        cells_per_stack=cells_per_stack,
        num_classes=num_classes,
        in_channels=in_channels,
        batch_norm=batch_norm,
        init=init,
        bn_momentum=bn_momentum,
    )
    num_choices = (2,) * NUM_EDGES + (len(OPS),) * NUM_INTERIOR
    draw = base.uniform_sampler(num_choices)
    change_one = base.one_position_mutator(num_choices)

    def sample(key, n):
        def missing(state):
            return state[1] < n

        def draw_more(state):
            out, count, key = state
            key, key_draw = jax.random.split(key)
            candidates = draw(key_draw, n)
            ok = is_valid(candidates, jnp)
            slot = jnp.where(ok, count + jnp.cumsum(ok) - 1, n)
            out = out.at[slot].set(candidates, mode="drop")
            return out, count + jnp.sum(ok), key

        init = (jnp.zeros((n, GENOTYPE_LENGTH), jnp.int32), jnp.zeros((), jnp.int32), key)
        return jax.lax.while_loop(missing, draw_more, init)[0]

    def mutate(key, genotype):
        def redraw(state):
            key, _ = state
            key, key_change = jax.random.split(key)
            return key, change_one(key_change, genotype)

        def invalid(state):
            return ~is_valid(state[1], jnp)

        return jax.lax.while_loop(invalid, redraw, redraw((key, genotype)))[1]

    def network(genotype, settings):
        settings = dict(settings)
        rule_name = settings.pop("init")
        scan = settings.pop(base.SCAN_CELLS)
        rule = INITS[rule_name]
        module = NB101Network(**settings, scan=scan, init_rule=rule_name, track_running_stats=False)
        cells = stacks(
            settings["stem_channels"], settings["num_stacks"], settings["cells_per_stack"]
        )
        return supernet.network(
            module,
            genotype,
            lambda params: param_mask(params, genotype),
            rule.draw,
            rule.rescale,
            cells if scan else None,
        )

    def materialize(genotype, settings):
        settings = dict(settings)
        rule_name = settings.pop("init")
        g = np.asarray(genotype)
        alive, pruned = prune(adjacency(g[:NUM_EDGES], np), np)
        choice = np.where(alive[1:-1], g[NUM_EDGES:], DEAD)
        return NB101Model(
            **settings,
            init_rule=rule_name,
            track_running_stats=True,
            pruned=tuple(tuple(bool(v) for v in row) for row in pruned),
            choice=tuple(int(v) for v in choice),
        )

    return base.build(
        "nb101",
        num_choices,
        defaults,
        network,
        materialize,
        to_string,
        from_string,
        network_defaults={"dispatch": dispatch, base.SCAN_CELLS: scan_cells},
        settle=_check_settings,
        check_valid=_check_valid,
        sample=sample,
        mutate=mutate,
        size=NUM_VALID_MATRICES * len(OPS) ** NUM_INTERIOR,
    )
