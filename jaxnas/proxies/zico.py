"""ZiCo: inverse coefficient of variation of gradients across mini-batches.

Li et al., "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients",
ICLR 2023; reference code SLDGroup/ZiCo `ZeroShotProxy/compute_zico.py` and the AZ-NAS
NB201 port (`compute_zico_score.py`, batch_iter=2, batch 64).

For every Conv2d / Linear weight tensor (`kernel`) of the architecture the cross-entropy
gradient is taken on each of `num_batches` mini-batches (independent forward passes,
vectorised with `vmap`); per weight w, mean_b |g_w| / std_b(g_w) (population std),
summed over the weights with std > 0; ZiCo = sum over tensors of log of that sum
(tensors whose sum is 0 are skipped, as in the reference). Higher is better.

As in the reference, the batch given is split into `num_batches` consecutive
mini-batches: the AZ-NAS NB201 protocol (2 batches of 64 real images) is a batch of
128 with the default `num_batches=2`. The reference code uses std(g), where the paper
writes sqrt(Var(|g|)); this follows the code.
"""

import jax.numpy as jnp

from jaxnas import types
from jaxnas.proxies import gradients, layerwise, protocols

# AZ-NAS's NB201 protocol: the benchmark network, 2 batches of 64 images as one of 128.
PROTOCOL = protocols.Protocol(batch_size=128, reference="AZ-NAS NB201 port, batch_iter=2")


def zico(*, num_batches: int = 2) -> types.ProxyFn:
    """Returns the ZiCo proxy.

    Args:
      num_batches: mini-batches the batch is split into (>= 2; the batch size must be a
        multiple of it).
    """

    def zico_fn(network, params, batch, key):
        del key
        sel, grads = gradients.split_gradients(
            network, params, batch, gradients.is_kernel, num_batches
        )

        def snr_sum(g):
            std = jnp.std(g, axis=0)
            ratio = jnp.mean(jnp.abs(g), axis=0) / jnp.where(std > 0, std, 1.0)
            return jnp.sum(jnp.where(std > 0, ratio, 0.0))

        score, finite = layerwise.sum_of_logs(snr_sum, grads, sel.present())
        return jnp.where(finite, score, jnp.nan)

    return zico_fn
