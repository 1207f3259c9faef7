"""DARTS-style cell search spaces: DARTS / NAS-Bench-301, and the machinery of the NDS spaces.

Liu, Simonyan, Yang, "DARTS: Differentiable Architecture Search", ICLR 2019; Siems et al.,
"NAS-Bench-301 and the Case for Surrogate Benchmarks", 2020; Radosavovic et al., "On
Network Design Spaces for Visual Recognition" (NDS), ICCV 2019.

**Cells.** A network stacks normal cells and reduction cells (stride 2, twice the
channels). A cell has two inputs, the outputs of the two previous cells, preprocessed
to C channels (ReLU -> 1x1 conv -> BN, or FactorizedReduce when the cell before is a
reduction cell), and `num_nodes` intermediate nodes. Node j (DARTS numbering j + 2)
sums two edges; each edge applies one op to one earlier state: a cell input (0, 1)
or an earlier node (2 .. j + 1). Inputs may repeat (the NDS rule; NAS-Bench-301's own
sampler draws distinct pairs). In reduction cells the edges reading a cell input have
stride 2 (`skip_connect` becomes FactorizedReduce). The cell output concatenates all
nodes (`concat="all"`: DARTS, PNAS) or the nodes no edge reads (`"loose_end"`: NASNet,
Amoeba, ENAS).

**Genotype.** `int32[8 * num_nodes]`: the normal cell, then the reduction cell; per
cell, node by node, two edges, each as the pair `(input, op)` with `op` an index into
the space's `ops`. For DARTS (4 nodes) that is 32 entries, the 8 `(input, op)` pairs per
cell of NASLib's compact form (whose op order is `NB301_OPS`). Positions take
`j + 2` (input of node j) or `len(ops)` (op) values.

**Macro network** (DARTS `NetworkCIFAR` / pycls `nas.py`): a stem (CIFAR: 3x3 conv to
3C channels + BN; ImageNet: two stride-2 convs then a third; none: both inputs of the
first cell are the images, as SWAP's correlation network), `num_cells` cells with
reduction cells at `reductions` (default `num_cells // 3` and `2 * num_cells // 3`),
an optional auxiliary head after the last reduction cell, global average pooling and a
linear classifier. Two op conventions: DARTS / NDS evaluation networks (BN with affine
parameters in every op, no BN after pooling) and NASLib's NAS-Bench-301 graph, which
NAS-Bench-Suite-Zero scored (`affine_ops=False`: cell ops' BN without parameters;
`pool_bn=True`: a parameter-free BN after each pooling op). The default network is
the latter as NAS-Bench-Suite-Zero counted its `params` column (NASLib
`NasBench301SearchSpace` of May-June 2022): C=32 (stem 3x3 conv to 96 channels, cell
widths 32/64/128; NASLib cut them to 16/32/64 in Oct 2022, commit a4412f1), 8 cells with
reductions at cells 2 and 5, 10 classes, auxiliary head not counted. On all 363 rows of
`nb301_zc_suitezero_subset363_cifar10.csv.gz` the masked count equals `params * 1e6`
to under one parameter (tests/test_darts.py).

**Data-driven dispatch.** The genotype is a traced call argument: each edge selects
its input with `lax.select_n` over the candidate states and runs only its op with
`lax.switch` (in reduction cells over `2 * len(ops)` branches: the op at stride 2 on a
cell input, or at stride 1 on a node). Every edge holds the parameters of every op, so
parameters do not depend on the genotype. Loose-end concatenation keeps all
`num_nodes * C` channels and zeroes the nodes that are read; those channels are
masked out of taps (`Tap.weight`) and of `param_mask` (the next layer's input rows), so
the network equals the materialised one, whose concatenation has only the loose nodes.

**Edges under one scan.** With `scan_edges` (default), a
cell applies its `2 * num_nodes` edges under one `lax.scan` over their stacked
parameters: every edge of a cell runs the same code on states of one shape (the inputs
and nodes of a normal cell; in a reduction cell the inputs at stride 2 or the nodes at
stride 1), so the program holds one edge per cell instead of eight, and XLA compiles
and schedules a fraction of what the unrolled edges cost. The result equals the
unrolled edges (tests/test_darts.py). Probes (and gates) go through the scan: its
switch branches also return their BatchNorm variances, and each edge records its
probes after the scan under the names the unrolled edge gives them. Taps too: the
scan returns each edge's separable-conv mid value, and the cell sows the states and
those values after the scan under the unrolled cell's names and weights.

**Taps.** Each cell state (preprocessed inputs, nodes) is tapped once with weight =
number of selected ops whose first layer is a ReLU reading it; a separable conv's
second ReLU is tapped per edge; preprocessing taps are named `*_relu_conv_bn` (ReLU ->
conv -> BN modules, which the reference NASWOT and early NASLib hooks count twice) or
`*_factorized_reduce`.
"""

import ast
import re
from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors
from jaxnas import network as net_lib
from jaxnas.network import sow_tap
from jaxnas.spaces import base, flop_rules, functional, op_layers, op_specs, supernet

NB301_OPS = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
"""NAS-Bench-301's 7 ops, in the order of NASLib's compact notation."""

DARTS_OPS = ("none", *NB301_OPS)
"""The original DARTS ops (`PRIMITIVES`), `none` included (e.g. SWAP's 1,000 cells)."""

CONCATS = ("all", "loose_end")
STEMS = ("cifar", "imagenet", "none")
NUM_INPUTS = 2  # every cell reads the outputs of the two previous cells

# name -> (kind, kernel size). "conv" kinds run a ReLU -> convs -> BN chain.
_OP_KINDS = {
    "none": ("none", 0),
    "skip_connect": ("skip", 0),
    "avg_pool_3x3": ("avg_pool", 3),
    "max_pool_3x3": ("max_pool", 3),
    "max_pool_5x5": ("max_pool", 5),
    "max_pool_7x7": ("max_pool", 7),
    "conv_1x1": ("conv", 1),
    "conv_3x3": ("conv", 3),
    "conv_3x1_1x3": ("factorized_conv", 3),
    "conv_7x1_1x7": ("factorized_conv", 7),
    "dil_conv_3x3": ("dil_conv", 3),
    "dil_conv_5x5": ("dil_conv", 5),
    "sep_conv_3x3": ("sep_conv", 3),
    "sep_conv_5x5": ("sep_conv", 5),
    "sep_conv_7x7": ("sep_conv", 7),
    "dil_sep_conv_3x3": ("dil_sep_conv", 3),
}
KNOWN_OPS = tuple(_OP_KINDS)
_CHAIN_KINDS = ("conv", "factorized_conv", "dil_conv")
_SEP_KINDS = ("sep_conv", "dil_sep_conv")


class _Settings(NamedTuple):
    """Static conventions of the cell ops."""

    affine: bool  # BatchNorm parameters inside the cell ops
    pool_bn: bool  # a parameter-free BatchNorm after each pooling op (NASLib)
    batch_norm: bool  # False: every BatchNorm is the identity
    track: bool  # keep running statistics (materialised networks)


def _specs(name: str, stride: int):
    kind, size = _OP_KINDS[name]
    if kind == "conv":
        return op_specs.conv_specs(size, stride)
    if kind == "factorized_conv":
        return op_specs.factorized_conv_specs(size, stride)
    if kind == "dil_conv":
        return op_specs.dil_conv_specs(size, stride)
    if kind == "sep_conv":
        return op_specs.sep_conv_specs(size, stride)
    if kind == "dil_sep_conv":
        return op_specs.sep_conv_specs(size, stride, dilation=2)
    return None


def _reads_relu(name: str, stride: int) -> bool:
    """Whether the op's first layer is a ReLU reading its input."""
    kind = _OP_KINDS[name][0]
    return kind in _CHAIN_KINDS + _SEP_KINDS or (kind == "skip" and stride == 2)


def _has_mid(name: str) -> bool:
    return _OP_KINDS[name][0] in _SEP_KINDS


def _op_module(op: str, channels: int, stride: int, s: _Settings, **kwargs):
    """The Linen module declaring an op's parameters (and running statistics), or None."""
    kind, _ = _OP_KINDS[op]
    c, args = channels, (s.affine, s.track, s.batch_norm)
    if kind in _CHAIN_KINDS:
        return op_layers.ReLUConvsBN(c, c, _specs(op, stride), *args, **kwargs)
    if kind in _SEP_KINDS:
        return op_layers.SepConv(c, _specs(op, stride), *args, **kwargs)
    if kind == "skip" and stride == 2:
        return op_layers.FactorizedReduce(c, c, *args, **kwargs)
    if kind in ("max_pool", "avg_pool") and s.pool_bn:
        return op_layers.BatchNorm(c, s.track, s.batch_norm, affine=False, **kwargs)
    return None


def _run_op(name: str, weights, x: jax.Array, stride: int, s: _Settings, gates=None):
    """Applies an op with batch-statistics BN: `(out, mid or None, variances)`, with
    one batch variance f32[C] per BatchNorm of the op's module (see `_op_module`) and
    `gates` (one per conv of that module, or None) applied to its conv outputs."""
    kind, size = _OP_KINDS[name]
    if kind == "none":
        return x[:, ::stride, ::stride] * 0.0, None, ()  # not zeros_like: see WORKSPACE_NOTES
    if kind == "skip":
        if stride == 1:
            return x, None, ()
        out, variances = functional.factorized_reduce(weights, x, s.batch_norm, gates)
        return out, None, variances
    if kind in ("max_pool", "avg_pool"):
        y = (functional.max_pool if kind == "max_pool" else functional.avg_pool)(x, size, stride)
        if not s.pool_bn:
            return y, None, ()
        y, var = functional.batch_norm_parts(y, None, None, s.batch_norm)
        return y, None, (var,)
    if kind in _SEP_KINDS:
        return functional.sep_conv(weights, x, _specs(name, stride), s.batch_norm, gates)
    out, variances = functional.relu_convs_bn(weights, x, _specs(name, stride), s.batch_norm, gates)
    return out, None, variances


def _check_ops(names) -> tuple[str, ...]:
    names = tuple(names)
    unknown = [n for n in names if n not in _OP_KINDS]
    if unknown or not names or len(set(names)) != len(names):
        raise errors.ConfigError(
            f"cell ops must be distinct names from {KNOWN_OPS}; got {names}"
            + (f" (unknown: {unknown})" if unknown else "")
        )
    return names


def _reductions(num_cells: int, reductions) -> tuple[int, ...]:
    if reductions is None:
        reductions = (num_cells // 3, 2 * num_cells // 3)
    out = tuple(sorted({int(r) for r in reductions}))
    if any(not 0 <= r < num_cells for r in out):
        raise errors.ConfigError(f"reduction cells {out} must lie in [0, {num_cells})")
    return out


# ------------------------------------------------------------------------- genotype


def _cell_choices(genotype: jax.Array, num_nodes: int, cell: int) -> jax.Array:
    """int32[num_nodes, 2, 2] (node, edge, (input, op)) of cell 0 (normal) or 1 (reduce)."""
    width = 4 * num_nodes
    return genotype[cell * width : (cell + 1) * width].reshape(num_nodes, 2, 2)


def _loose(choices, num_nodes: int):
    """f32[num_nodes]: 1 for nodes that no edge reads (the loose ends)."""
    xp = jnp if isinstance(choices, jax.Array) else np
    inputs = choices[:, :, 0].reshape(-1)
    used = (inputs[None, :] == xp.arange(NUM_INPUTS, NUM_INPUTS + num_nodes)[:, None]).any(1)
    return 1.0 - used.astype(xp.float32)


def _output_mask(choices, num_nodes: int, concat: str, channels: int):
    """Channel weights f32[num_nodes * channels] of a cell output, or None (all count)."""
    if concat == "all":
        return None
    loose = _loose(choices, num_nodes)
    xp = jnp if isinstance(loose, jax.Array) else np
    return xp.repeat(loose, channels)


# --------------------------------------------------------------------------- modules


def _preprocess(module, index: int, x, mask, in_features, features, reduce, s: _Settings):
    """A cell input's preprocessing; taps its ReLU input with the channel `mask`."""
    weight = 1.0 if mask is None else mask
    if reduce:
        sow_tap(module, f"preprocess{index}_factorized_reduce", x, weight)
        fr = op_layers.FactorizedReduce(
            in_features, features, True, s.track, s.batch_norm, name=f"preprocess{index}"
        )
        return fr(x, module.train, mask)
    sow_tap(module, f"preprocess{index}_relu_conv_bn", x, weight)
    conv = op_layers.ConvBN(
        in_features, features, 1, 1, 0, True, s.track, s.batch_norm, name=f"preprocess{index}"
    )
    return conv(x, module.train, mask)


class _CellBase(nn.Module):
    """Fields shared by the data-driven and the materialised cell."""

    channels: int
    in_features: tuple[int, int]  # channels of the two cell inputs
    reduction: bool
    reduction_prev: bool
    ops: tuple[str, ...]
    num_nodes: int
    concat: str
    settings: _Settings
    train: bool = True


class _MixedEdge(nn.Module):
    """One edge of the data-driven cell: the parameters of every op, one op applied.

    When probes are requested (or gates passed) every op module records its layers,
    BatchNorm statistics and FLOPs under its own name, with weight 0 when the op is not
    selected; the switch branches then also return the BatchNorm variances (zeros from
    the branches of other ops).
    """

    channels: int
    reduction: bool
    node: int
    ops: tuple[str, ...]
    settings: _Settings

    @nn.compact
    def __call__(
        self,
        inputs,
        nodes,
        which_input: jax.Array,
        which_op: jax.Array,
        weights_only=False,
        recorded=None,
    ):
        """`(out, mid or None)`. Two modes for the scanned edges (`_scanned_nodes`),
        which apply nothing: `weights_only` returns `(weights, gates, num_bn)` of every
        op (`num_bn`: op -> its BatchNorm count, for `_variance_slots`); `recorded` =
        `(slots, which_op, variants, out_shape)` records the probes of an edge the scan
        applied (see `_record`)."""
        s = self.settings._replace(track=False)
        stride = 2 if self.reduction else 1
        modules = {}
        for name in self.ops:
            module = _op_module(name, self.channels, stride, s, name=name)
            if module is not None:
                modules[name] = module
        weights = {name: m.weights() for name, m in modules.items()}
        gates = {
            name: () if isinstance(m, op_layers.BatchNorm) else m.gates()
            for name, m in modules.items()
        }
        num_bn = {name: 2 if isinstance(m, op_layers.SepConv) else 1 for name, m in modules.items()}
        if weights_only:
            return weights, gates, num_bn
        if recorded is not None:
            self._record(modules, *recorded)
            return None
        with_mid = any(_has_mid(name) for name in self.ops)
        if self.is_initializing():
            # Only the parameters matter during `init`; tracing every branch of the
            # switch there would double the trace time of a network.
            x = inputs[0][:, ::stride, ::stride]
            return x, (x if with_mid else None)
        probing = net_lib.probing(self, *(g for gs in gates.values() for g in gs))

        def branch(name, stride, operand):
            def run(h_inputs, h_nodes):
                x = h_inputs if operand == 0 else h_nodes
                out, mid, variances = _run_op(
                    name, weights.get(name), x, stride, s, gates.get(name)
                )
                result = (out,)
                if with_mid:
                    result += (out * 0.0 if mid is None else mid,)
                if probing:
                    result += (_variance_slots(name, variances, num_bn, self.channels, out.dtype),)
                return result

            return run

        if not self.reduction:
            x = _select(which_input, (*inputs, *nodes))
            branches = [branch(name, 1, 0) for name in self.ops]
            result = functional.switch(which_op, branches, x, x)
        else:
            x_inputs = _select(which_input, inputs)
            branches = [branch(name, 2, 0) for name in self.ops]
            if not nodes:
                result = functional.switch(which_op, branches, x_inputs, x_inputs)
            else:
                x_nodes = _select(which_input - NUM_INPUTS, nodes)
                branches += [branch(name, 1, 1) for name in self.ops]
                from_nodes = which_input >= NUM_INPUTS
                index = which_op + len(self.ops) * from_nodes.astype(which_op.dtype)
                result = functional.switch(index, branches, x_inputs, x_nodes)
        out = result[0]
        if probing:
            node_shape = nodes[0].shape if nodes else None
            variants = _edge_variants(
                self.reduction, self.node, which_input, inputs[0].shape, node_shape
            )
            self._record(modules, result[-1], which_op, variants, out.shape)
        return out, (result[1] if with_mid else None)

    def _record(self, modules, slots, which_op, variants, out_shape) -> None:
        """Records every op's probes and FLOPs; `variants` are the switch's input kinds
        `(weight, x_shape, stride)`."""
        selected = {name: (which_op == o).astype(jnp.float32) for o, name in enumerate(self.ops)}
        for (name, module), variances in zip(modules.items(), slots):
            if isinstance(module, op_layers.BatchNorm):
                module.record(variances[0], out_shape, selected[name])
                continue
            strided_only = _OP_KINDS[name][0] == "skip"  # a stride-1 skip is the identity
            module.record(
                [
                    (selected[name] * w, module.costs(shape, _specs(name, stride)))
                    for w, shape, stride in variants
                    if stride == 2 or not strided_only
                ],
                variances,
            )
        pool_flops = sum(
            selected[name] * flop_rules.avg_pool_flops(out_shape, _OP_KINDS[name][1])
            for name in self.ops
            if _OP_KINDS[name][0] in ("max_pool", "avg_pool")
        )
        net_lib.sow_cost(self, "pool_flops", pool_flops)


def _variance_slots(name: str, variances, num_bn: dict, channels: int, dtype):
    """One structure of BatchNorm variances for every branch of an edge's switch: op
    `name`'s own where it has any, zeros [C] for each BatchNorm of every other op."""
    empty = jnp.zeros((channels,), dtype)
    return tuple(
        variances if o == name and variances else (empty,) * count for o, count in num_bn.items()
    )


def _edge_variants(reduction: bool, node: int, which_input, p0_shape, node_shape):
    """The input kinds `(weight, x_shape, stride)` an edge's switch chose among (see
    `_MixedEdge._record`): one in a normal cell and on a reduction cell's first node,
    else the cell inputs at stride 2 or the nodes at stride 1, by `which_input`."""
    if not reduction:
        return [(1.0, p0_shape, 1)]
    if node == 0:
        return [(1.0, p0_shape, 2)]
    from_nodes = (which_input >= NUM_INPUTS).astype(jnp.float32)
    return [(1.0 - from_nodes, p0_shape, 2), (from_nodes, node_shape, 1)]


def _select(which: jax.Array, candidates):
    """The candidate at a traced index (clipped to the candidates)."""
    if len(candidates) == 1:
        return candidates[0]
    return jax.lax.select_n(jnp.clip(which, 0, len(candidates) - 1), *candidates)


def _scanned_nodes(
    edges, p0, p1, choices, ops, reduction: bool, s: _Settings, probing: bool, with_mid: bool
):
    """The nodes of a data-driven cell, its edges applied under one `lax.scan`.

    Args:
      edges: every edge's `(weights, gates, num_bn)` (`_MixedEdge(...,
        weights_only=True)`), edge by edge; weights and gates are stacked here on a
        leading axis [2 * num_nodes, ...].
      p0, p1: the preprocessed cell inputs f32[B, H, W, C].
      choices: int32[num_nodes, 2, 2] (node, edge, (input, op)).
      probing: also return every edge's BatchNorm variances (`_variance_slots`).
      with_mid: also return every edge's mid value (a separable conv's second ReLU
        input; zeros from the other ops).

    Returns:
      `(nodes, (mids, slots))`: the nodes, f32[num_nodes, B, H', W', C] (H' = H / 2 in
      a reduction cell); with `with_mid` the mid values f32[2 * num_nodes, B, H', W', C]
      (else `()`); with `probing` the variance slots stacked over the edges (else `()`).

    Each edge reads the state that the unrolled cell's `_select` gives it (indices
    clipped to the states that exist) and adds its op's output to its node, so every
    node equals the unrolled cell's `out_0 + out_1`.
    """
    num_nodes = choices.shape[0]
    num_bn = edges[0][2]
    xs = (
        jax.tree.map(lambda *wg: jnp.stack(wg), *[(w, g) for w, g, _ in edges]),
        jnp.repeat(jnp.arange(num_nodes), 2),
        choices[:, :, 0].reshape(-1),
        choices[:, :, 1].reshape(-1),
    )
    channels = p0.shape[-1]

    def branch(name, stride, operand):
        def run(wg, x_inputs, x_nodes):
            w, g = wg
            x = (x_inputs, x_nodes)[operand]
            out, mid, variances = _run_op(name, w.get(name), x, stride, s, g.get(name))
            mids = (out * 0.0 if mid is None else mid) if with_mid else ()
            if not probing:
                return out, (mids, ())
            return out, (mids, _variance_slots(name, variances, num_bn, channels, out.dtype))

        return run

    if not reduction:
        # Inputs and nodes share one shape: one buffer of states, nodes filled in order.
        branches = [branch(name, 1, 0) for name in ops]

        def edge(states, edge_xs):
            wg, j, i, op = edge_xs
            x = states[jnp.clip(i, 0, NUM_INPUTS + j - 1)]
            out, per_edge = functional.switch(op, branches, wg, x, x)
            return states.at[NUM_INPUTS + j].add(out), per_edge

        states = jnp.concatenate([jnp.stack([p0, p1]), jnp.zeros((num_nodes, *p0.shape), p0.dtype)])
        states, per_edge = jax.lax.scan(edge, states, xs)
        return states[NUM_INPUTS:], per_edge

    inputs = jnp.stack([p0, p1])
    branches = [branch(name, 2, 0) for name in ops] + [branch(name, 1, 1) for name in ops]

    def reduction_edge(nodes, edge_xs):
        wg, j, i, op = edge_xs
        from_nodes = (i >= NUM_INPUTS) & (j > 0)
        x_inputs = inputs[jnp.clip(i, 0, NUM_INPUTS - 1)]
        x_nodes = nodes[jnp.clip(i - NUM_INPUTS, 0, jnp.maximum(j - 1, 0))]
        index = op + len(ops) * from_nodes.astype(op.dtype)
        out, per_edge = functional.switch(index, branches, wg, x_inputs, x_nodes)
        return nodes.at[j].add(out), per_edge

    nodes = jnp.zeros((num_nodes, *p0[:, ::2, ::2].shape), p0.dtype)
    return jax.lax.scan(reduction_edge, nodes, xs)


class _MixedCell(_CellBase):
    """A data-driven cell: its choices are the traced `int32[num_nodes, 2, 2]`."""

    scan_edges: bool = True

    @nn.compact
    def __call__(self, s0, m0, s1, m1, choices: jax.Array):
        s, c = self.settings, self.channels
        p0 = _preprocess(self, 0, s0, m0, self.in_features[0], c, self.reduction_prev, s)
        p1 = _preprocess(self, 1, s1, m1, self.in_features[1], c, False, s)
        if self.scan_edges and not self.is_initializing():
            return self._scanned(p0, p1, choices)
        states = [p0, p1]
        mids = []
        for j in range(self.num_nodes):
            total = None
            for k in range(2):
                e, (which_input, which_op) = 2 * j + k, (choices[j, k, 0], choices[j, k, 1])
                edge = _MixedEdge(c, self.reduction, j, self.ops, s, name=f"edge_{e}")
                out, mid_value = edge(
                    states[:NUM_INPUTS], states[NUM_INPUTS:], which_input, which_op
                )
                mids.append(mid_value)
                total = out if total is None else total + out
            states.append(total)
        self._sow_taps(states, mids, choices)
        return self._output(states[NUM_INPUTS:], choices)

    def _sow_taps(self, states, mids, choices) -> None:
        """Taps every state but the last node with weight = the number of selected ops
        whose first layer is a ReLU reading it, and every edge's mid value (None: no op
        has one) with weight 1 where its op is a separable conv."""
        if not self.is_mutable_collection(net_lib.TAPS):
            return
        relu_2, relu_1, has_mid = (
            jnp.asarray([f(name) for name in self.ops], jnp.float32)
            for f in (lambda n: _reads_relu(n, 2), lambda n: _reads_relu(n, 1), _has_mid)
        )
        readers = [jnp.zeros((), jnp.float32) for _ in range(NUM_INPUTS + self.num_nodes)]
        for e, mid_value in enumerate(mids):
            j, (which_input, which_op) = e // 2, choices[e // 2, e % 2]
            if mid_value is not None:
                sow_tap(self, f"edge_{e}_mid", mid_value, has_mid[which_op])
            strided = self.reduction & (which_input < NUM_INPUTS)
            reads = jnp.where(strided, relu_2[which_op], relu_1[which_op])
            for i in range(NUM_INPUTS + j):
                readers[i] = readers[i] + (which_input == i).astype(jnp.float32) * reads
        for i in range(NUM_INPUTS + self.num_nodes - 1):  # the last node feeds no edge
            sow_tap(self, f"state{i}", states[i], readers[i])

    def _scanned(self, p0, p1, choices):
        """The cell with its edges under one scan (`_scanned_nodes`); probes and taps,
        when requested, are recorded after the scan under the unrolled edges' names."""
        s, c = self.settings, self.channels
        edges = [
            _MixedEdge(c, self.reduction, e // 2, self.ops, s, name=f"edge_{e}")
            for e in range(2 * self.num_nodes)
        ]
        parts = [edge(None, None, None, None, weights_only=True) for edge in edges]
        probing = net_lib.probing(
            self, *(g for _, gates, _ in parts for gs in gates.values() for g in gs)
        )
        with_mid = self.is_mutable_collection(net_lib.TAPS) and any(map(_has_mid, self.ops))
        nodes, (mids, slots) = _scanned_nodes(
            parts, p0, p1, choices, self.ops, self.reduction, s, probing, with_mid
        )
        self._sow_taps([p0, p1, *nodes], list(mids) if with_mid else [None] * len(edges), choices)
        if probing:
            node_shape = nodes.shape[1:]
            for e, edge in enumerate(edges):
                which_input, which_op = choices[e // 2, e % 2, 0], choices[e // 2, e % 2, 1]
                variants = _edge_variants(self.reduction, e // 2, which_input, p0.shape, node_shape)
                edge_slots = jax.tree.map(lambda v, e=e: v[e], slots)
                edge(None, None, None, None, recorded=(edge_slots, which_op, variants, node_shape))
        return self._output(list(nodes), choices)

    def _output(self, nodes, choices):
        """The cell output (the nodes concatenated) and its channel mask (or None)."""
        if self.concat == "all":
            return jnp.concatenate(nodes, axis=-1), None
        loose = _loose(choices, self.num_nodes)
        out = jnp.concatenate([n * loose[j] for j, n in enumerate(nodes)], axis=-1)
        return out, _output_mask(choices, self.num_nodes, self.concat, self.channels)


class _FixedCell(_CellBase):
    """A materialised cell; `choices` are static `((input, op), (input, op))` per node."""

    choices: tuple = ()

    @nn.compact
    def __call__(self, s0, m0, s1, m1, drop_path=0.0):
        del m0, m1  # a materialised network has no masked channels
        s, c = self.settings, self.channels
        p0 = _preprocess(self, 0, s0, None, self.in_features[0], c, self.reduction_prev, s)
        p1 = _preprocess(self, 1, s1, None, self.in_features[1], c, False, s)
        states = [p0, p1]
        readers = [0] * (NUM_INPUTS + self.num_nodes)
        for j, node in enumerate(self.choices):
            total = None
            for k, (i, o) in enumerate(node):
                e, name = 2 * j + k, self.ops[o]
                stride = 2 if self.reduction and i < NUM_INPUTS else 1
                readers[i] += _reads_relu(name, stride)
                out, mid = _FixedEdge(c, name, stride, s, self.train, name=f"edge_{e}")(states[i])
                if mid is not None:
                    sow_tap(self, f"edge_{e}_mid", mid)
                if self.train and not _is_zero(drop_path) and (name, stride) != ("skip_connect", 1):
                    out = _drop_path(self, out, drop_path)
                total = out if total is None else total + out
            states.append(total)
        for i in range(NUM_INPUTS + self.num_nodes - 1):
            if readers[i]:
                sow_tap(self, f"state{i}", states[i], float(readers[i]))
        keep = _kept_nodes(self.choices, self.concat)
        return jnp.concatenate([states[NUM_INPUTS + j] for j in keep], axis=-1), None


class _FixedEdge(nn.Module):
    """One edge of a materialised cell: only the selected op exists."""

    channels: int
    op: str
    stride: int
    settings: _Settings
    train: bool

    @nn.compact
    def __call__(self, x):
        s = self.settings
        module = _op_module(self.op, self.channels, self.stride, s, name=self.op)
        kind, size = _OP_KINDS[self.op]
        if kind in ("max_pool", "avg_pool"):
            y = (functional.max_pool if kind == "max_pool" else functional.avg_pool)(
                x, size, self.stride
            )
            net_lib.sow_cost(self, "pool_flops", flop_rules.avg_pool_flops(y.shape, size))
            return (module(y, self.train) if s.pool_bn else y), None
        if module is None:
            return _run_op(self.op, None, x, self.stride, s)[:2]
        out = module(x, self.train)
        return out if isinstance(out, tuple) else (out, None)


def _is_zero(rate) -> bool:
    return isinstance(rate, (int, float)) and rate == 0


def _drop_path(module: nn.Module, x: jax.Array, rate) -> jax.Array:
    """DARTS' drop-path: zeroes an edge's output per example with probability `rate`
    (f32[] or float, may be traced) and scales the kept ones by 1 / (1 - rate); draws
    from the `dropout` RNG stream."""
    keep = 1.0 - jnp.asarray(rate, jnp.float32)
    mask = jax.random.bernoulli(module.make_rng("dropout"), keep, (x.shape[0], 1, 1, 1))
    return x / keep * mask.astype(x.dtype)


def _kept_nodes(choices, concat: str) -> list[int]:
    """Indices (0-based) of the nodes a materialised cell concatenates."""
    if concat == "all":
        return list(range(len(choices)))
    loose = _loose(np.asarray(choices), len(choices))
    return [j for j in range(len(choices)) if loose[j]]


def _avg_pool_valid(x: jax.Array, size: int, stride: int) -> jax.Array:
    """`AvgPool2d(size, stride, padding=0)`: every window is full, so a plain mean."""
    window = (1, size, size, 1)
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, (1, stride, stride, 1), "VALID")
    return total / float(size * size)


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary classifier (CIFAR: input 8x8, pool stride 3; ImageNet: stride 2).

    ReLU -> 5x5 average pool -> 1x1 conv (128) -> BN -> ReLU -> 2x2 conv (768) -> BN
    (CIFAR only) -> ReLU -> linear. Returns the auxiliary logits f32[B, classes].
    """

    in_features: int
    num_classes: int
    imagenet: bool = False
    track_running_stats: bool = False
    batch_norm: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, mask=None, train: bool = True) -> jax.Array:
        track, bn = self.track_running_stats, self.batch_norm
        sow_tap(self, "relu0", x, 1.0 if mask is None else mask)
        valid = flop_rules.valid_fraction(1.0, mask)
        net_lib.sow_cost(self, "relu0_flops", flop_rules.relu_flops(x.shape) * valid)
        y = _avg_pool_valid(jax.nn.relu(x), 5, 2 if self.imagenet else 3)
        net_lib.sow_cost(self, "pool_flops", flop_rules.avg_pool_flops(y.shape, 5) * valid)
        conv_a = op_layers.ConvBN(self.in_features, 128, 1, 1, 0, False, track, bn, name="conv_a")
        y = conv_a(y, train, mask)
        sow_tap(self, "relu1", y)
        net_lib.sow_cost(self, "relu1_flops", flop_rules.relu_flops(y.shape))
        y = jax.nn.relu(y)
        if self.imagenet:
            y = op_layers.Conv(128, 768, 2, name="conv_b")(y)
        else:
            y = op_layers.ConvBN(128, 768, 2, 1, 0, False, track, bn, name="conv_b")(y, train)
        if y.shape[1:3] != (1, 1):
            raise errors.ShapeError(
                f"the auxiliary head needs an 8x8 (CIFAR) or 7x7 (ImageNet) input, got "
                f"{x.shape[1]}x{x.shape[2]}"
            )
        sow_tap(self, "relu2", y)
        net_lib.sow_cost(self, "relu2_flops", flop_rules.relu_flops(y.shape))
        y = jax.nn.relu(y).reshape(y.shape[0], -1)
        return op_layers.Dense(self.num_classes, name="classifier")(y)


class _Macro(nn.Module):
    """The macro skeleton around the cells; shared by both network kinds."""

    channels: int
    num_cells: int
    reductions: tuple[int, ...]
    num_classes: int
    in_channels: int
    stem: str
    auxiliary: bool
    ops: tuple[str, ...]
    num_nodes: int
    concat: str
    affine_ops: bool
    pool_bn: bool
    batch_norm: bool
    track_running_stats: bool

    def cell_widths(self) -> list[int]:
        """C of every cell (doubled at each reduction cell)."""
        return [
            self.channels * 2 ** sum(r <= i for r in self.reductions) for i in range(self.num_cells)
        ]

    def body(self, x, cell_fn, out_nodes, train):
        base.check_images(x, "DARTS-style networks", self.in_channels)
        track, bn, c = self.track_running_stats, self.batch_norm, self.channels
        if self.stem == "cifar":
            x = op_layers.ConvBN(self.in_channels, 3 * c, 3, 1, 1, False, track, bn, name="stem")(
                x, train
            )
            s0 = s1 = x
            widths, reduction_prev = (3 * c, 3 * c), False
        elif self.stem == "none":
            s0 = s1 = x
            widths, reduction_prev = (self.in_channels, self.in_channels), False
        else:
            s0 = op_layers.ConvBN(
                self.in_channels, c // 2, 3, 2, 1, False, track, bn, name="stem0_a"
            )(x, train)
            sow_tap(self, "stem0_relu", s0)
            s0 = op_layers.ConvBN(c // 2, c, 3, 2, 1, True, track, bn, name="stem0_b")(s0, train)
            sow_tap(self, "stem1_relu", s0)
            s1 = op_layers.ConvBN(c, c, 3, 2, 1, True, track, bn, name="stem1")(s0, train)
            widths, reduction_prev = (c, c), True
        settings = _Settings(self.affine_ops, self.pool_bn, bn, track)
        masks = (None, None)
        for i, width in enumerate(self.cell_widths()):
            reduction = i in self.reductions
            out, mask = cell_fn(
                i,
                dict(
                    channels=width,
                    in_features=widths,
                    reduction=reduction,
                    reduction_prev=reduction_prev,
                    ops=self.ops,
                    num_nodes=self.num_nodes,
                    concat=self.concat,
                    settings=settings,
                    train=train,
                    name=f"cell{i}",
                ),
                (s0, masks[0], s1, masks[1]),
            )
            s0, s1, masks = s1, out, (masks[1], mask)
            widths, reduction_prev = (widths[1], out_nodes(i) * width), reduction
            if self.auxiliary and i == self.reductions[-1]:
                head = AuxiliaryHead(
                    widths[1],
                    self.num_classes,
                    self.stem == "imagenet",
                    track,
                    bn,
                    name="auxiliary",
                )
                self.sow("intermediates", "aux_logits", head(s1, mask, train))
        features = op_layers.global_pool_features(self, s1, masks[1])
        return op_layers.Dense(self.num_classes, name="classifier")(features, masks[1])


class CellNetwork(_Macro):
    """The data-driven network: the architecture is the call argument `genotype`.

    Call as `module(x, genotype)` with x f32[B, H, W, C] and genotype int32[8 *
    num_nodes]. Returns f32[B, classes]; with `auxiliary`, the auxiliary logits are sown
    as `intermediates/aux_logits`. `scan_edges`: see the module docstring.
    """

    scan_edges: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, genotype: jax.Array) -> jax.Array:
        genotype = jnp.asarray(genotype)
        cells = [_cell_choices(genotype, self.num_nodes, k) for k in (0, 1)]

        def cell_fn(i, kwargs, states):
            cell = _MixedCell(**kwargs, scan_edges=self.scan_edges)
            return cell(*states, cells[int(i in self.reductions)])

        return self.body(x, cell_fn, lambda i: self.num_nodes, True)


class CellModel(_Macro):
    """A materialised network for one fixed genotype; call as `module(x, train)`.

    Its parameters are the data-driven network's restricted to the selected ops (and,
    for loose-end concatenation, to the input channels of the concatenated nodes): see
    `params_from_supernet`.
    """

    genotype: tuple[int, ...] = ()

    def _choices(self, cell: int) -> tuple:
        g = np.asarray(self.genotype).reshape(2, self.num_nodes, 2, 2)[cell]
        return tuple(tuple((int(i), int(o)) for i, o in node) for node in g)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True, drop_path=0.0) -> jax.Array:
        """`drop_path` (float or f32[], training only): DARTS' per-example drop of every
        edge output except identities; needs a `dropout` RNG when nonzero."""
        cells = [self._choices(k) for k in (0, 1)]

        def cell_fn(i, kwargs, states):
            cell = _FixedCell(**kwargs, choices=cells[int(i in self.reductions)])
            return cell(*states, drop_path)

        def out_nodes(i):
            return len(_kept_nodes(cells[int(i in self.reductions)], self.concat))

        return self.body(x, cell_fn, out_nodes, train)

    def params_from_supernet(self, params):
        """This network's `params` collection from a data-driven network's (same names)."""
        genotype = jnp.asarray(self.genotype, jnp.int32)
        return _map_leaves(params, genotype, _macro_fields(self), restrict=True)


# ------------------------------------------------------------------ parameter masks


def _macro_fields(module) -> dict:
    return {
        "num_nodes": module.num_nodes,
        "concat": module.concat,
        "reductions": module.reductions,
        "ops": module.ops,
        "widths": module.cell_widths(),
        "auxiliary": module.auxiliary,
        "num_cells": module.num_cells,
    }


def _map_leaves(params, genotype, f: dict, restrict: bool):
    """Parameter masks (`restrict=False`) or the restricted tree (`restrict=True`).

    Rules: the parameters of op o on edge e of cell i belong iff edge e selects o (a
    stride-1 `skip_connect` has none); the input rows of the layers that read a
    loose-end cell output (the next cells' preprocessing, the auxiliary head, the
    classifier) belong iff their channel is a loose node's. Everything else belongs.
    """
    num_nodes, reductions = f["num_nodes"], f["reductions"]
    cells = [_cell_choices(genotype, num_nodes, k) for k in (0, 1)]

    def choices_of(i):
        return cells[int(i in reductions)]

    def rows_of(i):
        if i < 0:
            return None
        return _output_mask(choices_of(i), num_nodes, f["concat"], f["widths"][i])

    def leaf(path, value):
        names = [getattr(k, "key", str(k)) for k in path]
        mask = None
        if names[0].startswith("cell") and names[1].startswith("edge_"):
            i, e = int(names[0][4:]), int(names[1][5:])
            which_input, which_op = choices_of(i)[e // 2, e % 2]
            selected = which_op == f["ops"].index(names[2])
            if names[2] == "skip_connect":
                selected = selected & (which_input < NUM_INPUTS)
            mask = selected.astype(jnp.float32)
        else:
            rows, axis = None, None
            if names[0].startswith("cell") and names[1].startswith("preprocess"):
                i, k = int(names[0][4:]), int(names[1][-1])
                rows, axis = rows_of(i - 2 + k), 2
            elif names[0] == "classifier" and names[-1] == "kernel":
                rows, axis = rows_of(f["num_cells"] - 1), 0
            elif names[:2] == ["auxiliary", "conv_a"]:
                rows, axis = rows_of(reductions[-1]), 2
            if rows is not None and names[-1] == "kernel":
                if restrict:
                    return jnp.take(value, np.flatnonzero(np.asarray(rows)), axis=axis)
                shape = [1] * value.ndim
                shape[axis] = value.shape[axis]
                return jnp.reshape(rows, shape)
        if restrict:
            return value if mask is None or bool(mask) else None
        return jnp.ones((), jnp.float32) if mask is None else mask

    out = jax.tree_util.tree_map_with_path(leaf, params)
    if restrict:
        out = _drop_none(out)
    return out


def _drop_none(tree):
    if not isinstance(tree, dict):
        return tree
    kept = {k: _drop_none(v) for k, v in tree.items() if v is not None}
    return {k: v for k, v in kept.items() if not (isinstance(v, dict) and not v)}


# ------------------------------------------------------------------------ notation


class Notation(NamedTuple):
    """How genotypes read and print for a space (static)."""

    name: str
    ops: tuple[str, ...]
    num_nodes: int
    concat: str

    def num_choices(self) -> tuple[int, ...]:
        cell = []
        for j in range(self.num_nodes):
            cell += [NUM_INPUTS + j, len(self.ops)] * 2
        return tuple(cell) * 2

    def cells(self, genotype) -> list[list[tuple[str, int]]]:
        g = np.asarray(genotype).reshape(2, self.num_nodes * 2, 2)
        return [[(self.ops[int(o)], int(i)) for i, o in cell] for cell in g]

    def concat_of(self, genotype) -> list[list[int]]:
        g = np.asarray(genotype).reshape(2, self.num_nodes, 2, 2)
        return [[NUM_INPUTS + j for j in _kept_nodes(cell, self.concat)] for cell in g]


def to_string(notation: Notation, genotype) -> str:
    """int32[8k] -> `Genotype(normal=[('op', input), ...], normal_concat=[...], ...)`."""
    (normal, reduce), (normal_concat, reduce_concat) = (
        notation.cells(genotype),
        notation.concat_of(genotype),
    )
    return (
        f"Genotype(normal={normal!r}, normal_concat={normal_concat!r}, "
        f"reduce={reduce!r}, reduce_concat={reduce_concat!r})"
    )


_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def from_string(notation: Notation, arch: str) -> np.ndarray:
    """Parses a DARTS `Genotype(...)` string into int32[8k]; raises ArchitectureError.

    Accepts the notation printed by DARTS, pycls and NAS-Bench-301 (keyword or
    positional fields; concatenations as lists, tuples or `range(a, b)`). The
    concatenation lists must equal the space's rule (`all` nodes, or the loose ends).
    """
    where = f"{notation.name} genotype {_short(arch)}"
    if not isinstance(arch, str):
        raise errors.ArchitectureError(f"a {notation.name} genotype must be a string, got {arch!r}")
    try:
        node = ast.parse(arch.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Genotype"
        and len(node.args) + len(node.keywords) == len(_FIELDS)
    ):
        raise errors.ArchitectureError(
            f"malformed {where}: expected Genotype(normal=[...], normal_concat=[...], "
            f"reduce=[...], reduce_concat=[...])"
        )
    fields = dict(zip(_FIELDS, node.args))
    for kw in node.keywords:
        if kw.arg not in _FIELDS or kw.arg in fields:
            raise errors.ArchitectureError(f"malformed {where}: unexpected field {kw.arg!r}")
        fields[kw.arg] = kw.value
    values = {name: _literal(fields[name], where, name) for name in _FIELDS}
    genotype = []
    for cell in ("normal", "reduce"):
        genotype += _parse_cell(notation, values[cell], where, cell)
    genotype = np.asarray(genotype, np.int32)
    for cell, expected in zip(("normal", "reduce"), notation.concat_of(genotype)):
        got = values[f"{cell}_concat"]
        if not isinstance(got, list | tuple | range) or list(got) != expected:
            raise errors.ArchitectureError(
                f"{where}: {cell}_concat={got!r} does not match the space's "
                f"{notation.concat!r} concatenation {expected}"
            )
    return genotype


def _literal(node, where, name):
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
    ):
        args = [_literal(a, where, name) for a in node.args]
        if all(isinstance(a, int) for a in args) and 1 <= len(args) <= 3:
            return range(*args)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise errors.ArchitectureError(
            f"malformed {where}: field {name} is not a literal list"
        ) from None


def _parse_cell(notation: Notation, edges, where, cell) -> list[int]:
    k = notation.num_nodes
    if not isinstance(edges, list | tuple) or len(edges) != 2 * k:
        count = len(edges) if isinstance(edges, list | tuple) else type(edges).__name__
        raise errors.ArchitectureError(
            f"malformed {where}: {cell} needs {2 * k} (op, input) pairs ({k} nodes x 2), "
            f"got {count}"
        )
    out = []
    for e, pair in enumerate(edges):
        if not (
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], int)
            and not isinstance(pair[1], bool)
        ):
            raise errors.ArchitectureError(
                f"malformed {where}: {cell} edge {e} is {pair!r}, not ('op', input)"
            )
        op, i = pair
        if op not in notation.ops:
            raise errors.ArchitectureError(
                f"unknown op {op!r} in {where}; expected one of {notation.ops}"
            )
        node = e // 2
        if not 0 <= i < NUM_INPUTS + node:
            raise errors.ArchitectureError(
                f"invalid input {i} of {cell} edge {e} in {where}: node {NUM_INPUTS + node} "
                f"reads one of 0..{NUM_INPUTS + node - 1}"
            )
        out += [i, notation.ops.index(op)]
    return out


_COMPACT = re.compile(r"^\s*\[\s*\[(.*)\]\s*,\s*\[(.*)\]\s*\]\s*$")


def from_naslib(compact: str | Sequence, ops_: Sequence[str] = NB301_OPS) -> np.ndarray:
    """NASLib's compact NAS-Bench-301 form `[[(0,5),(1,3),...],[...]]` -> int32[32].

    Each cell lists 8 `(input, op)` pairs node by node, `op` indexing `NB301_OPS`;
    `ops_` is the op list of the target space (it must contain the 7 NB301 ops).
    """
    where = f"NASLib compact genotype {_short(compact)}"
    if isinstance(compact, str):
        if _COMPACT.match(compact) is None:
            raise errors.ArchitectureError(f"malformed {where}: expected [[(in,op),...],[...]]")
        try:
            compact = ast.literal_eval(compact.strip())
        except (ValueError, SyntaxError):
            raise errors.ArchitectureError(f"malformed {where}") from None
    if not isinstance(compact, list | tuple) or len(compact) != 2:
        raise errors.ArchitectureError(f"malformed {where}: expected two cells")
    missing = [op for op in NB301_OPS if op not in ops_]
    if missing:
        raise errors.ConfigError(f"the target space lacks the NB301 ops {missing}")
    notation = Notation("darts", tuple(ops_), 4, "all")
    edges = []
    for c, cell in enumerate(compact):
        pairs = list(cell) if isinstance(cell, list | tuple) else []
        if len(pairs) != 8 or not all(
            isinstance(p, list | tuple) and len(p) == 2 and all(isinstance(v, int) for v in p)
            for p in pairs
        ):
            raise errors.ArchitectureError(f"malformed {where}: cell {c} needs 8 (input, op) pairs")
        for i, o in pairs:
            if not 0 <= o < len(NB301_OPS):
                raise errors.ArchitectureError(
                    f"unknown op index {o} in {where}; NASLib's ops are {NB301_OPS}"
                )
            edges.append((NB301_OPS[o], i))
    cells = [edges[:8], edges[8:]]
    return np.asarray(
        _parse_cell(notation, cells[0], where, "normal")
        + _parse_cell(notation, cells[1], where, "reduce"),
        np.int32,
    )


def to_naslib(genotype, ops_: Sequence[str] = NB301_OPS) -> str:
    """int32[32] -> NASLib's compact string `[[(0,5),(1,3),...],[...]]` (no spaces)."""
    g = np.asarray(genotype).reshape(2, 8, 2)
    cells = []
    for cell in g:
        pairs = []
        for i, o in cell:
            name = ops_[int(o)]
            if name not in NB301_OPS:
                raise errors.ArchitectureError(f"op {name!r} has no NASLib compact index")
            pairs.append(f"({int(i)},{NB301_OPS.index(name)})")
        cells.append("[" + ",".join(pairs) + "]")
    return "[" + ",".join(cells) + "]"


# --------------------------------------------------------------------------- space


def space(
    channels: int = 32,
    num_cells: int = 8,
    num_classes: int = 10,
    cell_ops: Sequence[str] = NB301_OPS,
    num_nodes: int = 4,
    concat: str = "all",
    reductions: Sequence[int] | None = None,
    stem: str = "cifar",
    auxiliary: bool = False,
    affine_ops: bool = False,
    pool_bn: bool = True,
    in_channels: int = 3,
    batch_norm: bool = True,
    scan_edges: bool = True,
    name: str = "darts",
) -> base.SearchSpace:
    """A DARTS-style cell space; the arguments are the defaults of `network`/`materialize`.

    The defaults are NAS-Bench-301 as NASLib built it for NAS-Bench-Suite-Zero (7 ops,
    C=32, 8 cells, 10 classes, no auxiliary head, parameter-free BN in cell ops and after
    pooling; see the module docstring). `space(channels=36, num_cells=20, auxiliary=True,
    affine_ops=True, pool_bn=False)` is the DARTS paper's CIFAR-10 evaluation network, and
    `cell_ops=DARTS_OPS` adds `none` (SWAP's DARTS cells). `cell_ops`, `num_nodes` and
    `concat` fix the genotype layout; the other settings can be overridden per network,
    e.g. `network(g, batch_norm=False)` (every BN the identity, for synflow).
    `scan_edges` is a data-driven network setting: each cell's edges under one `lax.scan`
    (see the module docstring); `network(g, scan_edges=False)` unrolls them.

    Raises:
      ConfigError: unknown ops, concatenation rule, stem or reduction positions.
    """
    ops_ = _check_ops(cell_ops)
    if concat not in CONCATS:
        raise errors.ConfigError(f"unknown concat {concat!r}; expected one of {CONCATS}")
    if num_nodes < 1:
        raise errors.ConfigError(f"a cell needs at least one node, got num_nodes={num_nodes}")
    notation = Notation(name, ops_, num_nodes, concat)
    defaults = dict(
        channels=channels,
        num_cells=num_cells,
        num_classes=num_classes,
        reductions=reductions,
        stem=stem,
        auxiliary=auxiliary,
        affine_ops=affine_ops,
        pool_bn=pool_bn,
        in_channels=in_channels,
        batch_norm=batch_norm,
    )
    num_choices = notation.num_choices()

    def settle(s):
        if s["stem"] not in STEMS:
            raise errors.ConfigError(f"unknown stem {s['stem']!r}; expected one of {STEMS}")
        if s["stem"] == "imagenet" and s["channels"] % 2:
            # Its stem halves C, and the first cell factorised-reduces to C (two halves).
            raise errors.ConfigError(f"the imagenet stem needs even channels, got {s['channels']}")
        s["reductions"] = _reductions(s["num_cells"], s["reductions"])
        if s["auxiliary"] and not s["reductions"]:
            raise errors.ConfigError("the auxiliary head follows the last reduction cell; none")
        return dict(s, ops=ops_, num_nodes=num_nodes, concat=concat)

    def network(genotype, settings):
        module = CellNetwork(**settings, track_running_stats=False)
        fields = _macro_fields(module)
        return supernet.network(
            module,
            genotype,
            lambda params: {"params": _map_leaves(params["params"], genotype, fields, False)},
        )

    def materialize(genotype, settings):
        return CellModel(**settings, track_running_stats=True, genotype=genotype)

    return base.build(
        name,
        num_choices,
        defaults,
        network,
        materialize,
        lambda genotype: to_string(notation, genotype),
        lambda arch: from_string(notation, arch),
        settle=settle,
        network_defaults={"scan_edges": scan_edges},
        restrict=lambda model, params: model.params_from_supernet(params),
    )
