"""TE-NAS's DARTS supernet: NASNet-style cells whose edges sum all their ops, weighted.

TE-NAS prunes the DARTS space on the supernet of its reference code (VITA-Group/TENAS
`NASNetworkDARTS`, `super_type="nasnet-super"`, reference.md §B.4). Its layout:

  * an optional stem (3x3 conv to `stem_multiplier * C` channels + BN, no ReLU); without
    it both inputs of the first cell are the images;
  * cells at C (N of them), a reduction cell at 2C, N - 1 cells at 2C, a reduction cell
    at 4C, N - 1 cells at 4C, cut after `depth` cells (TE-NAS: C=1, N=1, depth 2, so
    one normal and one reduction cell);
  * every cell: inputs preprocessed to C channels (FactorizedReduce after a reduction
    cell, else ReLU -> 1x1 conv -> BN), `num_nodes` nodes, node i summing one mixed edge
    from each of the 2 + i earlier states, the output the concatenation of all nodes;
  * BN -> ReLU (`lastact`), global average pooling, a linear classifier.

A mixed edge returns sum_o w[o] * op_o(x) over the ops with w[o] > 0 (the code skips
ops at weight 0.01 or less, which after TE-NAS's -1000 logits means the pruned ones). The
op weights are `f32[2, E, O]`, normal cell then reduction cell, over `edges(num_nodes)`
(E = 14 for 4 nodes) and `TENAS_OPS` (the code's `DARTS_SPACE` order). Ops follow the
code's xautodl operations: BN with affine parameters, pooling without BN (count_include_pad
False for the average), a FactorizedReduce skip on stride-2 edges that zero-pads odd
inputs. BatchNorm uses batch statistics.

Taps (for linear regions): the input of every ReLU of an op with weight > 0 (the edge
input, a separable conv's second ReLU), the preprocessing inputs, and `lastact`.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors
from jaxnas import network as net_lib
from jaxnas.network import sow_tap
from jaxnas.spaces import base, darts, op_layers, supernet

TENAS_OPS = (
    "none",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "avg_pool_3x3",
    "max_pool_3x3",
)
"""The DARTS ops in the order of TE-NAS's `DARTS_SPACE` (its ties follow this order)."""

# TE-NAS's two DARTS networks (`prune_tenas.py`, `search_space_name == 'darts'`).
TENAS_NTK_NETWORK = dict(channels=1, cells_per_stage=1, depth=2, stem=True, stem_multiplier=1)
TENAS_REGIONS_NETWORK = dict(
    channels=1, cells_per_stage=1, depth=2, stem=False, stem_multiplier=1, in_channels=1
)
TENAS_PRUNE_NUMBER = 3  # CIFAR-10 (ImageNet: 2), `prune_launch.py`
TENAS_NTK_BATCH = 14  # CIFAR-10 (ImageNet: 24)
INPUTS_PER_NODE = 2


def edges(num_nodes: int = 4) -> list[tuple[int, int]]:
    """The supernet's edges `(node, input)` in TE-NAS's order (`'{node}<-{input}'`
    sorted, node-major for up to 8 nodes); inputs 0, 1 are the cell inputs."""
    return [(i, j) for i in range(num_nodes) for j in range(darts.NUM_INPUTS + i)]


def edge_groups(num_nodes: int = 4) -> list[list[int]]:
    """Edge indices per node (TE-NAS's `[(0, 2), (2, 5), (5, 9), (9, 14)]`)."""
    out, start = [], 0
    for i in range(num_nodes):
        n = darts.NUM_INPUTS + i
        out.append(list(range(start, start + n)))
        start += n
    return out


class _MaskEdge(nn.Module):
    channels: int
    stride: int
    ops: tuple[str, ...]
    settings: darts._Settings

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        total = 0.0
        relu_readers = jnp.zeros((), jnp.float32)
        for o, name in enumerate(self.ops):
            module = darts._op_module(name, self.channels, self.stride, self.settings, name=name)
            on = (w[o] > 0).astype(jnp.float32)
            out, mid, _ = darts._run_op(
                name, None if module is None else module.weights(), x, self.stride, self.settings
            )
            if mid is not None:
                sow_tap(self, f"{name}_mid", mid, on)
            relu_readers = relu_readers + on * float(darts._reads_relu(name, self.stride))
            total = total + w[o] * out
        sow_tap(self, "relu_input", x, relu_readers)
        return total


class _MaskCell(nn.Module):
    channels: int
    in_features: tuple[int, int]
    reduction: bool
    reduction_prev: bool
    ops: tuple[str, ...]
    num_nodes: int
    settings: darts._Settings
    train: bool = True

    @nn.compact
    def __call__(self, s0: jax.Array, s1: jax.Array, weights: jax.Array) -> jax.Array:
        c, s = self.channels, self.settings
        states = [
            darts._preprocess(self, 0, s0, None, self.in_features[0], c, self.reduction_prev, s),
            darts._preprocess(self, 1, s1, None, self.in_features[1], c, False, s),
        ]
        for e, (i, j) in enumerate(edges(self.num_nodes)):
            stride = 2 if self.reduction and j < darts.NUM_INPUTS else 1
            out = _MaskEdge(c, stride, self.ops, s, name=f"edge_{e}")(states[j], weights[e])
            if len(states) == darts.NUM_INPUTS + i:
                states.append(out)
            else:
                states[-1] = states[-1] + out
        return jnp.concatenate(states[darts.NUM_INPUTS :], axis=-1)


class TenasDartsSupernet(nn.Module):
    """The supernet; call as `module(x, weights)` with x f32[B, H, W, in_channels] and
    op weights f32[2, E, O]. Returns f32[B, num_classes]."""

    channels: int
    cells_per_stage: int
    depth: int
    stem: bool
    stem_multiplier: int
    in_channels: int
    num_classes: int
    ops: tuple[str, ...]
    num_nodes: int

    def layout(self) -> list[tuple[int, bool]]:
        """(C, reduction) of every cell, cut at `depth` (<= 0: all)."""
        c, n = self.channels, self.cells_per_stage
        cells = (
            [(c, False)] * n
            + [(2 * c, True)]
            + [(2 * c, False)] * (n - 1)
            + [(4 * c, True)]
            + [(4 * c, False)] * (n - 1)
        )
        return cells[: self.depth] if self.depth > 0 else cells

    @nn.compact
    def __call__(self, x: jax.Array, weights: jax.Array) -> jax.Array:
        base.check_images(x, "the TE-NAS DARTS supernet", self.in_channels)
        settings = darts._Settings(affine=True, pool_bn=False, batch_norm=True, track=False)
        if self.stem:
            width = self.channels * self.stem_multiplier
            x = op_layers.ConvBN(self.in_channels, width, 3, 1, 1, False, name="stem")(x, True)
        else:
            width = self.in_channels
        s0 = s1 = x
        widths, reduction_prev = (width, width), False
        for k, (c, reduction) in enumerate(self.layout()):
            cell = _MaskCell(
                c,
                widths,
                reduction,
                reduction_prev,
                self.ops,
                self.num_nodes,
                settings,
                name=f"cell{k}",
            )
            s0, s1 = s1, cell(s0, s1, weights[int(reduction)])
            widths, reduction_prev = (widths[1], self.num_nodes * c), reduction
        h = op_layers.BatchNorm(widths[1], False, True, name="lastact")(s1, True)
        sow_tap(self, "lastact_relu", h)
        h = op_layers.global_pool_features(self, jax.nn.relu(h))
        return op_layers.Dense(self.num_classes, name="classifier")(h)


def network(
    weights,
    *,
    channels: int = 1,
    cells_per_stage: int = 1,
    depth: int = 2,
    stem: bool = True,
    stem_multiplier: int = 1,
    in_channels: int = 3,
    num_classes: int = 10,
    ops: Sequence[str] = TENAS_OPS,
    num_nodes: int = 4,
) -> net_lib.Network:
    """The supernet `Network` for op weights f32[2, E, O] (PyTorch's default init).

    Defaults: TE-NAS's NTK network (`TENAS_NTK_NETWORK`); `TENAS_REGIONS_NETWORK` is
    its thin network for linear regions.

    Raises:
      ArchitectureError: weights of the wrong shape.
      ConfigError: unknown ops or non-positive sizes.
    """
    ops = darts._check_ops(ops)
    for name, value in (("channels", channels), ("cells_per_stage", cells_per_stage)):
        if value < 1:
            raise errors.ConfigError(f"{name} must be >= 1, got {value}")
    weights = jnp.asarray(weights)
    shape = (2, len(edges(num_nodes)), len(ops))
    if weights.shape != shape:
        raise errors.ArchitectureError(
            f"TE-NAS DARTS op weights must be f32{list(shape)} (normal and reduction cell, "
            f"edges, ops), got {weights.dtype}{list(weights.shape)}"
        )
    module = TenasDartsSupernet(
        channels,
        cells_per_stage,
        depth,
        stem,
        stem_multiplier,
        in_channels,
        num_classes,
        ops,
        num_nodes,
    )
    return supernet.network(module, weights.astype(jnp.float32))


def network_fn(num_classes: int = 10, num_nodes: int = 4):
    """`(op_weights f32[2 * E, O], overrides) -> Network` for `tenas.supernet_scorer`
    (the two cells' edges stacked, as `tenas.prune` sees them)."""

    def make(weights, overrides):
        e = len(edges(num_nodes))
        w = jnp.reshape(weights, (2, e, weights.shape[-1]))
        return network(w, num_classes=num_classes, num_nodes=num_nodes, **overrides)

    return make


def to_genotype(active, space_ops: Sequence[str], ops: Sequence[str] = TENAS_OPS) -> np.ndarray:
    """A pruned supernet as a genotype of `darts.space(cell_ops=space_ops)`.

    Args:
      active: bool[2 * E, O] (normal cell's edges, then the reduction cell's) with one
        op on each kept edge and two kept edges per node.
      space_ops: the target space's ops (it must hold every kept op).

    Returns:
      int32[8 * num_nodes]: per cell and node, the two kept `(input, op)` pairs in input
      order (TE-NAS's `genotype()` order among equal weights).

    Raises:
      ArchitectureError: a node without exactly two kept single-op edges, or a kept op
      that `space_ops` lacks.
    """
    active = np.asarray(active, bool)
    num_edges = active.shape[0] // 2
    num_nodes = next(n for n in range(1, 64) if len(edges(n)) == num_edges)
    out = []
    for cell in range(2):
        a = active[cell * num_edges : (cell + 1) * num_edges]
        for node, group in enumerate(edge_groups(num_nodes)):
            kept = [e for e in group if a[e].any()]
            if len(kept) != INPUTS_PER_NODE or any(a[e].sum() != 1 for e in kept):
                raise errors.ArchitectureError(
                    f"cell {cell} node {node}: expected {INPUTS_PER_NODE} kept edges with "
                    f"one op each, got ops per edge {a[group].sum(axis=1).tolist()}"
                )
            for e in kept:
                name = ops[int(np.argmax(a[e]))]
                if name not in space_ops:
                    raise errors.ArchitectureError(
                        f"op {name!r} kept by the pruning is not an op of the space "
                        f"{tuple(space_ops)}"
                    )
                out += [edges(num_nodes)[e][1], list(space_ops).index(name)]
    return np.asarray(out, np.int32)
