"""SWAP: the number of distinct sample-wise activation patterns of the units.

Peng et al., "SWAP-NAS: Sample-Wise Activation Patterns for Ultra-fast NAS", ICLR 2024;
reference code pym1024/SWAP `src/metrics/swap.py`, `correlation.py`.

Every ReLU (or GeLU) unit of the network has a binary vector over the S samples of the
batch (active or not); SWAP is the number of distinct such vectors among the units of
the architecture (at most min(#units, 2^S)). Higher is better.

Reference protocol (reference.md §A.6): 16 real CIFAR-10 images, the network
re-initialised N(0, 1) (conv / linear weights; BN gain 1, shift 0) for each of 32
repeats and the scores averaged: `init="normal"` with the proxy key, and K = 32
initialisation keys in `score_population` (mean aggregate). Regularised SWAP multiplies
by exp(-(P - mu)^2 / sigma), P the number of parameters of the architecture in
thousands.
"""

import jax
import jax.numpy as jnp

from jaxnas import errors, types
from jaxnas.proxies import gradients, patterns, protocols

INITS = ("normal", "network")
# 16 images, 32 repeats (each an N(0, 1) re-draw from the proxy key), scores averaged.
PROTOCOL = protocols.Protocol(batch_size=16, num_inits=32, reference="reference.md §A.6")


def swap(
    *, init: str = "normal", mu: float | None = None, sigma: float | None = None
) -> types.ProxyFn:
    """Returns the SWAP proxy.

    Args:
      init: "normal" re-draws the parameters N(0, 1) from the proxy key (the reference);
        "network" scores the parameters as given.
      mu, sigma: both set gives regularised SWAP, times exp(-(P - mu)^2 / sigma) with P
        the architecture's parameter count in thousands.
    """
    if init not in INITS:
        raise errors.ConfigError(f"unknown SWAP init {init!r}; expected one of {INITS}")
    if (mu is None) != (sigma is None):
        raise errors.ConfigError("regularised SWAP needs both mu and sigma")

    def swap_fn(network, params, batch, key):
        if init == "normal":
            params = gradients.reinitialize(params, key, "normal")
        logits, taps = network.apply(params, batch["x"], taps=True)
        codes, present = patterns.unit_codes(patterns.distinct_taps(taps))
        score = patterns.count_distinct_rows(codes, present).astype(jnp.float32)
        if mu is not None:
            thousands = parameter_count(network, params) / 1e3
            score = score * jnp.exp(-jnp.square(thousands - mu) / sigma)
        return jnp.where(jnp.all(jnp.isfinite(logits)), score, jnp.nan)

    return swap_fn


def parameter_count(network, params) -> jax.Array:
    """Number of parameters in the architecture (`network.param_mask`): f32[]."""
    sel = gradients.Selection(network, params, lambda names: True)
    return sum(
        jnp.sum(jnp.broadcast_to(mask, leaf.shape)) for leaf, mask in zip(sel.leaves, sel.masks)
    )
