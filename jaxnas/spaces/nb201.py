"""NAS-Bench-201 / NATS-Bench topology search space.

Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture
Search", ICLR 2020; Dong et al., "NATS-Bench", TPAMI 2021.

A cell is a DAG on 4 nodes; each of its 6 edges (i -> j, i < j) carries one of 5 ops, so
the space has 5**6 = 15,625 cells. A genotype is `int32[6]` over `EDGES` (the order of
the benchmark's architecture string) with op indices into `OPS`.

Macro network (NB201 `TinyNetwork`): 3x3 conv stem (C channels) + BN; three stages of
N cells at C, 2C, 4C channels separated by residual reduction blocks (ReLUConvBN 3x3
stride 2 -> ReLUConvBN 3x3, shortcut 2x2 average pool -> 1x1 conv); BN -> ReLU; global
average pool; linear classifier. Conv ops are ReLU -> Conv -> BN; average pooling does
not count padding; `none` multiplies by zero. BatchNorm uses batch statistics.

Dispatch modes of the data-driven network (see `network`):
  * "switch": every edge runs only its selected op through `lax.switch`; exact cost.
    Map over a population with `lax.map` (vmapping turns the switch into a select).
  * "mask": every edge runs all ops and sums them weighted by `f32[6, 5]` (a one-hot
    genotype, or any op weights for a supernet). Vectorises across a population.
"""

import re
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors, types
from jaxnas import network as net_lib
from jaxnas.network import sow_tap
from jaxnas.spaces import base, flop_rules, functional, op_layers, stacking, supernet

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (from, to), string order
NUM_NODES = 4
CONV_OPS = (OPS.index("nor_conv_1x1"), OPS.index("nor_conv_3x3"))
_CONV_KERNEL = {"nor_conv_1x1": (1, 0), "nor_conv_3x3": (3, 1)}  # name -> (size, padding)

# NASLib / NAS-Bench-Suite-Zero tuple notation: its own op indices and edge order.
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
NASLIB_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))

DISPATCH_MODES = ("switch", "mask")


# The ops without parameters; `none` is `x * 0.0`, not zeros_like (WORKSPACE_NOTES.md:
# XLA's constant folding of a zero flowing into pooling).
_APPLY = {
    "none": lambda h: h * 0.0,
    "skip_connect": lambda h: h,
    "avg_pool_3x3": functional.avg_pool_3x3,
}


def _relu_weight(choice: jax.Array, dispatch: str) -> jax.Array:
    """ReLUs that read an edge's input (its tap weight): 1 for a selected conv op under
    "switch", the number of conv ops with non-zero weight under "mask"."""
    if dispatch == "switch":
        return ((choice == CONV_OPS[0]) | (choice == CONV_OPS[1])).astype(jnp.float32)
    return sum((choice[o] != 0).astype(jnp.float32) for o in CONV_OPS)


class _MixedEdge(nn.Module):
    """One edge of the data-driven cell: all ops' parameters, one (or a mix) applied.

    Its tap (the edge input, read by the ReLU of a conv op) is sown here, or, with
    `sow_input=False` (scanned cells), by `NB201Network` from the nodes the scan returns,
    so that edges reading the same node still share one array and NASWOT's kernel
    computes it once (`kernels.hamming_kernel` merges taps by identity).

    When probes are requested (or gates passed) every conv op records its layer and
    BatchNorm statistics under its own name, with weight 0 when the op is not selected;
    under "switch" dispatch the branches then also return the BatchNorm variances
    (zeros from the branches that are not conv ops).
    """

    channels: int
    dispatch: str
    batch_norm: bool
    sow_input: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, choice: jax.Array) -> jax.Array:
        if self.sow_input:
            sow_tap(self, "relu_conv_bn", x, _relu_weight(choice, self.dispatch))
        c = self.channels
        modules = {
            name: op_layers.ConvBN(
                c, c, size, 1, pad, relu=True, batch_norm=self.batch_norm, name=name
            )
            for name, (size, pad) in _CONV_KERNEL.items()
        }
        conv = {name: m.weights() for name, m in modules.items()}
        gates = {name: m.gate() for name, m in modules.items()}
        probing = net_lib.probing(self, *gates.values())
        # Conv ops record their own FLOPs (`ConvBN.record`); pooling is counted here.
        pool = OPS.index("avg_pool_3x3")
        pool_flops = flop_rules.avg_pool_flops(x.shape, 3)

        def conv_op(name, h):
            _, pad = _CONV_KERNEL[name]
            return functional.conv_bn_parts(
                conv[name], h, 1, pad, self.batch_norm, True, gates[name]
            )

        def parts_of(name, h):
            """`(out, slots)`: slots hold the BatchNorm variance per conv op, zeros if unused."""
            empty = jnp.zeros((c,), h.dtype)
            if name not in _CONV_KERNEL:
                return _APPLY[name](h), (empty,) * len(_CONV_KERNEL)
            out, var = conv_op(name, h)
            return out, tuple(var if o == name else empty for o in _CONV_KERNEL)

        def record(slots, active):
            for (name, m), var in zip(modules.items(), slots):
                m.record(x.shape, x.shape, var, active[OPS.index(name)])

        if self.dispatch == "switch":
            if not probing:
                branches = tuple(
                    (lambda h, n=name: conv_op(n, h)[0]) if name in _CONV_KERNEL else _APPLY[name]
                    for name in OPS
                )
                out = functional.switch(choice, branches, x)
            else:
                branches = tuple(lambda h, n=name: parts_of(n, h) for name in OPS)
                out, slots = functional.switch(choice, branches, x)
                record(slots, [choice == o for o in range(len(OPS))])
            net_lib.sow_cost(self, "pool_flops", (choice == pool).astype(jnp.float32) * pool_flops)
            return out
        active = [choice[o] != 0 for o in range(len(OPS))]
        outs, slots = [], []
        for name in OPS:
            if name in _CONV_KERNEL:
                out, var = conv_op(name, x)
                slots.append(var)
            else:
                out = _APPLY[name](x)
            outs.append(out)
        if probing:
            record(slots, active)
        total = choice[0] * outs[0]
        for o in range(1, len(OPS)):
            total = total + choice[o] * outs[o]
        net_lib.sow_cost(self, "pool_flops", active[pool].astype(jnp.float32) * pool_flops)
        return total


class _FixedEdge(nn.Module):
    """One edge of a materialised cell: only the selected op exists."""

    channels: int
    op: int
    batch_norm: bool

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        name = OPS[self.op]
        if name == "avg_pool_3x3":
            net_lib.sow_cost(self, "pool_flops", flop_rules.avg_pool_flops(x.shape, 3))
        if name in _APPLY:
            return _APPLY[name](x)
        size, pad = _CONV_KERNEL[name]
        sow_tap(self, "relu_conv_bn", x)
        c = self.channels
        conv = op_layers.ConvBN(c, c, size, 1, pad, True, True, self.batch_norm, name=name)
        return conv(x, train)


def _cell(edge_fn, x: jax.Array) -> list[jax.Array]:
    """The cell's nodes: node 0 is x, node j = sum over i < j (in increasing i) of edge
    (i -> j) applied to node i; the last node is the cell's output."""
    nodes = [x]
    for j in range(1, NUM_NODES):
        terms = [edge_fn(e, nodes[i]) for e, (i, to) in enumerate(EDGES) if to == j]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        nodes.append(total)
    return nodes


class _MixedCell(nn.Module):
    """A data-driven cell: `x -> out`, or `(out, the nodes that feed edges)` with
    `return_nodes` (a scanned cell: the caller sows the taps)."""

    channels: int
    dispatch: str
    batch_norm: bool
    return_nodes: bool = False

    @nn.compact
    def __call__(self, x, choices):
        edges = [
            _MixedEdge(
                self.channels,
                self.dispatch,
                self.batch_norm,
                not self.return_nodes,
                name=f"edge_{e}",
            )
            for e in range(len(EDGES))
        ]
        nodes = _cell(lambda e, h: edges[e](h, choices[e]), x)
        return (nodes[-1], tuple(nodes[:-1])) if self.return_nodes else nodes[-1]


class _FixedCell(nn.Module):
    channels: int
    genotype: tuple[int, ...]
    batch_norm: bool

    @nn.compact
    def __call__(self, x, train):
        edges = [
            _FixedEdge(self.channels, op, self.batch_norm, name=f"edge_{e}")
            for e, op in enumerate(self.genotype)
        ]
        return _cell(lambda e, h: edges[e](h, train), x)[-1]


class ReductionBlock(nn.Module):
    """NB201's residual reduction block (`ResNetBasicblock`, stride 2)."""

    in_features: int
    features: int
    track_running_stats: bool = False
    batch_norm: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        track, bn = self.track_running_stats, self.batch_norm
        sow_tap(self, "conv_a_relu_conv_bn", x)
        a = op_layers.ConvBN(
            self.in_features, self.features, 3, 2, 1, True, track, bn, name="conv_a"
        )
        a = a(x, train)
        sow_tap(self, "conv_b_relu_conv_bn", a)
        b = op_layers.ConvBN(self.features, self.features, 3, 1, 1, True, track, bn, name="conv_b")
        b = b(a, train)
        pooled = functional.avg_pool_2x2(x)
        net_lib.sow_cost(self, "pool_flops", flop_rules.avg_pool_flops(pooled.shape, 2))
        shortcut = op_layers.Conv(self.in_features, self.features, 1, name="downsample")
        return shortcut(pooled) + b


class _Macro(nn.Module):
    """The NB201 macro skeleton around a cell; shared by both network kinds."""

    channels: int
    cells_per_stage: int
    num_stages: int
    num_classes: int
    stem: bool
    in_channels: int
    track_running_stats: bool
    batch_norm: bool

    def body(self, x, stage_fn, train):
        """The macro network around `stage_fn(channels, stage, x)`, which applies one
        stage's `cells_per_stage` cells."""
        factor = 2 ** (self.num_stages - 1)
        base.check_images(x, "NB201", self.in_channels, factor, f" ({self.num_stages} stages)")
        track, bn = self.track_running_stats, self.batch_norm
        if self.stem:
            stem = op_layers.ConvBN(
                self.in_channels, self.channels, 3, 1, 1, False, track, bn, name="stem"
            )
            x = stem(x, train)
        elif self.in_channels != self.channels:
            raise errors.ShapeError(
                f"NB201 without a stem needs in_channels == channels, got "
                f"{self.in_channels} and {self.channels}"
            )
        c_prev = self.channels
        for s in range(self.num_stages):
            c = self.channels * 2**s
            if s > 0:
                x = ReductionBlock(c_prev, c, track, bn, name=f"reduction{s}")(x, train)
            x = stage_fn(c, s, x)
            c_prev = c
        x = op_layers.BatchNorm(c_prev, track, bn, name="lastact")(x, train)
        sow_tap(self, "lastact_relu", x)
        net_lib.sow_cost(self, "lastact_relu_flops", flop_rules.relu_flops(x.shape))
        x = op_layers.global_pool_features(self, jax.nn.relu(x))
        return op_layers.Dense(self.num_classes, name="classifier")(x)


class NB201Network(_Macro):
    """The data-driven NB201 network: the architecture is the call argument `genotype`.

    Call as `module(x, genotype)` with x f32[B, H, W, C] and genotype int32[6]
    (either dispatch) or op weights f32[6, 5] ("mask" only). Returns f32[B, classes].
    With `scan`, each stage's cells run under `nn.scan` as the module `stage{s}_cells`
    with stacked variables (`stacks(num_stages, cells_per_stage)` maps them to the
    per-cell names `stage{s}_cell{i}`), so the traced program holds one cell per stage.
    """

    dispatch: str = "switch"
    scan: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, genotype: jax.Array) -> jax.Array:
        choices = _edge_choices(genotype, self.dispatch)

        taps = self.is_mutable_collection(net_lib.TAPS)
        n = self.cells_per_stage

        def stage(c, s, h):
            if not self.scan:
                for i in range(n):
                    cell = _MixedCell(c, self.dispatch, self.batch_norm, name=f"stage{s}_cell{i}")
                    h = cell(h, choices)
                return h
            if not n:
                return h
            cell = _MixedCell(c, self.dispatch, self.batch_norm, taps, name=_stack_name(s))
            h, nodes = stacking.scan_cells(cell, n, h, choices)
            if taps:
                # Stacked like the cells' own variables; `stacks` unstacks them per cell.
                edge_taps = {
                    f"edge_{e}": {
                        "relu_conv_bn": types.Tap(
                            nodes[i], jnp.full((n,), _relu_weight(choices[e], self.dispatch))
                        )
                    }
                    for e, (i, _) in enumerate(EDGES)
                }
                self.sow(
                    net_lib.TAPS,
                    _taps_name(s),
                    edge_taps,
                    init_fn=lambda: None,
                    reduce_fn=lambda _, new: new,
                )
            return h

        return self.body(x, stage, True)


def _stack_name(stage: int) -> str:
    return f"stage{stage}_cells"


def _taps_name(stage: int) -> str:
    return f"stage{stage}_taps"


def stacks(num_stages: int, cells_per_stage: int) -> stacking.Stacks:
    """The scanned cell modules of `NB201Network` and the per-cell names they map to."""
    cells = [[f"stage{s}_cell{i}" for i in range(cells_per_stage)] for s in range(num_stages)]
    return stacking.Stacks(
        {_stack_name(s): names for s, names in enumerate(cells)},
        sown={_taps_name(s): names for s, names in enumerate(cells)},
    )


class NB201Model(_Macro):
    """A materialised NB201 network for one fixed genotype; call as `module(x, train)`."""

    genotype: tuple[int, ...] = ()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        def stage(c, s, h):
            for i in range(self.cells_per_stage):
                h = _FixedCell(c, self.genotype, self.batch_norm, name=f"stage{s}_cell{i}")(
                    h, train
                )
            return h

        return self.body(x, stage, train)


def param_mask(params, genotype: jax.Array, dispatch: str):
    """Which parameters of the data-driven network belong to `genotype` (f32 scalars).

    The parameters of a conv op on edge e count iff that op is selected (its weight is
    non-zero under "mask" dispatch); everything outside the cells always counts.
    """
    choices = _edge_choices(genotype, dispatch)

    def leaf_mask(path, leaf):
        names = [getattr(k, "key", str(k)) for k in path]
        for depth, name in enumerate(names[:-1]):
            if name.startswith("edge_") and names[depth + 1] in _CONV_KERNEL:
                e, o = int(name[len("edge_") :]), OPS.index(names[depth + 1])
                if dispatch == "mask":
                    return (choices[e, o] != 0).astype(jnp.float32)
                return (choices[e] == o).astype(jnp.float32)
        return jnp.ones((), jnp.float32)

    return jax.tree_util.tree_map_with_path(leaf_mask, params)


def _edge_choices(genotype: jax.Array, dispatch: str) -> jax.Array:
    """Per-edge op indices int32[6] ("switch"), or op weights f32[6, 5] ("mask")."""
    genotype = jnp.asarray(genotype)
    if dispatch == "mask" and jnp.issubdtype(genotype.dtype, jnp.integer):
        return jax.nn.one_hot(genotype, len(OPS), dtype=jnp.float32)
    return genotype


def _check_genotype(genotype, settings: dict) -> jax.Array:
    """An integer genotype int32[6], or with dispatch "mask" op weights f32[6, 5]."""
    genotype = jnp.asarray(genotype)
    if jnp.issubdtype(genotype.dtype, jnp.integer):
        return base.check_genotype(genotype, "nb201", len(EDGES))
    if settings["dispatch"] == "switch" or genotype.shape != (len(EDGES), len(OPS)):
        raise errors.ArchitectureError(
            f"NB201 op weights must be f32[{len(EDGES)}, {len(OPS)}] with dispatch='mask', "
            f"got {genotype.dtype}{list(genotype.shape)} with dispatch={settings['dispatch']!r}"
        )
    return genotype


def _check_settings(settings: dict) -> dict:
    if settings.get("dispatch", "switch") not in DISPATCH_MODES:
        raise errors.ConfigError(
            f"unknown NB201 dispatch {settings['dispatch']!r}; expected one of {DISPATCH_MODES}"
        )
    return settings


# ------------------------------------------------------------------------ notation


def to_string(genotype: Sequence[int]) -> str:
    """int32[6] -> `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`."""
    g = [int(v) for v in np.asarray(genotype).reshape(-1)]
    groups = []
    for j in range(1, NUM_NODES):
        entries = [f"{OPS[g[e]]}~{i}" for e, (i, to) in enumerate(EDGES) if to == j]
        groups.append("|" + "|".join(entries) + "|")
    return "+".join(groups)


_ENTRY = re.compile(r"^([A-Za-z0-9_]+)~(\d+)$")


def from_string(arch: str) -> np.ndarray:
    """Parses an NB201 architecture string into int32[6]; raises ArchitectureError."""
    if not isinstance(arch, str):
        raise errors.ArchitectureError(f"NB201 architecture must be a string, got {arch!r}")
    groups = arch.strip().split("+")
    if len(groups) != NUM_NODES - 1:
        raise errors.ArchitectureError(
            f"malformed NB201 string {arch!r}: expected {NUM_NODES - 1} node groups "
            f"separated by '+', got {len(groups)}"
        )
    genotype = np.zeros(len(EDGES), np.int32)
    for j, group in enumerate(groups, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            raise errors.ArchitectureError(
                f"malformed NB201 string {arch!r}: node group {group!r} must look like '|op~0|...|'"
            )
        entries = group[1:-1].split("|")
        if len(entries) != j:
            raise errors.ArchitectureError(
                f"malformed NB201 string {arch!r}: node {j} needs {j} inputs, got "
                f"{len(entries)} in {group!r}"
            )
        for i, entry in enumerate(entries):
            m = _ENTRY.match(entry)
            if m is None:
                raise errors.ArchitectureError(
                    f"malformed NB201 string {arch!r}: entry {entry!r} is not 'op~k'"
                )
            op, src = m.group(1), int(m.group(2))
            if op not in OPS:
                raise errors.ArchitectureError(
                    f"unknown op {op!r} in NB201 string {arch!r}; expected one of {OPS}"
                )
            if src != i:
                raise errors.ArchitectureError(
                    f"malformed NB201 string {arch!r}: entry {entry!r} of node {j} must "
                    f"come from node {i}"
                )
            genotype[EDGES.index((i, j))] = OPS.index(op)
    return genotype


def from_naslib(ops_tuple: Sequence[int] | str) -> np.ndarray:
    """NASLib / Suite-Zero tuple (e.g. `(4,3,3,0,0,0)`) -> int32[6]."""
    if isinstance(ops_tuple, str):
        try:
            ops_tuple = [int(v) for v in ops_tuple.strip().strip("()").split(",")]
        except ValueError as exc:
            raise errors.ArchitectureError(f"malformed NASLib NB201 tuple {ops_tuple!r}") from exc
    values = list(ops_tuple)
    if len(values) != len(EDGES) or any(not 0 <= v < len(OPS) for v in values):
        raise errors.ArchitectureError(f"malformed NASLib NB201 tuple {tuple(values)}")
    genotype = np.zeros(len(EDGES), np.int32)
    for pos, edge in enumerate(NASLIB_EDGES):
        genotype[EDGES.index(edge)] = OPS.index(NASLIB_OPS[values[pos]])
    return genotype


def to_naslib(genotype: Sequence[int]) -> tuple[int, ...]:
    g = np.asarray(genotype).reshape(-1)
    return tuple(NASLIB_OPS.index(OPS[g[EDGES.index(edge)]]) for edge in NASLIB_EDGES)


# --------------------------------------------------------------------------- space


def space(
    channels: int = 16,
    cells_per_stage: int = 5,
    num_classes: int = 10,
    dispatch: str = "switch",
    stem: bool = True,
    num_stages: int = 3,
    in_channels: int = 3,
    batch_norm: bool = True,
    scan_cells: bool = True,
) -> base.SearchSpace:
    """The NB201 space; the arguments are the defaults of `network`/`materialize`.

    `scan_cells` runs the data-driven network's cells of each stage under `nn.scan`:
    the traced program holds one cell per stage, whatever `cells_per_stage` is. On a
    quiet 2-core CPU that traced 2.4x (NASWOT) and 3.3x (snip) faster, compiled 1.4x
    and 1.6x faster and ran no slower (WORKSPACE_NOTES.md "Performance (issue 14)"),
    hence the default; parameters, taps, probes and scores are the same either way.
    `network(g, scan_cells=False)` unrolls them (the block proxies need one module per
    cell).

    Defaults are the benchmark's network (C=16, N=5, 10 classes). `network(g,
    channels=3, cells_per_stage=1)` is TE-NAS's NTK proxy network, `network(g,
    channels=1, cells_per_stage=1, stem=False, in_channels=1)` its thin network, and
    `network(g, batch_norm=False)` the BN-free network synflow scores.
    """
    defaults = dict(
        channels=channels,
        cells_per_stage=cells_per_stage,
        num_classes=num_classes,
        stem=stem,
        num_stages=num_stages,
        in_channels=in_channels,
        batch_norm=batch_norm,
    )
    num_choices = (len(OPS),) * len(EDGES)

    def network(genotype, settings):
        settings = dict(settings)
        scan = settings.pop(base.SCAN_CELLS)
        module = NB201Network(**settings, scan=scan, track_running_stats=False)
        mode = settings["dispatch"]
        cells = stacks(settings["num_stages"], settings["cells_per_stage"])
        return supernet.network(
            module,
            genotype,
            lambda params: param_mask(params, genotype, mode),
            stacks=cells if scan else None,
        )

    def materialize(genotype, settings):
        return NB201Model(**settings, track_running_stats=True, genotype=genotype)

    return base.build(
        "nb201",
        num_choices,
        defaults,
        network,
        materialize,
        to_string,
        from_string,
        network_defaults={"dispatch": dispatch, base.SCAN_CELLS: scan_cells},
        settle=_check_settings,
        check_network_genotype=_check_genotype,
    )
