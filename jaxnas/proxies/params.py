"""params: the number of parameters of the architecture, in millions.

A baseline of NAS-Bench-Suite-Zero (NASLib `get_model_stats(...).parameters / 1e6`,
through tensorwatch, which counts the parameters of every module that runs in a
forward pass). That is every trainable tensor of the architecture: conv weights,
BatchNorm gamma and beta, linear weights and biases; not BatchNorm running statistics.
Here: the leaves of the `"params"` collection (all leaves if there is none), each
counted where `Network.param_mask` marks it as part of the architecture, so the
unselected ops of a data-driven network never count. The count does not depend on the
input size or the batch.
"""

import jax
import jax.numpy as jnp

from jaxnas import types


def count_parameters(network, params: types.Params) -> jax.Array:
    """Parameters of the architecture (a float count, exact below 2**24 per leaf): f32[]."""
    mask = network.param_mask(params) if network.param_mask is not None else None
    trainable = params["params"] if isinstance(params, dict) and "params" in params else params
    if mask is None:
        return jnp.asarray(sum(v.size for v in jax.tree.leaves(trainable)), jnp.float32)
    arch = mask["params"] if trainable is not params else mask
    counts = jax.tree.map(
        lambda v, m: jnp.sum(jnp.broadcast_to(jnp.asarray(m, jnp.float32), v.shape)),
        trainable,
        arch,
    )
    return jnp.sum(jnp.stack(jax.tree.leaves(counts)))


def params() -> types.ProxyFn:
    """Returns the params proxy: millions of parameters (higher is better)."""

    def params_fn(network, variables, batch, key):
        del batch, key
        return count_parameters(network, variables) / 1e6

    return params_fn
