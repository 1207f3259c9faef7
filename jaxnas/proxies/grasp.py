"""grasp: -theta * (H g) summed over the weights (Hessian-gradient product).

Wang, Zhang, Grosse, "Picking Winning Tickets Before Training by Preserving Gradient
Flow", ICLR 2020, as a zero-cost proxy in Abdelfattah et al., ICLR 2021 (zero-cost-nas
`measures/grasp.py`, copied by NASLib): g = dL/dtheta over the conv / linear weights W,
then Hg = d/dtheta <stop_gradient(g), dL/dtheta> (the Hessian of L with respect to W
times g), score = -sum theta * Hg (the reference flips the GraSP sign "because accuracy
correlates negatively with it"). One batch, mean cross-entropy, temperature 1,
BatchNorm in train mode. Hg is computed as a forward-over-reverse Hessian-vector
product (`jax.jvp` of `jax.grad`), which equals the reference's double backward.
"""

import jax

from jaxnas import types
from jaxnas.proxies import base, layerwise


def grasp() -> types.ProxyFn:
    """Returns the grasp proxy (higher is better; NaN if not finite)."""

    def grasp_fn(network, params, batch, key):
        del key
        grad_fn = jax.grad(layerwise.loss_fn(network, batch))
        mask = layerwise.weight_mask(network, params)
        # The loss gradient snip / grad_norm / plain take: computed once in a stack.
        grads = layerwise.loss_gradients(network, params, batch)
        direction = jax.tree.map(layerwise.masked, grads, mask)
        _, hg = jax.jvp(grad_fn, (params,), (direction,))
        score = -layerwise.layer_sum(lambda w, h: (w * h).sum(), mask, params, hg)
        return layerwise.finite_or_nan(score)

    return base.with_shared_requests(grasp_fn, layerwise.LOSS_GRADIENTS)
