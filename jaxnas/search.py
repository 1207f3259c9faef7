"""The search loop: ask -> score -> tell, as one pure function."""

from collections.abc import Callable
from typing import Any

import jax

from jaxnas import types
from jaxnas.strategies.base import Strategy


def run(
    key: types.PRNGKey,
    strategy: Strategy,
    score_fn: Callable[[types.PRNGKey, types.Population], jax.Array],
    num_generations: int,
    params: Any = None,
) -> tuple[Any, dict]:
    """Runs a strategy for `num_generations` inside `lax.scan`.

    Pure and jittable; `jax.vmap(run, in_axes=(0, None, None, None))` over keys gives
    independent searches (use `lax.map` instead when `score_fn` uses "switch" dispatch).

    Args:
      key: PRNG key of the whole search.
      strategy: the ask/tell strategy.
      score_fn: `(key, population int32[P, D]) -> f32[P]` (e.g. a proxy aggregated over
        initialisations via `jaxnas.proxies.score_population`).
      num_generations: number of ask/tell rounds.
      params: strategy hyper-parameters (default: `strategy.default_params`).

    Returns:
      The final strategy state and the per-generation metrics (leading axis
      `num_generations`).
    """
    params = strategy.default_params if params is None else params
    key_init, key_loop = jax.random.split(key)
    state = strategy.init(key_init, params)

    def step(state, key):
        key_ask, key_score, key_tell = jax.random.split(key, 3)
        population, state = strategy.ask(key_ask, state, params)
        scores = score_fn(key_score, population)
        return strategy.tell(key_tell, population, scores, state, params)

    return jax.lax.scan(step, state, jax.random.split(key_loop, num_generations))
