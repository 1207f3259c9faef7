"""Outputs of a network's blocks (stem, cells, reduction blocks) and gradients between them.

AZ-NAS and MeCo read the feature map after every block of a network, and AZ-NAS
back-propagates from each block's output to its input. Both are read here without
touching the network definition: a Flax method interceptor (`nn.intercept_methods`)
records the output of every Linen module whose path matches a pattern (in call order)
and can add a zero perturbation to each block's input, whose gradient is the gradient
with respect to that input. The input is wrapped in `stop_gradient` first, so a single
backward pass gives, for every block separately, the gradient of its own output only
(no path through later blocks). A tensor passed to a block twice (a DARTS cell after the
CIFAR stem reads the stem's output as both of its inputs) is one input, perturbed once:
its gradient is the sum over both uses, the gradient with respect to that tensor.

The input of a block is what its module is called with, so an operation applied between
two block modules would be in neither block; the built-in networks apply none (NB101's
stem module ends in its ReLU and each stack's first cell opens with its max-pool), so
every block maps the previous block's output to its own, AZ-NAS's "from block l to
block l - 1".

This works for any network built from Linen modules (every built-in space); networks
from `from_nnx` are not supported.
"""

import re
from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax

from jaxnas import errors, types
from jaxnas.network import Network
from jaxnas.spaces import masking, stacking

# The blocks of each built-in macro network, in call order (AZ-NAS's
# `extract_cell_features` reads NB201's; the others follow the same rule: the stem, every
# cell and every module between cells):
#   NB201: stem, stage{s}_cell{i}, reduction{s} (the residual reduction blocks);
#   NB101: stem, stack{s}_cell{i} (the first cell of a stack after the first max-pools);
#   DARTS / NB301 and the NDS cell spaces: stem (CIFAR) or stem1 (ImageNet), cell{i}.
SPACE_BLOCKS = {
    "nb201": r"stem|stage\d+_cell\d+|reduction\d+",
    "nb101": r"stem|stack\d+_cell\d+",
    "darts": r"stem|stem1|cell\d+",
}
# Their union: no module path of one of these networks matches another's pattern.
BLOCKS = "|".join(dict.fromkeys("|".join(SPACE_BLOCKS.values()).split("|")))


class Block(NamedTuple):
    """One block's output, its inputs, and what a data-driven network masks in them.

    `inputs` are the block's distinct feature-map arguments (f32[B, H, W, C] positional
    arguments; one array passed twice counts once): one for NB201 and NB101 blocks, two
    for DARTS cells (the outputs of the two blocks before; one after the CIFAR stem).
    `mask` (f32[C], 0/1) marks the valid channels of a data-driven cell's output (DARTS
    loose-end concatenation; None: all); `input_masks` holds, per input, the mask of the
    earlier block whose output it is (None: all channels valid).
    """

    output: jax.Array
    mask: jax.Array | None
    inputs: tuple[jax.Array, ...]
    input_masks: tuple[jax.Array | None, ...]


def _is_feature_map(value) -> bool:
    return isinstance(value, jax.Array) and value.ndim == 4


def _mask_of(value, blocks) -> jax.Array | None:
    for block in reversed(blocks):
        if value is block.output:
            return block.mask
    return None


def block_outputs(
    network: Network,
    params: types.Params,
    x: jax.Array,
    pattern: str = BLOCKS,
    *,
    perturbations: Sequence[Sequence[jax.Array]] | None = None,
    taps: bool = False,
):
    """Runs the network and returns `(logits, blocks)` (or with taps).

    Args:
      network: a Linen-based network.
      params: its parameters.
      x: the input batch.
      pattern: a regular expression matched (in full) against the `/`-joined module
        path; every matching module's `__call__` is a block, in call order. A module
        returning a tuple is a masked cell: `(output, channel mask)`.
      perturbations: None, or per block after the first a sequence of arrays shaped
        like that block's inputs (`Block.inputs`): block i's input j becomes
        `stop_gradient(input) + perturbations[i - 1][j]` (values unchanged when the
        perturbations are zero), so the gradient at a perturbation sees block i alone.
      taps: also return the network's taps.

    Returns:
      `(logits, [Block per block])`, or `(logits, taps, blocks)` with `taps`.

    Raises:
      ConfigError: no module matches the pattern, or the network is one whose blocks
        are not modules (a module class that sets `NO_BLOCKS`, the reason: the
        data-driven NATS-SSS network).
    """
    regex = re.compile(pattern)
    blocks = []

    def interceptor(next_fun, args, kwargs, context):
        refusal = getattr(type(context.module), "NO_BLOCKS", None)
        if refusal:
            raise errors.ConfigError(f"block proxies cannot read {refusal}")
        if context.method_name == stacking.SCAN_STEP:
            raise errors.ConfigError(
                "block proxies read one module per cell, and this network scans its cells: "
                "build it with scan_cells=False (the block proxies' records ask for it)"
            )
        path = "/".join(context.module.path)
        if context.method_name != "__call__" or not regex.fullmatch(path):
            return next_fun(*args, **kwargs)
        args = list(args)
        distinct = {}  # id -> the positions of one array among the arguments
        for i, a in enumerate(args):
            if _is_feature_map(a):
                distinct.setdefault(id(a), []).append(i)
        groups = list(distinct.values())
        input_masks = tuple(_mask_of(args[group[0]], blocks) for group in groups)
        if perturbations is not None and blocks:
            for group, p in zip(groups, perturbations[len(blocks) - 1], strict=True):
                perturbed = jax.lax.stop_gradient(args[group[0]]) + p
                for i in group:
                    args[i] = perturbed
        out = next_fun(*args, **kwargs)
        value, mask = out if isinstance(out, tuple) else (out, None)
        inputs = tuple(args[group[0]] for group in groups)
        blocks.append(Block(value, mask, inputs, input_masks))
        return out

    with nn.intercept_methods(interceptor):
        result = network.apply(params, x, taps=taps)
    if not blocks:
        _refuse("no module", pattern, "at least one block")
    if taps:
        return (*result, blocks)
    return result, blocks


def _refuse(found: str, pattern: str, need: str):
    raise errors.ConfigError(
        f"block proxies need {need}, and the block pattern {pattern!r} matches {found} "
        "of this network: pass blocks_pattern naming its blocks (see blocks.SPACE_BLOCKS)"
    )


def _masked(value: jax.Array, mask: jax.Array | None) -> jax.Array:
    if mask is None:
        return value
    return value * masking.channels_last(mask, value.ndim)


def input_gradients(
    network: Network,
    params: types.Params,
    x: jax.Array,
    cotangents_fn,
    pattern: str = BLOCKS,
):
    """Block outputs and, for each block after the first, g_out^T d(output)/d(inputs).

    Masked channels (`Block.mask`, `Block.input_masks`) get zero cotangents and zero
    input gradients, so a data-driven network gives its materialised network's values.

    Args:
      network, params, x, pattern: as in `block_outputs`.
      cotangents_fn: `(outputs) -> [g_out per block after the first]`, each shaped like
        that block's output (AZ-NAS: Rademacher noise).

    Returns:
      `(logits, outputs, g_outs, g_ins)`: the network output, the block outputs (list of
      L), the cotangents (L - 1) and, per block after the first, a tuple of the
      gradients at its inputs (shaped like `Block.inputs`).

    Raises:
      ConfigError: fewer than two modules match the pattern.
    """
    cells = jax.eval_shape(lambda: block_outputs(network, params, x, pattern)[1])
    if len(cells) < 2:
        _refuse(f"{len(cells)} module", pattern, "at least two blocks")
    zeros = [tuple(jax.numpy.zeros(i.shape, i.dtype) for i in c.inputs) for c in cells[1:]]

    def run(perturbations):
        logits, blocks = block_outputs(network, params, x, pattern, perturbations=perturbations)
        return [b.output for b in blocks], (logits, blocks)

    outputs, vjp, (logits, blocks) = jax.vjp(run, zeros, has_aux=True)
    g_outs = [_masked(g, b.mask) for g, b in zip(cotangents_fn(outputs), blocks[1:])]
    g_ins = vjp([jax.numpy.zeros_like(outputs[0]), *g_outs])[0]
    g_ins = [
        tuple(_masked(g, m) for g, m in zip(gs, b.input_masks)) for gs, b in zip(g_ins, blocks[1:])
    ]
    return logits, outputs, g_outs, g_ins
