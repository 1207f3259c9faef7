"""The ask/tell `Strategy` contract (evosax call shape, optax-style NamedTuple).

  state = strategy.init(key, params)
  population, state = strategy.ask(key, state, params)          # int32[P, D]
  state, metrics = strategy.tell(key, population, scores, state, params)  # scores f32[P]

Static, shape-affecting settings (population size, the space) are closed over by the
factory; dynamic hyper-parameters live in `params` (a pytree, vmappable); everything that
changes lives in `state`. Scores are maximised; NaN (a failed evaluation) never becomes
the best. All functions are pure, so a whole search runs inside `lax.scan` and can be
vmapped over seeds (`jaxnas.search.run`).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from jaxnas import types


@struct.dataclass
class BestSoFar:
    """The best architecture seen: genotype int32[D], its score f32[] (-inf if none)."""

    genotype: jax.Array
    score: jax.Array


class Strategy(NamedTuple):
    """A search strategy as pure functions; see the module docstring."""

    default_params: Any
    init: Callable[[types.PRNGKey, Any], Any]
    ask: Callable[[types.PRNGKey, Any, Any], tuple[types.Population, Any]]
    tell: Callable[[types.PRNGKey, types.Population, jax.Array, Any, Any], tuple[Any, dict]]


def no_best(num_positions: int) -> BestSoFar:
    """The best-so-far before any evaluation: genotype int32[D] of zeros, score -inf."""
    return BestSoFar(
        genotype=jnp.zeros((num_positions,), jnp.int32),
        score=jnp.asarray(-jnp.inf, jnp.float32),
    )


def failed_to_worst(scores: jax.Array) -> jax.Array:
    """Maps NaN (failed) to -inf so that it can never win a comparison."""
    return jnp.where(jnp.isnan(scores), -jnp.inf, scores)


def update_best(best: BestSoFar, population: types.Population, scores: jax.Array) -> BestSoFar:
    """Keeps the best of `best` and the population (first arg-max; NaN never wins)."""
    scores = failed_to_worst(scores)
    i = jnp.argmax(scores)
    better = scores[i] > best.score
    return BestSoFar(
        genotype=jnp.where(better, population[i], best.genotype),
        score=jnp.where(better, scores[i], best.score),
    )
