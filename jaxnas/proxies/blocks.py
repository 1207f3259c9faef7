"""Outputs of a network's blocks (stem, cells, reduction blocks) and gradients between them.

AZ-NAS and MeCo read the feature map after every block of a network, and AZ-NAS
back-propagates from each block's output to its input. Both are read here without
touching the network definition: a Flax method interceptor (`nn.intercept_methods`)
records the output of every Linen module whose path matches a pattern (in call order)
and can add a zero perturbation to each block's input, whose gradient is the gradient
with respect to that input. The input is wrapped in `stop_gradient` first, so a single
backward pass gives, for every block separately, the gradient of its own output only
(no path through later blocks).

This works for any network built from Linen modules (every built-in space); networks
from `from_nnx` are not supported.
"""

import re
from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxnas import errors, types
from jaxnas.network import Network
from jaxnas.spaces import stacking

# The blocks of the NB201 macro network (`spaces/nb201.py`): the stem, every cell and
# every residual reduction block, in order (AZ-NAS's `extract_cell_features`).
NB201_BLOCKS = r"stem|stage\d+_cell\d+|reduction\d+"


def block_outputs(
    network: Network,
    params: types.Params,
    x: jax.Array,
    pattern: str = NB201_BLOCKS,
    *,
    perturbations: Sequence[jax.Array] | None = None,
    taps: bool = False,
):
    """Runs the network and returns `(logits, block outputs)` (or with taps).

    Args:
      network: a Linen-based network.
      params: its parameters.
      x: the input batch.
      pattern: a regular expression matched (in full) against the `/`-joined module
        path; every matching module's `__call__` is a block, outputs in call order.
      perturbations: None, or one array per block after the first, shaped like the
        previous block's output: block i's input becomes `stop_gradient(input) +
        perturbations[i - 1]` (values unchanged when the perturbations are zero).
      taps: also return the network's taps.

    Returns:
      `(logits, [f32[B, ...] per block])`, or `(logits, taps, blocks)` with `taps`.

    Raises:
      ConfigError: no module matched the pattern.
    """
    regex = re.compile(pattern)
    outputs = []

    def interceptor(next_fun, args, kwargs, context):
        if context.method_name == stacking.SCAN_STEP:
            raise errors.ConfigError(
                "block proxies read one module per cell, and this network scans its cells: "
                "build it with scan_cells=False (the block proxies' records ask for it)"
            )
        path = "/".join(context.module.path)
        if context.method_name != "__call__" or not regex.fullmatch(path):
            return next_fun(*args, **kwargs)
        if perturbations is not None and outputs:
            args = (jax.lax.stop_gradient(args[0]) + perturbations[len(outputs) - 1], *args[1:])
        out = next_fun(*args, **kwargs)
        outputs.append(out)
        return out

    with nn.intercept_methods(interceptor):
        result = network.apply(params, x, taps=taps)
    if not outputs:
        raise errors.ConfigError(f"no module of the network matches the block pattern {pattern!r}")
    if taps:
        return (*result, outputs)
    return result, outputs


def input_gradients(
    network: Network,
    params: types.Params,
    x: jax.Array,
    cotangents_fn,
    pattern: str = NB201_BLOCKS,
):
    """Block outputs and, for each block after the first, g_out^T d(output)/d(input).

    Args:
      network, params, x, pattern: as in `block_outputs`.
      cotangents_fn: `(outputs) -> [g_out per block after the first]`, each shaped like
        that block's output (AZ-NAS: Rademacher noise).

    Returns:
      `(logits, outputs, g_outs, g_ins)`: the network output, the block outputs (list of
      L), the cotangents (L - 1) and the gradients at each block's input (L - 1, shaped
      like the previous block's output).
    """
    shapes = jax.eval_shape(lambda: block_outputs(network, params, x, pattern)[1])
    zeros = [jax.numpy.zeros(s.shape, s.dtype) for s in shapes[:-1]]

    def run(perturbations):
        logits, outputs = block_outputs(network, params, x, pattern, perturbations=perturbations)
        return outputs, logits

    outputs, vjp, logits = jax.vjp(run, zeros, has_aux=True)
    g_outs = cotangents_fn(outputs)
    g_ins = vjp([jax.numpy.zeros_like(outputs[0]), *g_outs])[0]
    return logits, outputs, g_outs, g_ins
