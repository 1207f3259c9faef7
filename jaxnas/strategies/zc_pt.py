"""Zero-Cost-PT: perturbation-based operation scoring with a zero-cost proxy.

Xiang, Dudziak, Abdelfattah, Chau, Lane, Wen, "Zero-Cost Operation Scoring in
Differentiable Architecture Search", arXiv 2106.06799 (AAAI 2023); reference code
zerocostptnas/zerocost_operation_score (`nasbench201/init_projection.py` `pt_project`,
`zerocostnas/post_validate.py`).

An untrained supernet ("mask" dispatch, op weights f32[E, O]) is discretised edge by
edge in a random order. On the chosen edge, for every op o the supernet with o removed
(the edge's other ops at weight 1/O, o at 0; edges already decided are one-hot, the
others uniform 1/O) is scored with a zero-cost proxy; the op whose removal lowers the
score most is kept (arg-min of the scores). `none` is a candidate like any other op.
Repeating this with P random edge orders proposes a pool of P cells; each is then
scored as a stand-alone network on V batches and the pool's arg-max of the summed
score is the result (P=10, V=100 batches of 256 in the reference NB201 pipeline).

`propose` and `validate` are pure and jittable. NaN never wins: a failed removal
score is never the arg-min (an edge whose every score failed keeps op 0 and is
reported through the `failed` output), and a failed validation score never the
arg-max.

Randomness follows the reference where it matters and uses common random numbers
where it only adds noise: the supernet is initialised once per run (the reference
builds it once and reuses it across the pool), every edge decision draws one batch
shared by its O removals (the reference draws one per removal), and the pool is
validated on the same V batches and one shared initialisation (the reference
initialises each stand-alone network on its own).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxnas.strategies import base

# (key, weights f32[O, E, O]) -> f32[O]: the proxy of the supernet under each weighting.
RemovalScorer = Callable[[jax.Array, jax.Array], jax.Array]


def supernet_weights(decided: jax.Array, chosen: jax.Array, num_ops: int) -> jax.Array:
    """f32[E, O]: one-hot rows on decided edges (bool[E], ops int32[E]), 1/O elsewhere."""
    one_hot = jax.nn.one_hot(chosen, num_ops, dtype=jnp.float32)
    uniform = jnp.full_like(one_hot, 1.0 / num_ops)
    return jnp.where(decided[:, None], one_hot, uniform)


def removals(weights: jax.Array, edge: jax.Array) -> jax.Array:
    """f32[O, E, O]: `weights` with row `edge` set to 1/O except op o, which is 0."""
    num_ops = weights.shape[1]
    rows = jnp.full((num_ops, num_ops), 1.0 / num_ops) * (1.0 - jnp.eye(num_ops))
    return jax.vmap(lambda row: weights.at[edge].set(row))(rows)


def propose(
    key: jax.Array, score_removals: RemovalScorer, num_edges: int, num_ops: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One Zero-Cost-PT proposal: discretise every edge in a random order.

    Args:
      key: PRNG key (edge order and the scorer's keys).
      score_removals: `(key, f32[O, E, O]) -> f32[O]` proxy scores of the O removals.
      num_edges, num_ops: E and O.

    Returns:
      int32[E] the genotype, f32[E, O] the removal scores per edge, and bool[] whether
      some edge had only failed (NaN) scores.
    """
    key_order, key_steps = jax.random.split(key)
    order = jax.random.permutation(key_order, num_edges)

    def step(carry, item):
        decided, chosen = carry
        edge, step_key = item
        scores = score_removals(
            step_key, removals(supernet_weights(decided, chosen, num_ops), edge)
        )
        best = jnp.argmin(jnp.where(jnp.isnan(scores), jnp.inf, scores))
        carry = (decided.at[edge].set(True), chosen.at[edge].set(best.astype(jnp.int32)))
        return carry, (scores, jnp.all(jnp.isnan(scores)))

    init = (jnp.zeros((num_edges,), bool), jnp.zeros((num_edges,), jnp.int32))
    (_, chosen), (scores, failed) = jax.lax.scan(
        step, init, (order, jax.random.split(key_steps, num_edges))
    )
    per_edge = jnp.zeros((num_edges, num_ops), jnp.float32).at[order].set(scores)
    return chosen, per_edge, jnp.any(failed)


def pick(pool: jax.Array, validation: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The pool's best cell by summed validation score (NaN never wins).

    Args:
      pool: int32[P, E] proposed genotypes.
      validation: f32[P] their summed validation scores.

    Returns:
      int32[E] the chosen genotype and int32[] its index in the pool.
    """
    i = jnp.argmax(base.failed_to_worst(validation))
    return pool[i], i.astype(jnp.int32)
