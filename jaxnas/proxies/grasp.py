"""grasp: -theta * (H g) summed over the weights (Hessian-gradient product).

Wang, Zhang, Grosse, "Picking Winning Tickets Before Training by Preserving Gradient
Flow", ICLR 2020, as a zero-cost proxy in Abdelfattah et al., ICLR 2021 (zero-cost-nas
`measures/grasp.py`, copied by NASLib): g = dL/dtheta over the conv / linear weights W,
then Hg = d/dtheta <stop_gradient(g), dL/dtheta> (the Hessian of L with respect to W
times g), score = -sum theta * Hg (the reference flips the GraSP sign "because accuracy
correlates negatively with it"). One batch, mean cross-entropy, temperature 1,
BatchNorm in train mode. The score theta^T H g is computed as the mixed second
derivative d^2 L(theta + e g + d theta) / de dd at 0, forward mode over forward mode
(two nested `jax.jvp`s, after the one shared gradient g): by the symmetry of the
Hessian it equals the reference's double backward summed against theta (the
architecture masks are 0 / 1), without a second backward pass through the network.
"""

import jax

from jaxnas import types
from jaxnas.proxies import base, layerwise


def grasp() -> types.ProxyFn:
    """Returns the grasp proxy (higher is better; NaN if not finite)."""

    def grasp_fn(network, params, batch, key):
        del key
        loss = layerwise.loss_fn(network, batch)
        mask = layerwise.weight_mask(network, params)
        # The loss gradient snip / grad_norm / plain take: computed once in a stack.
        grads = layerwise.loss_gradients(network, params, batch)
        direction = jax.tree.map(layerwise.masked, grads, mask)
        weights = jax.tree.map(layerwise.masked, params, mask)

        def at(e, d):
            def moved(p, g, w):
                return p + e * g + d * w

            return loss(jax.tree.map(moved, params, direction, weights))

        def slope(e):
            return jax.jvp(lambda d: at(e, d), (0.0,), (1.0,))[1]

        # theta^T H g = d^2 L(theta + e g + d theta) / de dd at 0, forward over forward:
        # no second backward pass through the network.
        score = -jax.jvp(slope, (0.0,), (1.0,))[1]
        return layerwise.finite_or_nan(score)

    return base.with_shared_requests(grasp_fn, layerwise.LOSS_GRADIENTS)
