"""snip: connection sensitivity |theta * dL/dtheta| summed over the weights.

Lee, Ajanthan, Torr, "SNIP: Single-shot Network Pruning based on Connection
Sensitivity", ICLR 2019, as a zero-cost proxy in Abdelfattah et al., ICLR 2021
(zero-cost-nas `measures/snip.py`, which differentiates a weight mask of ones: the same
|theta * g|). Conv / linear weights of the architecture, mean cross-entropy of one
batch, BatchNorm in train mode.
"""

import jax.numpy as jnp

from jaxnas import types
from jaxnas.proxies import base, layerwise


def snip() -> types.ProxyFn:
    """Returns the snip proxy (higher is better; NaN if not finite)."""

    def snip_fn(network, params, batch, key):
        del key
        grads = layerwise.loss_gradients(network, params, batch)
        mask = layerwise.weight_mask(network, params)
        score = layerwise.layer_sum(lambda w, g: jnp.sum(jnp.abs(w * g)), mask, params, grads)
        return layerwise.finite_or_nan(score)

    return base.with_shared_requests(snip_fn, layerwise.LOSS_GRADIENTS)
