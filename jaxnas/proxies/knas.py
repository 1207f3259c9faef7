"""KNAS: the mean of the Gram matrix of per-sample gradients ("MGM").

Xu et al., "KNAS: Green Neural Architecture Search", ICML 2021; reference code
Jingjing-NLP/KNAS `exps/NAS-Bench-201/functions.py` (`procedure`).

Per-sample gradients g_i of the cross-entropy loss come from single-image forward
passes (the reference's data loader has batch size 1, with BatchNorm in train mode on
that one image), vectorised with `vmap(grad)`. Higher is better. Two variants
(reference.md §A.4, §F.3):

  * "paper": MGM = (1/n^2) sum_{i,j} <g_i, g_j> over every parameter of the
    architecture, computed as ||mean_i g_i||^2 (the same number; no n x n matrix).
  * "code": the released code's statistic. Walking the parameters in the network's
    order, it keeps the first 11 tensors with at least 50 entries, and for each of
    their first 50 entries (PyTorch layout: OIHW kernels, [out, in] linear weights)
    adds the dot product of the mean-centred gradients of samples 0..24 and 25..49,
    divided by 2500. With a batch of n != 50 images the halves are the first and
    second n // 2 samples and the divisor is (2 (n // 2))^2. The reference runs it on
    the benchmark network (C=16, N=5) with 50 CIFAR images.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors, types
from jaxnas.proxies import gradients, protocols

VARIANTS = ("paper", "code")
CODE_MAX_TENSORS = 11
CODE_MIN_ENTRIES = 50
CODE_ENTRIES = 50
# The benchmark network (C=16, N=5) on 50 images.
PROTOCOL = protocols.Protocol(batch_size=50, reference="reference.md §A.4")


def _torch_layout(leaf: jax.Array) -> jax.Array:
    """A parameter (or a stack of them, leading axis S) flattened in PyTorch's order."""
    s = leaf.shape[0]
    if leaf.ndim == 5:  # [S, kh, kw, ci, co] HWIO -> OIHW
        leaf = leaf.transpose(0, 4, 3, 1, 2)
    elif leaf.ndim == 3:  # [S, in, out] -> [out, in]
        leaf = leaf.transpose(0, 2, 1)
    return leaf.reshape(s, -1)


def knas(*, variant: str = "paper") -> types.ProxyFn:
    """Returns the KNAS proxy.

    Args:
      variant: "paper" (the mean Gram matrix) or "code" (the released code's statistic;
        see the module docstring).
    """
    if variant not in VARIANTS:
        raise errors.ConfigError(f"unknown KNAS variant {variant!r}; expected one of {VARIANTS}")

    def knas_fn(network, params, batch, key):
        del key
        b = batch["x"].shape[0]
        sel, grads = gradients.split_gradients(
            network, params, batch, lambda names: True, num_splits=b
        )
        if variant == "paper":
            # One pass over the stacked gradients for both the score and the finite check.
            terms = gradients.leaf_values(
                lambda g: jnp.stack([jnp.sum(jnp.square(jnp.mean(g, axis=0))), _finite(g)]),
                grads,
            )
            score, finite = jnp.sum(terms[:, 0]), jnp.all(terms[:, 1] > 0)
        else:
            finite = jnp.all(gradients.leaf_values(_finite, grads) > 0)
            score = _code_statistic(network, params, batch, sel, grads)
        return jnp.where(finite, score, jnp.nan)

    return knas_fn


def _finite(g: jax.Array) -> jax.Array:
    """1.0 if every entry of `g` is finite, else 0.0: f32[]."""
    return jnp.all(jnp.isfinite(g)).astype(jnp.float32)


def _code_statistic(network, params, batch, sel, grads):
    half = batch["x"].shape[0] // 2
    if half < 1:
        raise errors.ShapeError("KNAS 'code' needs a batch of at least 2 images")
    order = gradients.first_use_order(lambda p: network.apply(p, batch["x"][:1]), params)
    # Selection indices follow jax.tree.leaves order; rank them by first use.
    rank = {leaf: r for r, leaf in enumerate(order)}
    selected = [
        n
        for n in sorted(range(len(grads)), key=lambda n: rank[sel.indices[n]])
        if grads[n][0].size >= CODE_MIN_ENTRIES
    ]
    if not selected:
        return jnp.zeros((), jnp.float32)
    eligible = sel.present()[np.asarray(selected)].astype(jnp.int32)
    # The first CODE_MAX_TENSORS eligible tensors in the network's order.
    keep = (eligible > 0) & (jnp.cumsum(eligible) - eligible < CODE_MAX_TENSORS)

    def value(g):
        entries = _torch_layout(g)[:, :CODE_ENTRIES]
        first = entries[:half] - jnp.mean(entries[:half], axis=0, keepdims=True)
        second = entries[half : 2 * half] - jnp.mean(
            entries[half : 2 * half], axis=0, keepdims=True
        )
        return jnp.sum(first * second) / float((2 * half) ** 2)

    # Tensors of one shape are reduced together (`gradients.leaf_values`).
    values = gradients.leaf_values(value, [grads[n] for n in selected])
    return jnp.sum(jnp.where(keep, values, 0.0))
