"""The search loop: ask -> evaluate -> tell, as one pure function.

The CLI's search mode (`experiment`) and a user's own code run the same `run`. Its
contract: `state.best` is the best cell so far (`BestSoFar`: NaN never wins), and the
metrics hold, per generation, the evaluated genotypes and their fitness (the history),
the evaluation count, the best score so far and, with a cost, the simulated time.

R independent runs with a table or lookup fitness are one program:
`run_seeds(keys, ...)` vmaps `run` over keys (a live-proxy fitness is better run one seed
at a time, or with `jax.lax.map`, since vmapping scoring multiplies its memory).
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxnas import types
from jaxnas.strategies.base import Strategy


def run(
    key: types.PRNGKey,
    strategy: Strategy,
    score_fn: Callable[[types.PRNGKey, types.Population], jax.Array],
    num_generations: int,
    params: Any = None,
    *,
    cost_fn: Callable[[types.Population], jax.Array] | None = None,
    time_budget: float | None = None,
) -> tuple[Any, dict]:
    """Runs a strategy for `num_generations` inside `lax.scan`.

    Pure and jittable; `run_seeds` vmaps it over keys.

    Args:
      key: PRNG key of the whole search.
      strategy: the ask/tell strategy.
      score_fn: a fitness source `(key, population int32[P, D]) -> f32[P]` or f32[P, M]
        (`jaxnas.fitness`).
      num_generations: G, the number of ask/tell rounds (P evaluations each).
      params: strategy hyper-parameters (default: `strategy.default_params`).
      cost_fn: `int32[P, D] -> f32[P]`, the simulated seconds of evaluating each cell
        (e.g. a benchmark's training-time column through `fitness.lookup`).
      time_budget: with `cost_fn`, a generation runs only while the simulated time spent
        before it is below this budget (NB201's REA loop); later generations leave the
        state as it was and are marked `evaluated = False`.

    Returns:
      The final strategy state and metrics with leading axis G: the strategy's own
      metrics plus `genotypes` int32[G, P, D], `fitness` f32[G, P(, M)], `evaluated`
      bool[G], `num_evaluations` int32[G] (cumulative), `best_score` f32[G],
      `best_genotype` int32[G, D] and
      `simulated_time` f32[G] (cumulative; zeros without `cost_fn`).
    """
    params = strategy.default_params if params is None else params
    if (cost_fn is None) != (time_budget is None):
        raise ValueError("cost_fn and time_budget go together")
    key_init, key_loop = jax.random.split(key)
    state = strategy.init(key_init, params)

    def step(carry, key):
        state, spent, count = carry
        key_ask, key_score, key_tell = jax.random.split(key, 3)
        population, asked = strategy.ask(key_ask, state, params)
        scores = score_fn(key_score, population)
        told, metrics = strategy.tell(key_tell, population, scores, asked, params)
        within = jnp.ones((), bool) if time_budget is None else spent < time_budget
        state = jax.tree.map(lambda new, old: jnp.where(within, new, old), told, state)
        cost = jnp.zeros(()) if cost_fn is None else jnp.sum(cost_fn(population))
        spent = spent + jnp.where(within, cost, 0.0)
        count = count + jnp.where(within, population.shape[0], 0)
        metrics = {
            **metrics,
            "genotypes": population,
            "fitness": scores,
            "evaluated": within,
            "num_evaluations": count,
            "best_score": state.best.score,
            "best_genotype": state.best.genotype,
            "simulated_time": spent,
        }
        return (state, spent, count), metrics

    carry = (state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
    (state, _, _), metrics = jax.lax.scan(step, carry, jax.random.split(key_loop, num_generations))
    return state, metrics


def run_seeds(
    keys: types.PRNGKey,
    strategy: Strategy,
    score_fn: Callable[[types.PRNGKey, types.Population], jax.Array],
    num_generations: int,
    params: Any = None,
    **kwargs,
) -> tuple[Any, dict]:
    """R independent runs as one vmapped program: `run` for each of key[R]; every output
    gains a leading axis R. `params` is shared (vmap `run` yourself to vary it)."""
    return jax.vmap(lambda k: run(k, strategy, score_fn, num_generations, params, **kwargs))(keys)
