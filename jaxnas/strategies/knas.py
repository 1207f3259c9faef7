"""KNAS: keep the top k of N sampled cells by the gradient kernel, pick one by training.

Xu et al., "KNAS: Green Neural Architecture Search", ICML 2021; reference code
Jingjing-NLP/KNAS `cifar10.py` (reference.md §A.4, §B.6): draw N architecture indices
uniformly with replacement (N=300 there), rank them by the gradient-kernel score
(`jaxnas.proxies.knas`), keep the top k (k=40 in the README) and return the one with the
best cheap training signal (the code reads epoch-20 `cifar10-valid` validation
accuracy; here a benchmark column such as the 12-epoch `cifar10valid_valid_12ep`
stands in for it). Not training-free: the last step consumes (partial) training.

`select` is pure and jittable; vmapped over keys it gives R independent runs in one
program. It works on a scored pool of M cells (score once, look up many times): run r
draws its N cells from the pool, so runs over one pool share the pool's scores, which
equals live scoring when the pool holds the whole space and one initialisation per cell
is what a live run would draw.
"""

import jax
import jax.numpy as jnp

from jaxnas.strategies import base


def select(
    key: jax.Array, scores: jax.Array, signal: jax.Array, num_samples: int, top_k: int
) -> tuple[jax.Array, jax.Array]:
    """One KNAS run over a scored pool.

    Args:
      key: PRNG key of the run.
      scores: f32[M] gradient-kernel scores of the pool (higher is better; NaN failed).
      signal: f32[M] the pick signal (e.g. 12-epoch validation accuracy; NaN missing).
      num_samples: N, cells drawn uniformly with replacement from the pool.
      top_k: k, cells kept by score (k <= N).

    Returns:
      int32[] the pool index chosen and int32[N] the pool indices drawn. NaN never
      wins: a failed score ranks below every finite one and is never picked, a
      missing signal ranks below every present one.
    """
    drawn = jax.random.randint(key, (num_samples,), 0, scores.shape[0])
    kept = jax.lax.top_k(base.failed_to_worst(scores[drawn]), top_k)[1]
    cells = drawn[kept]
    # A failed cell kept only because k is large never wins on its signal.
    pick = jnp.where(jnp.isnan(scores[cells]), -jnp.inf, base.failed_to_worst(signal[cells]))
    best = jnp.argmax(pick)
    return cells[best].astype(jnp.int32), drawn.astype(jnp.int32)


def select_runs(
    keys: jax.Array, scores: jax.Array, signal: jax.Array, num_samples: int, top_k: int
) -> tuple[jax.Array, jax.Array]:
    """`select` vmapped over keys key[R]: int32[R] choices and int32[R, N] draws."""
    return jax.vmap(lambda k: select(k, scores, signal, num_samples, top_k))(keys)
