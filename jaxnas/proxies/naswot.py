"""NASWOT: the log-determinant of the Hamming kernel of ReLU activation codes.

Mellor, Turner, Storkey, Crowley, "Neural Architecture Search without Training",
ICML 2021 (reference code: BayesWatch/nas-without-training, `score_networks.py`).

Every ReLU input is binarised per image (1 where the unit is active); the kernel
K[i, j] = N_A - d_H(c_i, c_j) counts the units on which images i and j agree, summed
over every ReLU of the network; the score is log|K| (higher is better). BatchNorm uses
batch statistics, as in the reference (it never calls `.eval()`). A network whose output
is not finite scores NaN (failed). A singular kernel (e.g. a cell whose output is all
zeros) scores -inf: the worst score, but not a failure.
"""

import jax.numpy as jnp

from jaxnas import types
from jaxnas.proxies import base, kernels, layerwise

REFERENCE_DOUBLE_COUNT = "relu_conv_bn"


def naswot(*, count_relu_conv_bn_twice: bool = False) -> types.ProxyFn:
    """Returns the NASWOT proxy.

    Args:
      count_relu_conv_bn_twice: reproduce the published NB201 scores of the reference
        code, whose hook test `'ReLU' in str(type(module))` also matches NB201's
        `ReLUConvBN` modules and so counts the ReLU inside every ReLUConvBN twice (taps
        whose name contains "relu_conv_bn"). The ranking barely changes; the default
        (False) is the paper's definition, one count per ReLU, which is also what
        NASLib / NAS-Bench-Suite-Zero compute.
    """
    tap_weight = None
    if count_relu_conv_bn_twice:

        def tap_weight(name):
            return 2.0 if REFERENCE_DOUBLE_COUNT in name else 1.0

    def naswot_fn(network, params, batch, key):
        del key
        logits, taps = layerwise.forward_taps(network, params, batch)
        score = kernels.logdet(kernels.hamming_kernel(taps, tap_weight))
        return jnp.where(jnp.all(jnp.isfinite(logits)), score, jnp.nan)

    return base.with_shared_requests(naswot_fn, layerwise.FORWARD_TAPS)
