"""Random sampling, the NASWOT search protocol.

Mellor et al., ICML 2021, Sec. 5 / `search.py`: draw N architectures uniformly with
replacement, score each, return the arg-max (NaN never wins). With `num_generations=1`
and `population_size=N` this is exactly "NASWOT N"; more generations keep sampling
fresh batches and keep the best overall.
"""

import jax
import jax.numpy as jnp
from flax import struct

from jaxnas.spaces.base import SearchSpace
from jaxnas.strategies import base


@struct.dataclass
class State:
    best: base.BestSoFar
    generation: jax.Array  # int32[]


def random_search(space: SearchSpace, population_size: int) -> base.Strategy:
    """Uniform sampling with replacement over `space`, `population_size` per generation."""
    num_positions = len(space.num_choices)

    def init(key, params):
        del key, params
        best = base.no_best(num_positions)
        return State(best=best, generation=jnp.zeros((), jnp.int32))

    def ask(key, state, params):
        del params
        return space.sample(key, population_size), state

    def tell(key, population, scores, state, params):
        del key, params
        best = base.update_best(state.best, population, scores)
        metrics = {
            "best_score": best.score,
            "generation_best": jnp.max(base.failed_to_worst(scores)),
            "num_failed": jnp.sum(jnp.isnan(scores)),
        }
        return State(best=best, generation=state.generation + 1), metrics

    return base.Strategy(default_params={}, init=init, ask=ask, tell=tell)
