"""Strategies: ask/tell in a Python loop and inside lax.scan; NaN never wins."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import search, strategies
from jaxnas.spaces import nb201


@pytest.fixture(params=sorted(strategies.STRATEGIES))
def strategy(request):
    return strategies.STRATEGIES[request.param](nb201.space(), 8)


def _fitness(key, population):
    """A cheap deterministic stand-in for a proxy: count of conv3x3 edges."""
    del key
    return jnp.sum(population == 3, axis=1).astype(jnp.float32)


def test_python_loop_and_scan_agree_and_genotypes_stay_in_range(strategy):
    key = jax.random.key(0)
    state, metrics = jax.jit(lambda k: search.run(k, strategy, _fitness, 5))(key)
    chex.assert_shape(metrics["best_score"], (5,))
    assert np.all(np.diff(np.asarray(metrics["best_score"])) >= 0)

    key_init, key_loop = jax.random.split(key)
    loop_state = strategy.init(key_init, strategy.default_params)
    for step_key in jax.random.split(key_loop, 5):
        key_ask, key_score, key_tell = jax.random.split(step_key, 3)
        population, loop_state = strategy.ask(key_ask, loop_state, strategy.default_params)
        nb201.space().validate(np.asarray(population))
        scores = _fitness(key_score, population)
        loop_state, _ = strategy.tell(
            key_tell, population, scores, loop_state, strategy.default_params
        )
    chex.assert_trees_all_equal(loop_state, state)


def test_vmap_over_seeds_equals_each_seed_alone_and_seeds_differ(strategy):
    keys = jax.random.split(jax.random.key(1), 4)

    def best(k):
        return search.run(k, strategy, _fitness, 3)[0].best

    together = jax.jit(jax.vmap(best))(keys)
    chex.assert_shape(together.genotype, (4, 6))
    for i, k in enumerate(keys):
        chex.assert_trees_all_equal(jax.jit(best)(k), jax.tree.map(lambda v, i=i: v[i], together))
    # 24 random cells per seed: different seeds keep different best cells.
    assert len({tuple(g) for g in np.asarray(together.genotype).tolist()}) > 1


def test_nan_never_becomes_the_best(strategy):
    params = strategy.default_params
    state = strategy.init(jax.random.key(0), params)
    population, state = strategy.ask(jax.random.key(1), state, params)
    scores = jnp.full((8,), jnp.nan).at[3].set(-5.0)
    state, metrics = strategy.tell(jax.random.key(2), population, scores, state, params)
    assert float(state.best.score) == -5.0
    np.testing.assert_array_equal(state.best.genotype, population[3])
    assert int(metrics["num_failed"]) == 7
    all_nan = jnp.full((8,), jnp.nan)
    state, _ = strategy.tell(jax.random.key(3), population, all_nan, state, params)
    assert float(state.best.score) == -5.0


def test_minus_infinity_is_a_valid_worst_score_and_nan_a_failure(strategy):
    best = strategies.BestSoFar(jnp.zeros(2, jnp.int32), jnp.asarray(-jnp.inf))
    population = jnp.asarray([[1, 1], [2, 2], [3, 3]], jnp.int32)
    best = strategies.update_best(best, population, jnp.asarray([-jnp.inf, -3.0, jnp.nan]))
    assert float(best.score) == -3.0
    np.testing.assert_array_equal(best.genotype, [2, 2])
    best = strategies.update_best(best, population, jnp.asarray([jnp.nan, -jnp.inf, -2.5]))
    assert float(best.score) == -2.5
    np.testing.assert_array_equal(best.genotype, [3, 3])
    best = strategies.update_best(best, population, jnp.asarray([-jnp.inf, jnp.nan, -jnp.inf]))
    assert float(best.score) == -2.5  # neither -inf nor NaN displaces a finite best
    # tell counts NaN as failed, never -inf.
    params = strategy.default_params
    state = strategy.init(jax.random.key(0), params)
    cells, state = strategy.ask(jax.random.key(1), state, params)
    scores = jnp.full((8,), -jnp.inf).at[0].set(jnp.nan)
    _, metrics = strategy.tell(jax.random.key(2), cells, scores, state, params)
    assert int(metrics["num_failed"]) == 1
