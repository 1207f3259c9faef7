"""plain: the signed sum of theta * dL/dtheta over the weights.

A baseline of Abdelfattah et al., ICLR 2021 (zero-cost-nas `measures/plain.py`); the
first-order change of the loss when every weight is removed. Conv / linear weights of
the architecture, mean cross-entropy of one batch, BatchNorm in train mode. Returned
as the reference computes it (no sign flip): in NAS-Bench-Suite-Zero it correlates
negatively with accuracy on NB201.
"""

import jax.numpy as jnp

from jaxnas import types
from jaxnas.proxies import base, layerwise


def plain() -> types.ProxyFn:
    """Returns the plain proxy (NaN if not finite)."""

    def plain_fn(network, params, batch, key):
        del key
        grads = layerwise.loss_gradients(network, params, batch)
        mask = layerwise.weight_mask(network, params)
        score = layerwise.layer_sum(lambda w, g: jnp.sum(w * g), mask, params, grads)
        return layerwise.finite_or_nan(score)

    return base.with_shared_requests(plain_fn, layerwise.LOSS_GRADIENTS)
