"""NSGA-II (Deb et al. 2002) over M objectives: non-dominated sorting with crowding.

Each generation asks N children, each a mutation of the winner of a binary tournament
(lower front rank, then larger crowding distance); `tell` merges parents and children
and keeps the best N by (rank, -crowding). The first generation is N random cells.
Scores are f32[P, M], all maximised (pass costs negated, `fitness.negate`); f32[P] is
read as M = 1. `state.best` tracks objective 0; the Pareto front of the run is the
non-dominated set of its history (`pareto.front` over `metrics["fitness"]`).
"""

import jax
import jax.numpy as jnp
from flax import struct

from jaxnas import errors, pareto
from jaxnas.spaces.base import SearchSpace
from jaxnas.strategies import base


@struct.dataclass
class State:
    best: base.BestSoFar
    members: jax.Array  # int32[N, D]
    objectives: jax.Array  # f32[N, M]
    rank: jax.Array  # int32[N]
    crowding: jax.Array  # f32[N]
    started: jax.Array  # bool[]: the random first generation has been told


def _better(i, j, rank, crowding):
    return (rank[i] < rank[j]) | ((rank[i] == rank[j]) & (crowding[i] > crowding[j]))


def nsga2(space: SearchSpace, population_size: int, num_objectives: int = 1) -> base.Strategy:
    """NSGA-II with mutation as the only variation operator.

    Args:
      space: the search space.
      population_size: N (parents and children per generation).
      num_objectives: M, the width of the scores.

    Params: none.
    """
    n = population_size
    if n <= 0 or num_objectives <= 0:
        raise errors.ConfigError(
            f"nsga2 needs population_size > 0 and num_objectives > 0; got {n}, {num_objectives}"
        )
    num_positions = len(space.num_choices)

    def init(key, params):
        del key, params
        return State(
            best=base.no_best(num_positions),
            members=jnp.zeros((n, num_positions), jnp.int32),
            objectives=jnp.full((n, num_objectives), -jnp.inf, jnp.float32),
            rank=jnp.zeros((n,), jnp.int32),
            crowding=jnp.zeros((n,), jnp.float32),
            started=jnp.zeros((), bool),
        )

    def ask(key, state, params):
        del params
        key_s, key_t, key_m = jax.random.split(key, 3)

        def child(key_t, key_m):
            i, j = jax.random.randint(key_t, (2,), 0, n)
            parent = jnp.where(_better(j, i, state.rank, state.crowding), j, i)
            return space.mutate(key_m, state.members[parent])

        children = jax.vmap(child)(jax.random.split(key_t, n), jax.random.split(key_m, n))
        return jnp.where(state.started, children, space.sample(key_s, n)), state

    def tell(key, population, scores, state, params):
        del key, params
        scores = scores.reshape(n, num_objectives).astype(jnp.float32)
        pool = jnp.concatenate([state.members, population])
        objectives = jnp.concatenate([state.objectives, scores])
        # Before the first tell the parents are placeholders: rank them last.
        placeholder = jnp.concatenate([jnp.full((n,), ~state.started), jnp.zeros((n,), bool)])
        rank = pareto.nondominated_rank(objectives)
        rank = jnp.where(placeholder, 2 * n, rank)
        crowding = pareto.crowding_distance(objectives, rank)
        keep = jnp.lexsort((-crowding, rank))[:n]
        best = base.update_best(state.best, population, scores[:, 0])
        metrics = {
            "best_score": best.score,
            "generation_best": jnp.max(base.failed_to_worst(scores[:, 0])),
            "num_failed": jnp.sum(jnp.any(jnp.isnan(scores), axis=-1)),
            "front_size": jnp.sum(rank[keep] == 0),
        }
        new = State(
            best=best,
            members=pool[keep],
            objectives=objectives[keep],
            rank=rank[keep],
            crowding=crowding[keep],
            started=jnp.ones((), bool),
        )
        return new, metrics

    return base.Strategy(default_params={}, init=init, ask=ask, tell=tell)
