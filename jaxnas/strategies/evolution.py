"""Proxy-driven evolution as Zen-NAS and ZiCo run it (shared/docs/reference.md §B.3).

A population of N cells; each step mutates a uniformly drawn member, rejects children
that break a resource budget (params / FLOPs / latency), scores the child, appends it
and evicts the member with the **lowest** score (not the oldest, unlike REA). The
answer is the best cell seen.

Rejection is jittable: up to `max_tries` mutations (or, while the population fills, random
samples) are drawn and the first that meets the budget is asked. If none does, the
parent is re-asked (it met the budget) and, for the initial fill, the last draw is asked
and counted in `metrics["num_rejected"]`; a child over the budget never enters the
population.
"""

from collections.abc import Callable

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
    fitness: jax.Array  # f32[N], -inf for empty slots and failed members
    count: jax.Array  # int32[]: evaluations told so far


def _first_allowed(candidates, allowed, fallback):
    """The first candidate (int32[T, D]) with allowed[t], else `fallback`."""
    t = jnp.argmax(allowed)
    return jnp.where(allowed[t], candidates[t], fallback)


def evolution(
    space: SearchSpace,
    population_size: int,
    children_per_step: int | None = None,
    constraint: Callable[[jax.Array], jax.Array] | None = None,
    max_tries: int = 16,
) -> base.Strategy:
    """Evolution with lowest-score eviction and budget rejection.

    Args:
      space: the search space.
      population_size: N members (Zen-NAS / ZiCo: 512).
      children_per_step: cells asked per generation (default N; Zen-NAS: 1).
      constraint: `int32[P, D] -> bool[P]`, True where a cell meets the budget (e.g.
        `fitness.within_budget`); None = no budget.
      max_tries: candidate draws per child before giving up (see the module docstring).

    Params: none.
    """
    n = population_size
    b = n if children_per_step is None else children_per_step
    if n <= 0 or not 0 < b <= n or max_tries <= 0:
        raise errors.ConfigError(
            f"evolution needs population_size > 0, 0 < children_per_step <= population_size "
            f"and max_tries > 0; got {n}, {b}, {max_tries}"
        )
    allowed = constraint or (lambda population: jnp.ones(population.shape[:1], bool))
    num_positions = len(space.num_choices)

    def init(key, params):
        del key, params
        return State(
            best=base.no_best(num_positions),
            members=jnp.zeros((n, num_positions), jnp.int32),
            fitness=jnp.full((n,), -jnp.inf, jnp.float32),
            count=jnp.zeros((), jnp.int32),
        )

    def ask(key, state, params):
        del params

        def child(key, i):
            key_s, key_p, key_m = jax.random.split(key, 3)
            fresh = space.sample(key_s, max_tries)
            fresh = _first_allowed(fresh, allowed(fresh), fresh[-1])
            parent = state.members[jax.random.randint(key_p, (), 0, jnp.clip(state.count, 1, n))]
            mutants = jax.vmap(space.mutate, in_axes=(0, None))(
                jax.random.split(key_m, max_tries), parent
            )
            mutant = _first_allowed(mutants, allowed(mutants), parent)
            return jnp.where(i < n, fresh, mutant)

        index = state.count + jnp.arange(b)
        return jax.vmap(child)(jax.random.split(key, b), index), state

    def tell(key, population, scores, state, params):
        del key, params
        ok = allowed(population)
        fitness = jnp.where(ok, base.failed_to_worst(scores), -jnp.inf)

        def insert(carry, child):
            members, fit, i = carry
            genotype, f = child
            lowest = jnp.argmin(fit)
            slot = jnp.where(i < n, i, lowest)
            keep = (i < n) | (f > fit[lowest])
            members = members.at[slot].set(jnp.where(keep, genotype, members[slot]))
            fit = fit.at[slot].set(jnp.where(keep, f, fit[slot]))
            return (members, fit, i + 1), None

        (members, fit, count), _ = jax.lax.scan(
            insert, (state.members, state.fitness, state.count), (population, fitness)
        )
        scores = jnp.where(ok, scores, jnp.nan)  # a cell over budget never becomes the best
        best = base.update_best(state.best, population, scores)
        metrics = {
            "best_score": best.score,
            "generation_best": jnp.max(fitness),
            "num_failed": jnp.sum(jnp.isnan(scores) & ok),
            "num_rejected": jnp.sum(~ok),
        }
        return State(best=best, members=members, fitness=fit, count=count), metrics

    return base.Strategy(default_params={}, init=init, ask=ask, tell=tell)
