"""The search core: fitness sources, REA ageing, evolution's budget, NSGA-II's sorting,
and every strategy jitted once, vmapped over seeds, seed-dependent, repeatable, NaN-proof."""

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import errors, experiment, fitness, pareto, search, strategies
from jaxnas.spaces import nb201
from jaxnas.strategies.rea import tournament_parent

from conftest import load_config

SPACE = nb201.space()


def _table(seed=0, nan_fraction=0.3):
    """f32[15625] random fitness by genotype code, a fraction of cells NaN (failed)."""
    rng = np.random.default_rng(seed)
    table = rng.normal(size=SPACE.size).astype(np.float32)
    table[rng.random(SPACE.size) < nan_fraction] = np.nan
    return table


TABLE = _table()
COST = np.random.default_rng(1).uniform(1.0, 10.0, SPACE.size).astype(np.float32)


def test_genotype_code_is_the_row_of_enumerate():
    codes = fitness.genotype_code(SPACE)(jnp.asarray(SPACE.enumerate()))
    np.testing.assert_array_equal(codes, np.arange(SPACE.size))


def test_lookup_gathers_and_score_table_draws_one_of_k():
    population = jnp.asarray(SPACE.enumerate()[[7, 0, 15624]])
    got = fitness.lookup(SPACE, np.arange(SPACE.size, dtype=np.float32))(None, population)
    np.testing.assert_array_equal(got, [7.0, 0.0, 15624.0])
    two = np.stack([np.arange(SPACE.size), -np.arange(SPACE.size)], 1).astype(np.float32)
    chex.assert_shape(fitness.lookup(SPACE, two)(None, population), (3, 2))

    k = 4
    table = np.arange(SPACE.size * k, dtype=np.float32).reshape(SPACE.size, k)
    draw = fitness.score_table(SPACE, table)
    cell = jnp.repeat(population[:1], 64, axis=0)  # cell 7, evaluated 64 times
    values = np.asarray(draw(jax.random.key(0), cell))
    assert set(values) <= set(table[7]) and len(set(values)) > 1
    np.testing.assert_array_equal(values, draw(jax.random.key(0), cell))


def test_rea_ageing_kills_the_oldest_even_when_it_is_the_fittest():
    strategy = strategies.rea(SPACE, 3, children_per_step=1)
    params = {"tournament_size": jnp.asarray(3, jnp.int32)}  # the whole population
    state = strategy.init(jax.random.key(0), params)
    members = jnp.asarray(SPACE.enumerate()[[10, 20, 30]])
    for i, f in enumerate([1.0, 5.0, 3.0]):  # the initial population, born 0, 1, 2
        asked, state = strategy.ask(jax.random.key(i), state, params)
        np.testing.assert_array_equal(asked[0], state.initial[i])
        state, _ = strategy.tell(None, members[i : i + 1], jnp.asarray([f]), state, params)
    np.testing.assert_array_equal(state.born, [0, 1, 2])

    # Tournament of all three: the parent is the fittest (slot 1, fitness 5).
    child, state = strategy.ask(jax.random.key(7), state, params)
    assert int(np.sum(child[0] != members[1])) == 1  # one-position mutation of slot 1
    state, _ = strategy.tell(None, child, jnp.asarray([0.0]), state, params)
    np.testing.assert_array_equal(state.born, [3, 1, 2])  # slot 0 (born 0) died
    np.testing.assert_array_equal(state.fitness, [0.0, 5.0, 3.0])

    # The next child replaces slot 1, the fittest member, because it is now the oldest.
    child, state = strategy.ask(jax.random.key(8), state, params)
    state, _ = strategy.tell(None, child, jnp.asarray([jnp.nan]), state, params)
    np.testing.assert_array_equal(state.born, [3, 4, 2])
    np.testing.assert_array_equal(state.fitness, [0.0, -np.inf, 3.0])
    assert float(state.best.score) == 5.0  # the best of the history survives ageing
    np.testing.assert_array_equal(state.best.genotype, members[1])


def test_tournament_draws_only_valid_members_and_skips_failed_ones():
    fitness_ = jnp.asarray([9.0, -jnp.inf, 2.0, 1.0])
    valid = jnp.asarray([False, True, True, True])
    parents = jax.vmap(lambda k: tournament_parent(k, fitness_, valid, 2))(
        jax.random.split(jax.random.key(0), 200)
    )
    # Never the empty slot 0; slot 1 (-inf) loses every pair it is in.
    assert set(np.asarray(parents).tolist()) == {2, 3}


def test_area_seeds_rea_with_the_top_n_by_the_warmup_proxy():
    warm = fitness.lookup(SPACE, TABLE)
    strategy = strategies.rea(SPACE, 5, children_per_step=1, warmup=warm, warmup_size=50)
    state = strategy.init(jax.random.key(3), strategy.default_params)
    candidates = SPACE.sample(jax.random.split(jax.random.key(3))[0], 50)
    scores = np.nan_to_num(np.asarray(warm(None, candidates)), nan=-np.inf)
    expected = np.sort(scores)[::-1][:5]
    np.testing.assert_array_equal(np.asarray(warm(None, state.initial)), expected)


def test_evolution_rejects_over_budget_children_and_evicts_the_lowest():
    allowed = fitness.within_budget(SPACE, COST, 4.0)
    strategy = strategies.evolution(SPACE, 6, children_per_step=2, constraint=allowed)
    state, metrics = jax.jit(lambda k: search.run(k, strategy, fitness.lookup(SPACE, TABLE), 40))(
        jax.random.key(0)
    )
    assert np.all(np.asarray(allowed(state.members)))
    assert float(COST[fitness.genotype_code(SPACE)(state.best.genotype)]) <= 4.0
    # Lowest-score eviction: the survivors are the top 6 of every evaluation (a cell
    # evaluated twice counts twice; over-budget and failed ones count as -inf).
    seen = np.asarray(metrics["genotypes"]).reshape(-1, 6)
    ok = np.asarray(allowed(jnp.asarray(seen)))
    values = np.nan_to_num(np.asarray(metrics["fitness"]).reshape(-1), nan=-np.inf)
    top = np.sort(np.where(ok, values, -np.inf))[::-1][:6]
    np.testing.assert_array_equal(np.sort(np.asarray(state.fitness))[::-1], top)
    assert int(np.sum(~ok)) < ok.size // 4  # rejection redraws keep most children valid


def test_nondominated_rank_crowding_and_hypervolume_on_a_hand_case():
    # Maximised: (3,1) (2,2) (1,3) form the front; (1,1) is dominated by (2,2); NaN last.
    points = jnp.asarray([[3.0, 1.0], [2.0, 2.0], [1.0, 3.0], [1.0, 1.0], [jnp.nan, 5.0]])
    rank = pareto.nondominated_rank(points)
    np.testing.assert_array_equal(rank[:4], [0, 0, 0, 1])
    assert int(rank[4]) > 1  # a failed point is dominated by everything finite
    crowd = np.asarray(pareto.crowding_distance(points, rank))
    assert np.isinf(crowd[0]) and np.isinf(crowd[2])
    np.testing.assert_allclose(crowd[1], 2.0)  # (3-1)/2 + (3-1)/2
    assert crowd[4] == 0.0
    np.testing.assert_array_equal(np.sort(pareto.front(np.asarray(points))), [0, 1, 2])
    # Staircase above (0, 0): 3*1 + 2*(2-1) + 1*(3-2) = 6.
    assert pareto.hypervolume_2d(np.asarray(points), (0.0, 0.0)) == 6.0


def test_time_budget_stops_the_search():
    strategy = strategies.rea(SPACE, 3, children_per_step=1)
    _, metrics = search.run(
        jax.random.key(0),
        strategy,
        fitness.lookup(SPACE, TABLE),
        10,
        cost_fn=lambda p: jnp.full(p.shape[:1], 1.0),
        time_budget=5.5,
    )
    np.testing.assert_array_equal(metrics["evaluated"], [True] * 6 + [False] * 4)
    assert int(metrics["num_evaluations"][-1]) == 6
    assert float(metrics["simulated_time"][-1]) == 6.0


def _cases():
    warm = fitness.lookup(SPACE, _table(seed=5))
    two = fitness.lookup(SPACE, np.stack([TABLE, -COST], 1))
    return {
        "random_search": (strategies.random_search(SPACE, 8), None),
        "rea": (strategies.rea(SPACE, 8, children_per_step=2), None),
        "area": (strategies.rea(SPACE, 8, 2, warmup=warm, warmup_size=40), None),
        "evolution": (
            strategies.evolution(SPACE, 8, 2, constraint=fitness.within_budget(SPACE, COST, 6.0)),
            None,
        ),
        "nsga2": (strategies.nsga2(SPACE, 8, num_objectives=2), two),
    }


@pytest.mark.parametrize("name", sorted(_cases()))
def test_strategy_jits_once_vmaps_differs_across_seeds_repeats_and_skips_nan(name):
    strategy, score = _cases()[name]
    score = score or fitness.lookup(SPACE, TABLE)
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def many(keys):
        return search.run_seeds(keys, strategy, score, 12)

    keys = jax.random.split(jax.random.key(0), 4)
    state, metrics = many(keys)
    again, _ = many(keys)
    other, _ = many(jax.random.split(jax.random.key(1), 4))  # same shapes: no retrace
    chex.assert_trees_all_equal(state, again)
    best = np.asarray(state.best.genotype)
    assert len({tuple(g) for g in best}) > 1 or not np.array_equal(
        metrics["genotypes"][0], metrics["genotypes"][1]
    )
    assert not np.array_equal(np.asarray(other.best.genotype), best)
    codes = np.asarray(fitness.genotype_code(SPACE)(jnp.asarray(best)))
    assert not np.any(np.isnan(TABLE[codes]))  # NaN never selected
    np.testing.assert_array_equal(TABLE[codes], np.asarray(state.best.score))
    assert np.all(np.diff(np.asarray(metrics["best_score"]), axis=1) >= 0)
    # One seed alone gives the same run as inside the vmapped program.
    alone, _ = jax.jit(lambda k: search.run(k, strategy, score, 12))(keys[2])
    chex.assert_trees_all_equal(alone.best, jax.tree.map(lambda v: v[2], state.best))


def test_nsga2_front_holds_no_dominated_cell():
    two = np.stack([TABLE, -COST], 1)
    strategy = strategies.nsga2(SPACE, 16, num_objectives=2)
    _, metrics = jax.jit(lambda k: search.run(k, strategy, fitness.lookup(SPACE, two), 10))(
        jax.random.key(0)
    )
    scored = np.asarray(metrics["fitness"]).reshape(-1, 2)
    on_front = scored[pareto.front(scored)]
    assert not np.isnan(on_front).any()
    for p in on_front:
        assert not np.any(np.all(scored >= p, 1) & np.any(scored > p, 1))


def _config(name, arg):
    return load_config(os.path.join("configs", name), arg)


def test_rea_config_reports_intervals_and_a_curve(tmp_path, shared_data):
    config = _config("nb201_rea.py", "runs=3,evals=20")
    summary = experiment.run(config, str(tmp_path))
    runs = [json.loads(line) for line in open(tmp_path / "runs.jsonl")]
    assert len(runs) == 3 and all(r["num_evaluations"] == 20 for r in runs)
    assert len({r["arch"] for r in runs}) > 1 or len({r["score"] for r in runs}) > 1
    for r in runs:
        assert r["cifar10_test"] <= r["optimal_in_sample/cifar10_test"]
        assert 0 < r["cifar10_val_acc"] < 100
    lo, hi = summary["cifar10_test"]["ci95"]
    assert lo <= summary["cifar10_test"]["mean"] <= hi
    assert tuple(summary["published"]["cifar10_test"]) == (93.92, 0.30)
    assert os.path.exists(tmp_path / "curve.json")


def test_search_config_errors_name_the_problem(tmp_path, shared_data):
    config = _config("nb201_rea.py", "runs=1,evals=2")
    config.search.params.tournament_sise = 3
    with pytest.raises(errors.ConfigError, match="tournament_sise"):
        experiment.run(config, str(tmp_path))
    config = _config("nb201_rea.py", "runs=1,evals=2")
    config.search.fitness.column = "no_such_column"
    with pytest.raises(errors.BenchmarkError, match="no_such_column"):
        experiment.run(config, str(tmp_path))
    config = _config("nb201_rea.py", "runs=1,evals=2")
    config.search.cost.path = config.search.fitness.path
    config.search.cost.column = "cifar10_test_12ep"
    config.search.cost.objective = True
    with pytest.raises(errors.ConfigError, match="num_objectives"):
        experiment.run(config, str(tmp_path))


def test_naswot_search_by_score_table_draws_stored_scores(tmp_path, shared_data):
    # A stand-in score table in score mode's format: K = 2 scores per cell.
    rng = np.random.default_rng(0)
    table = rng.normal(size=(SPACE.size, 2)).round(3)
    with open(tmp_path / "scores.jsonl", "w") as f:
        for g, scores in zip(SPACE.enumerate(), table):
            row = {"arch": SPACE.to_string(g), "genotype": g.tolist()}
            row["naswot"] = {"scores": scores.tolist(), "score": float(scores.mean())}
            f.write(json.dumps(row) + "\n")
    config = _config("nb201_naswot_search.py", f"runs=6,n=10,table={tmp_path}")
    summary = experiment.run(config, str(tmp_path / "search"))
    runs = [json.loads(line) for line in open(tmp_path / "search" / "runs.jsonl")]
    assert len(runs) == 6 and all(r["num_evaluations"] == 10 for r in runs)
    for r in runs:
        row = SPACE.enumerate().tolist().index(SPACE.from_string(r["arch"]).tolist())
        assert np.float32(r["score"]) in table[row].astype(np.float32)
    assert summary["cifar10_test"]["n"] == 6
    assert tuple(summary["published"]["cifar10_test"]) == (92.44, 1.13)  # N = 10


def test_combined_table_ranks_the_whole_space_and_marks_missing_cells():
    a = np.asarray([[1.0], [2.0], [3.0], [np.nan]], np.float32)
    b = np.asarray([[30.0], [10.0], [20.0], [0.0]], np.float32)
    # Ascending ranks over the three complete cells: a (1, 2, 3), b (3, 1, 2).
    got = fitness.combined_table([a, b], "rank_sum", "mean")
    np.testing.assert_allclose(got[:3], [4.0, 3.0, 5.0])
    assert np.isnan(got[3])
    with pytest.raises(errors.ConfigError, match="for LIBRA"):
        fitness.combined_table([a, b], "libra", "mean")
    with pytest.raises(errors.ConfigError, match=">= 2 proxies"):
        fitness.combined_table([a], "log_rank", "mean")


def test_search_by_a_combined_score_table(tmp_path, shared_data):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, SPACE.size))
    with open(tmp_path / "scores.jsonl", "w") as f:
        for g, x, y in zip(SPACE.enumerate(), a, b):
            row = {"arch": SPACE.to_string(g), "genotype": g.tolist()}
            row["naswot"] = {"scores": [x], "score": x}
            row["synflow"] = {"scores": [y], "score": y}
            f.write(json.dumps(row) + "\n")
    config = _config("nb201_naswot_search.py", f"runs=4,n=10,table={tmp_path}")
    config.proxies = ("naswot", "synflow")
    config.search.fitness.combine = "rank_sum"
    experiment.run(config, str(tmp_path / "search"))
    ranks = np.argsort(np.argsort(a)) + np.argsort(np.argsort(b)) + 2.0  # 1-based, no ties
    runs = [json.loads(line) for line in open(tmp_path / "search" / "runs.jsonl")]
    assert len(runs) == 4
    for r in runs:
        row = SPACE.enumerate().tolist().index(SPACE.from_string(r["arch"]).tolist())
        assert r["score"] == pytest.approx(ranks[row])
    config.search.fitness.source = "proxy"
    with pytest.raises(errors.ConfigError, match="needs search.fitness.source='table'"):
        experiment.run(config, str(tmp_path / "live"))
    config.search.fitness.combine = ""
    config.search.fitness.proxies = ("naswot", "synflow")
    with pytest.raises(errors.ConfigError, match="set search.fitness.combine"):
        experiment.run(config, str(tmp_path / "proxies"))
