"""Repeated cells applied with `nn.scan`, seen from outside as one module per cell.

A data-driven network that applies its N identical cells in a Python loop traces and
compiles N copies of the cell (each a `lax.switch` over every op of every edge), so its
program, its trace time and XLA's compile time grow with depth. Under `nn.scan` over
stacked cell parameters the program holds each distinct cell shape once.

The stacked layout stays inside the module: `scan_cells` applies a cell module, and
`Stacks` converts every variable collection between the stacked layout the module uses
(`{"stage0_cells": leaves f32[N, ...]}`) and the per-cell layout the rest of jaxnas sees
(`{"stage0_cell0": ..., "stage0_cell1": ...}`, the materialised network's names). So
parameter masks, `base.restrict_params`, initialisation draws, gates, taps and probes keep
the names and values they had when each cell was its own module.
"""

from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def scan_cells(cell: nn.Module, length: int, x: jax.Array, *args):
    """Applies the Linen module `cell` `length` times; returns `(x, ys)`.

    `cell(x, *args)` returns the next x, or `(x, y)` with per-cell outputs y (stacked into
    ys on a leading axis of size `length`; None otherwise). Every variable collection of
    `cell` (parameters, gates, sown taps and probes) is stacked the same way; `args` are
    the same for every cell.
    """

    def scanned_cell_step(module, h, *a):
        out = module(h, *a)
        return out if isinstance(out, tuple) else (out, None)

    scan = nn.scan(
        scanned_cell_step,
        variable_axes={True: 0},
        split_rngs={"params": True},
        in_axes=nn.broadcast,
        length=length,
    )
    return scan(cell, x, *args)


# The method name a Flax interceptor sees for a scanned cell (`blocks` refuses those).
SCAN_STEP = "scanned_cell_step"


def _take(leaf, i: int):
    if isinstance(leaf, jax.ShapeDtypeStruct):
        return jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype)
    return leaf[i]


def _stack(leaves):
    first = leaves[0]
    if isinstance(first, jax.ShapeDtypeStruct):
        return jax.ShapeDtypeStruct((len(leaves), *first.shape), first.dtype)
    return jnp.stack(leaves)


class Stacks:
    """The scanned modules of a network: stacked name -> the names of its cells in order.

    `sown` names values that the network sows itself, stacked per cell, beside the
    scanned modules (a module's own name cannot be reused for them); they are unstacked
    into the same per-cell names. Only the top level of each variable collection is
    renamed (the scanned modules are direct children of the network's root module).
    `children` names, per scanned module, its cell's direct submodules in the order the
    cell calls them, which `nn.scan` loses (its outputs come back with sorted keys);
    deeper levels stay sorted.
    """

    def __init__(
        self,
        cells: Mapping[str, Sequence[str]],
        sown: Mapping[str, Sequence[str]] | None = None,
        children: Mapping[str, Sequence[str]] | None = None,
    ):
        self.cells = {name: tuple(names) for name, names in cells.items()}
        self.sown = {name: tuple(names) for name, names in (sown or {}).items()}
        self.children = {name: tuple(names) for name, names in (children or {}).items()}

    def unstack(self, variables: Mapping, keep_order: bool = False) -> dict:
        """`{collection: tree}` in the stacked layout -> the per-cell layout.

        Leaves may be arrays (axis 0 is the cell), `jax.ShapeDtypeStruct`s or any pytree
        of them (sown `Tap`s, probes); keys come out sorted, as `jax.eval_shape` gives them
        (the order parameters are drawn in), or with `keep_order` in the collections' own
        order, each stack's cells where the stack was and their direct submodules in
        `children` order (sown taps in forward order, which L-SWAG's depth bins read).
        """
        out = {}
        # A stacked array shared by several leaves (one node tapped by several edges)
        # gives one shared slice per cell: kernels that merge taps by identity rely on it.
        taken = {}

        def take(leaf, i):
            key = (id(leaf), i)
            if key not in taken:
                taken[key] = (leaf, _take(leaf, i))
            return taken[key][1]

        names = {**self.cells, **self.sown}
        for collection, tree in variables.items():
            flat = {}
            for name, sub in tree.items():
                if name in names:
                    for i, cell in enumerate(names[name]):
                        per_cell = jax.tree.map(lambda leaf, i=i: take(leaf, i), sub)
                        if keep_order and name in self.children:
                            first = [k for k in self.children[name] if k in per_cell]
                            per_cell = {k: per_cell[k] for k in [*first, *per_cell]}
                        flat[cell] = {**flat.get(cell, {}), **per_cell}
                else:
                    flat[name] = sub
            out[collection] = flat if keep_order else dict(sorted(flat.items()))
        return out

    def stack(self, variables: Mapping) -> dict:
        """The per-cell layout -> the stacked layout (inverse of `unstack`).

        A collection holds either every cell of a stack or none of them (gates are passed
        for all probed layers or for none).
        """
        out = {}
        for collection, tree in variables.items():
            flat = dict(tree)
            for name, cells in self.cells.items():
                present = [cell in flat for cell in cells]
                if not any(present):
                    continue
                if not all(present):
                    missing = [cell for cell, p in zip(cells, present) if not p]
                    raise ValueError(f"{collection}: cells {missing} of {name} are missing")
                flat[name] = jax.tree.map(lambda *leaves: _stack(leaves), *(flat[c] for c in cells))
                for cell in cells:
                    del flat[cell]
            out[collection] = flat
        return out
