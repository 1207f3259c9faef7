"""Combiners against hand-worked examples; LIBRA's IG and bias against direct numpy."""

import collections
import math
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxnas import benchmarks, errors
from jaxnas.proxies import combine

# Three cells, three proxies; column ranks (1 = worst): [1,2,3], [1,3,2], [2,1,3].
SCORES = np.asarray([[1.0, 1.0, 1.0], [2.0, 3.0, 0.0], [3.0, 2.0, 2.0]], np.float32)


def test_rank_sum_hand_worked():
    np.testing.assert_allclose(combine.rank_sum(SCORES), [4.0, 6.0, 8.0])


def test_log_rank_hand_worked():
    expected = [
        math.log(1 / 3) + math.log(1 / 3) + math.log(2 / 3),
        math.log(2 / 3) + math.log(1.0) + math.log(1 / 3),
        math.log(1.0) + math.log(2 / 3) + math.log(1.0),
    ]
    np.testing.assert_allclose(combine.log_rank(SCORES), expected, rtol=1e-6)


def test_vote_hand_worked():
    # 1 beats 0 (2 of 3 proxies), 2 beats 0 (3 of 3), 2 beats 1 (2 of 3).
    np.testing.assert_allclose(combine.vote(SCORES), [0.0, 1.0, 2.0])
    # A tied proxy abstains: one proxy for cell 1, the other tied -> 1 beats 0.
    np.testing.assert_allclose(combine.vote([[1.0, 1.0], [1.0, 2.0]]), [0.0, 1.0])
    # One proxy each way: no majority, nobody wins.
    np.testing.assert_allclose(combine.vote([[1.0, 2.0], [2.0, 1.0]]), [0.0, 0.0])


def test_ties_share_ranks_and_nan_rows_fail():
    np.testing.assert_allclose(combine.ranks([[1.0], [1.0], [5.0]])[:, 0], [1.5, 1.5, 3.0])
    scores = SCORES.copy()
    scores[1, 2] = np.nan
    for fn in (combine.rank_sum, combine.vote, combine.log_rank):
        out = np.asarray(fn(scores))
        assert np.isnan(out[1]) and np.isfinite(out[[0, 2]]).all(), fn.__name__


def test_libra_fuses_chosen_columns():
    columns = (2, 0, 1)
    np.testing.assert_allclose(combine.libra(SCORES, columns), combine.rank_sum(SCORES))
    np.testing.assert_allclose(
        combine.libra(SCORES, (0, 1), "log_rank"), combine.log_rank(SCORES[:, :2]), rtol=1e-6
    )
    with pytest.raises(errors.ConfigError, match="out of range"):
        combine.libra(SCORES, (0, 3))
    with pytest.raises(errors.ConfigError, match="unknown LIBRA fusion"):
        combine.libra(SCORES, (0, 1, 2), "mean")


def test_combiners_jit_once_and_shape_errors():
    scores = jax.random.normal(jax.random.key(0), (50, 4))
    for name in ("rank_sum", "vote", "log_rank"):
        fn = combine.make_combiner(name)
        chex.clear_trace_counter()
        jitted = jax.jit(chex.assert_max_traces(fn, n=1))
        out = jitted(scores)
        jitted(scores + 1.0)
        chex.assert_shape(out, (50,))
        np.testing.assert_allclose(out, fn(scores), rtol=1e-6)
    with pytest.raises(errors.ShapeError, match=r"f32\[P, M\]"):
        combine.rank_sum(jnp.zeros((4,)))
    with pytest.raises(errors.ConfigError, match="unknown combiner"):
        combine.make_combiner("mean")
    with pytest.raises(errors.ConfigError, match="needs a selection"):
        combine.make_combiner("libra")


def _entropy_loops(*variables):
    counts = collections.Counter(zip(*[list(v) for v in variables]))
    n = sum(counts.values())
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _bins_loops(values, num_bins):
    # Equal-frequency binning written out: the average rank decides the bin.
    values = list(values)
    out = []
    for v in values:
        below = sum(1 for w in values if w < v)
        equal = sum(1 for w in values if w == v)
        rank = below + (equal + 1) / 2.0
        out.append(min(int((rank - 0.5) * num_bins / len(values)), num_bins - 1))
    return out


def test_information_gain_matches_direct_computation():
    rng = np.random.default_rng(1)
    y = rng.normal(size=300)
    z1 = y + rng.normal(size=300)
    z = np.round(y + 2.0 * rng.normal(size=300), 1)  # with ties
    for bins in (3, 8):
        by, b1, bz = (_bins_loops(v, bins) for v in (y, z1, z))
        np.testing.assert_array_equal(combine.discretize(z, bins), bz)
        expected = (_entropy_loops(by, b1) - _entropy_loops(b1)) - (
            _entropy_loops(by, b1, bz) - _entropy_loops(b1, bz)
        )
        assert combine.information_gain(y, z1, z, bins) == pytest.approx(expected, abs=1e-12)
    # A monotone function of z1 adds nothing; an independent variable adds >= 0.
    assert combine.information_gain(y, z1, z1**3, 8) == pytest.approx(0.0, abs=1e-12)


def test_bias_matches_direct_computation():
    rng = np.random.default_rng(2)
    params = rng.lognormal(size=200)
    values = params + rng.normal(size=200)
    rank_v = np.argsort(np.argsort(values)).astype(float)
    rank_p = np.argsort(np.argsort(params)).astype(float)
    rv, rp = rank_v - rank_v.mean(), rank_p - rank_p.mean()
    expected = float(np.sum(rv * rp) / np.sqrt(np.sum(rv**2) * np.sum(rp**2)))
    assert combine.bias(values, params) == pytest.approx(expected, abs=1e-12)


def test_libra_select_follows_algorithm_one():
    rng = np.random.default_rng(3)
    n = 2000
    params = rng.normal(size=n)
    y = params + rng.normal(size=n)
    z1 = y + 0.2 * rng.normal(size=n)
    twin = z1**3  # same ranks as z1: zero information gain, same Spearman
    biased = y + 0.3 * rng.normal(size=n) + 0.3 * params
    unbiased = y + 0.3 * rng.normal(size=n) - 0.3 * params
    weak = rng.normal(size=n)
    scores = np.stack([z1, twin, biased, unbiased, weak], axis=1)
    names = ["z1", "twin", "biased", "unbiased", "weak"]
    sel = combine.libra_select(scores, y, params, names)
    assert sel.columns[:2] == (0, 1)
    assert set(sel.candidates) == {"twin", "biased", "unbiased"}
    assert sel.info_gain["twin"] == pytest.approx(0.0, abs=1e-12)
    acc_bias = combine.bias(y, params)
    closest = min(
        ("biased", "unbiased"),
        key=lambda k: abs(combine.bias(scores[:, names.index(k)], params) - acc_bias),
    )
    assert sel.names[2] == closest
    assert sel.accuracy_bias == pytest.approx(acc_bias)
    assert not sel.widened and sel.num_calibration == n


def test_libra_select_widens_a_narrow_band_and_checks_input():
    rng = np.random.default_rng(4)
    y = rng.normal(size=100)
    scores = np.stack([y, rng.normal(size=100), rng.normal(size=100)], axis=1)
    sel = combine.libra_select(scores, y, rng.normal(size=100), ["a", "b", "c"])
    assert sel.widened and sel.names[0] == "a" and set(sel.names) == {"a", "b", "c"}
    with pytest.raises(errors.ShapeError, match="len\\(names\\)"):
        combine.libra_select(scores, y, y, ["a", "b"])
    with pytest.raises(errors.ConfigError, match="chooses 3"):
        combine.libra_select(scores[:, :2], y, y, ["a", "b"])


def test_disjoint_split_never_overlaps_and_is_seeded():
    ev, cal = combine.disjoint_split(500, 200, 250, seed=7)
    assert len(ev) == 200 and len(cal) == 250
    assert not set(ev.tolist()) & set(cal.tolist())
    ev2, cal2 = combine.disjoint_split(500, 200, 250, seed=7)
    np.testing.assert_array_equal(ev, ev2)
    np.testing.assert_array_equal(cal, cal2)
    with pytest.raises(errors.ConfigError, match="cannot draw"):
        combine.disjoint_split(10, 6, 5, seed=0)
    with pytest.raises(errors.ConfigError, match=">= 1"):
        combine.disjoint_split(10, 0, 5, seed=0)


def test_ridge_matches_closed_form_and_picks_lambda_by_loo():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = (x @ np.asarray([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.01 * rng.normal(size=60)).astype(np.float32)
    model = combine.fit_ridge(x, y)
    assert float(model.lam) == pytest.approx(1e-3)  # nearly noiseless: least shrinkage wins
    xs = (x - x.mean(0)) / x.std(0)
    lam = float(model.lam)
    w = np.linalg.solve(xs.T @ xs + lam * np.eye(5), xs.T @ (y - y.mean()))
    np.testing.assert_allclose(model.weights, w, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(model.predict(x), xs @ w + y.mean(), atol=1e-3)
    # Pure noise: leave-one-out prefers heavy shrinkage.
    noise = combine.fit_ridge(x, rng.normal(size=60).astype(np.float32))
    assert float(noise.lam) >= 10.0


@pytest.mark.parametrize("k, d", [(30, 5), (10, 40)])
def test_ridge_leave_one_out_equals_refitting(k, d):
    rng = np.random.default_rng(k)
    x = rng.normal(size=(k, d))
    y = x[:, 0] + rng.normal(size=k)
    model = combine.fit_ridge(x, y)
    xs = np.concatenate([np.ones((k, 1)), (x - x.mean(0)) / x.std(0)], axis=1)
    for lam, got in zip(combine.RIDGE_LAMBDAS, np.asarray(model.loo_errors)):
        penalty = lam * np.diag([0.0] + [1.0] * d)  # the intercept is not shrunk
        errors_ = []
        for i in range(k):
            a, b = np.delete(xs, i, 0), np.delete(y, i)
            theta = np.linalg.solve(a.T @ a + penalty, a.T @ b)
            errors_.append((y[i] - xs[i] @ theta) ** 2)
        assert got == pytest.approx(np.mean(errors_), rel=2e-3), lam
    with pytest.raises(errors.DataError, match="NaN"):
        combine.fit_ridge(np.full((5, 2), np.nan), np.zeros(5))


def test_mlp_learns_what_ridge_cannot_and_is_seeded():
    # y = x0^2 is invisible to a linear fit; the MLP must rank unseen cells by it.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x[:, 0] ** 2).astype(np.float32)
    key = jax.random.key(0)
    model = combine.fit_mlp(x[:200], y[:200], key)
    chex.assert_shape(model.final_loss, (combine.MLPSettings().members,))
    predicted = np.asarray(model.predict(x[200:]))
    chex.assert_shape(predicted, (100,))
    ridge = np.asarray(combine.fit_ridge(x[:200], y[:200]).predict(x[200:]))
    assert stats.spearmanr(predicted, y[200:])[0] > 0.9
    assert abs(stats.spearmanr(ridge, y[200:])[0]) < 0.3
    again = combine.fit_mlp(x[:200], y[:200], key).predict(x[200:])
    np.testing.assert_array_equal(predicted, np.asarray(again))
    other = combine.fit_mlp(x[:200], y[:200], jax.random.key(1)).predict(x[200:])
    assert not np.array_equal(predicted, np.asarray(other))


def test_a_column_constant_in_training_does_not_move_predictions():
    # A one-hot op that no training cell has: the fit learnt nothing about it, so a
    # later cell holding it is predicted as if it did not.
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(40, 2)), np.zeros((40, 1))], axis=1)
    y = x[:, 0] + rng.normal(scale=0.1, size=40)
    test = rng.normal(size=(10, 3))
    test[:, 2] = 0.0
    unseen = test.copy()
    unseen[:, 2] = 1.0
    for model in (combine.fit_mlp(x, y, jax.random.key(0)), combine.fit_ridge(x, y)):
        np.testing.assert_array_equal(model.predict(unseen), model.predict(test))


def test_mlp_rejects_bad_input():
    key = jax.random.key(0)
    with pytest.raises(errors.DataError, match="NaN"):
        combine.fit_mlp(np.full((5, 2), np.nan), np.zeros(5), key)
    with pytest.raises(errors.ShapeError, match="K >= 3"):
        combine.fit_mlp(np.zeros((2, 2)), np.zeros(2), key)
    with pytest.raises(errors.ConfigError, match=">= 1"):
        combine.fit_mlp(np.zeros((5, 2)), np.arange(5.0), key, combine.MLPSettings(steps=0))


def test_one_hot_codes():
    codes = np.asarray([[0, 2], [1, 2], [0, 4]])
    np.testing.assert_array_equal(
        combine.one_hot_codes(codes),
        [[1, 0, 1, 0], [0, 1, 1, 0], [1, 0, 0, 1]],
    )


def test_libra_on_suite_zero_nb201_calibration_is_held_apart(shared_data):
    path = os.path.join(shared_data, "nasbench201", "nb201_zc_suitezero_cifar10_9445.csv.gz")
    table = benchmarks.Benchmark.from_csv(path)
    names = ("flops", "jacov", "nwot", "params", "synflow")
    scores = np.stack([table.column(n) for n in names], axis=1)
    ev, cal = combine.disjoint_split(len(table), 300, 300, seed=0)
    assert not set(table.column("arch_str")[ev]) & set(table.column("arch_str")[cal])
    sel = combine.libra_select(
        scores[cal], table.column("val_acc")[cal], table.column("params")[cal], names
    )
    assert len(set(sel.names)) == 3
    assert sel.names[0] == max(sel.spearman, key=sel.spearman.get)
