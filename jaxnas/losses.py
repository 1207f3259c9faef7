"""The softmax cross-entropy that proxies and training share."""

import jax
import jax.numpy as jnp
import optax


def cross_entropies(logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy f32[B] of logits f32[B, K] against int labels [B].

    Without smoothing this is PyTorch's `F.cross_entropy(..., reduction="none")`: the
    label's negative log-probability, picked rather than summed against a one-hot row
    (equal values; no `0 * -inf` where a logit is -inf). `smoothing` > 0 spreads that
    much of the target mass uniformly over the K classes (`optax.smooth_labels`).
    """
    logp = jax.nn.log_softmax(logits, axis=-1)
    if smoothing > 0:
        onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
        return -jnp.sum(optax.smooth_labels(onehot, smoothing) * logp, axis=-1)
    return -jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]


def cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
    """Mean softmax cross-entropy f32[] over the batch (PyTorch's `F.cross_entropy`,
    `label_smoothing`); see `cross_entropies`."""
    return jnp.mean(cross_entropies(logits, labels, smoothing))
