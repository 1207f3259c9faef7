"""Regularised evolution (REA, Real et al. 2019) and its proxy warm-up (AREA).

NB201's REA (`R-EA.sh`, shared/docs/reference.md §B.3): a population of N cells, each
cycle draws a tournament of S members without replacement, mutates the fittest into a
child, evaluates it, appends it and removes the oldest member; the answer is the fittest
cell of the whole history. NB201 runs N=10, S=3, one child per cycle, fitness = 12-epoch
validation accuracy.

AREA (NASWOT Alg. 2, §B.2) seeds REA with the top N of M random cells ranked by a
training-free proxy instead of N random cells; pass that proxy's fitness as `warmup`.
The warm-up scores are drawn inside `init` and are not evaluations of the search's own
fitness (they are cheap; `metrics["num_evaluations"]` counts only the latter).

Each generation asks for `children_per_step` cells (default N: a synchronous batch of
workers; REA proper uses 1). The first N evaluations are the initial population.
"""

import jax
import jax.numpy as jnp
from flax import struct

from jaxnas import errors
from jaxnas.spaces.base import SearchSpace
from jaxnas.strategies import base


@struct.dataclass
class State:
    best: base.BestSoFar
    members: jax.Array  # int32[N, D]
    fitness: jax.Array  # f32[N], NaN stored as -inf
    born: jax.Array  # int32[N]: evaluation index of each member, -1 for an empty slot
    initial: jax.Array  # int32[N, D]: the first N cells to evaluate
    count: jax.Array  # int32[]: evaluations told so far


def tournament_parent(key, fitness, valid, size):
    """Index of the fittest of `size` members drawn without replacement among `valid`.

    Args:
      key: PRNG key.
      fitness: f32[N] (no NaN; -inf for failed members).
      valid: bool[N] slots that hold a member.
      size: int32[] tournament size (dynamic, clipped to the number of valid members).

    Returns:
      int32[] the parent's slot.
    """
    priority = jnp.where(valid, jax.random.uniform(key, fitness.shape), 2.0)
    in_sample = jnp.argsort(jnp.argsort(priority)) < size
    # In-sample first, then by fitness descending; a -inf member can still be the parent
    # of a tournament of failures, never an out-of-sample member.
    return jnp.lexsort((-fitness, ~in_sample))[0]


def rea(
    space: SearchSpace,
    population_size: int,
    children_per_step: int | None = None,
    warmup=None,
    warmup_size: int = 0,
) -> base.Strategy:
    """Regularised evolution; with `warmup`, AREA.

    Args:
      space: the search space (its `sample` and `mutate`).
      population_size: N, the members alive at once.
      children_per_step: cells asked per generation (default N; NB201's REA: 1).
      warmup: optional `(key, int32[M, D]) -> f32[M]` proxy fitness: the initial
        population is the top N of `warmup_size` random cells by it (NaN ranks last).
      warmup_size: M >= N, cells scored by `warmup`.

    Params: `{"tournament_size": int32[]}` (default 3, NB201's example call).
    """
    n = population_size
    b = n if children_per_step is None else children_per_step
    if n <= 0 or not 0 < b <= n:
        raise errors.ConfigError(
            f"rea needs population_size > 0 and 0 < children_per_step <= population_size; "
            f"got {n} and {b}"
        )
    if warmup is not None and warmup_size < n:
        raise errors.ConfigError(
            f"AREA warm-up scores M >= N cells; got warmup_size={warmup_size} < {n}"
        )
    num_positions = len(space.num_choices)

    def init(key, params):
        del params
        if warmup is None:
            initial = space.sample(key, n)
        else:
            key_sample, key_score = jax.random.split(key)
            candidates = space.sample(key_sample, warmup_size)
            scores = base.failed_to_worst(warmup(key_score, candidates))
            initial = candidates[jnp.argsort(-scores, stable=True)[:n]]
        return State(
            best=base.no_best(num_positions),
            members=jnp.zeros((n, num_positions), jnp.int32),
            fitness=jnp.full((n,), -jnp.inf, jnp.float32),
            born=jnp.full((n,), -1, jnp.int32),
            initial=initial.astype(jnp.int32),
            count=jnp.zeros((), jnp.int32),
        )

    def ask(key, state, params):
        valid = state.born >= 0

        def child(key, i):
            key_t, key_m = jax.random.split(key)
            parent = tournament_parent(key_t, state.fitness, valid, params["tournament_size"])
            mutated = space.mutate(key_m, state.members[parent])
            return jnp.where(i < n, state.initial[jnp.minimum(i, n - 1)], mutated)

        index = state.count + jnp.arange(b)
        return jax.vmap(child)(jax.random.split(key, b), index), state

    def tell(key, population, scores, state, params):
        del key, params
        fitness = base.failed_to_worst(scores)

        def insert(carry, child):
            members, fit, born, i = carry
            genotype, f = child
            slot = jnp.where(i < n, i, jnp.argmin(born))  # the oldest dies
            members = members.at[slot].set(genotype)
            return (members, fit.at[slot].set(f), born.at[slot].set(i), i + 1), None

        (members, fit, born, count), _ = jax.lax.scan(
            insert, (state.members, state.fitness, state.born, state.count), (population, fitness)
        )
        best = base.update_best(state.best, population, scores)
        metrics = {
            "best_score": best.score,
            "generation_best": jnp.max(fitness),
            "num_failed": jnp.sum(jnp.isnan(scores)),
        }
        new = State(
            best=best, members=members, fitness=fit, born=born, initial=state.initial, count=count
        )
        return new, metrics

    return base.Strategy(
        default_params={"tournament_size": jnp.asarray(3, jnp.int32)},
        init=init,
        ask=ask,
        tell=tell,
    )
