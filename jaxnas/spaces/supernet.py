"""The `Network` of a data-driven Linen module: one parameter tree for a whole space."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.network import Network, from_linen
from jaxnas.spaces.init_rules import rescale_fan_in, torch_init


@functools.lru_cache(maxsize=128)
def _param_shapes(module: nn.Module, x: jax.ShapeDtypeStruct, genotype: jax.ShapeDtypeStruct):
    return jax.eval_shape(module.init, jax.random.key(0), x, genotype)


def network(
    module: nn.Module,
    genotype: jax.Array,
    param_mask=None,
    init_fn=torch_init,
    rescale_fn=rescale_fan_in,
    stacks=None,
) -> Network:
    """The `Network` of a data-driven Linen module called as `module(x, genotype)`.

    Its parameters (`{"params": ...}`) do not depend on the genotype's value, and `init`
    uses `init_fn(key, shapes)` (default `torch_init`; a space whose reference code
    initialises differently passes its own one-RNG-call initialiser), so one
    initialisation serves a whole population. `param_mask` is passed through to the
    `Network`; with it, `rescale_fn(params, param_mask(params))` (default
    `rescale_fan_in`, the companion of `torch_init`; None for an initialisation whose
    scale does not depend on layer widths) becomes the network's `rescale_init`. A
    module that scans its repeated cells passes their `stacks` (`jaxnas.spaces.stacking`):
    its parameters are then drawn and seen per cell, as if each cell were its own module.
    """
    genotype = jnp.asarray(genotype)
    linen = from_linen(module, genotype, mutable=(), stacks=stacks)

    def init(key, x):
        shapes = _param_shapes(
            module,
            jax.ShapeDtypeStruct(x.shape, x.dtype),
            jax.ShapeDtypeStruct(genotype.shape, genotype.dtype),
        )
        if stacks is not None:
            shapes = stacks.unstack(shapes)
        return {"params": init_fn(key, shapes["params"])}

    rescale_init = None
    if param_mask is not None and rescale_fn is not None:

        def rescale_init(params):
            return rescale_fn(params, param_mask(params))

    return Network(init, linen.apply, param_mask, rescale_init)
