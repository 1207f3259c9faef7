"""l2_norm: the sum over layers of the Frobenius norm of the weights.

A data-free baseline of NAS-Bench-Suite-Zero (NASLib `measures/l2_norm.py`):
score = sum_l ||theta_l||_2 over the conv / linear weights of the architecture (not
biases, not BatchNorm). With PyTorch's default init every conv layer contributes about
sqrt(C_out / 3) whatever its kernel size, so on NB201 this mostly counts conv ops.
"""

from jaxnas import types
from jaxnas.proxies import layerwise


def l2_norm() -> types.ProxyFn:
    """Returns the l2_norm proxy (higher is better; NaN if not finite)."""

    def l2_norm_fn(network, params, batch, key):
        del batch, key
        mask = layerwise.weight_mask(network, params)
        return layerwise.finite_or_nan(layerwise.layer_sum(layerwise.frobenius, mask, params))

    return l2_norm_fn
