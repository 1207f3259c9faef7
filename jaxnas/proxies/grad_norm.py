"""grad_norm: the sum over layers of the Frobenius norm of the loss gradient.

Abdelfattah et al., ICLR 2021 (zero-cost-nas `measures/grad_norm.py`; NASLib's copy
for NAS-Bench-Suite-Zero). score = sum_l ||dL/dtheta_l||_2 over the conv / linear
weights of the architecture (a per-layer norm, summed; not the global norm). L is the
mean cross-entropy of one batch, BatchNorm in train mode.
"""

from jaxnas import types
from jaxnas.proxies import base, layerwise


def grad_norm() -> types.ProxyFn:
    """Returns the grad_norm proxy (higher is better; NaN if not finite)."""

    def grad_norm_fn(network, params, batch, key):
        del key
        grads = layerwise.loss_gradients(network, params, batch)
        mask = layerwise.weight_mask(network, params)
        return layerwise.finite_or_nan(layerwise.layer_sum(layerwise.frobenius, mask, grads))

    return base.with_shared_requests(grad_norm_fn, layerwise.LOSS_GRADIENTS)
