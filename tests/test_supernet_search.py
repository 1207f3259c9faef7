"""TE-NAS pruning, Zero-Cost-PT and KNAS: hand-worked rules, loops, seeds, NaN."""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import configs, errors, experiment, supernet_search
from jaxnas.proxies import regions
from jaxnas.spaces import darts, darts_supernet, nb201
from jaxnas.strategies import knas, tenas, zc_pt

from conftest import load_config

# ----------------------------------------------------------------------------- TE-NAS


def test_round_sig_keeps_three_significant_figures():
    np.testing.assert_allclose(
        tenas.round_sig([0.123456, -0.0012349, 987.65, 0.0]), [0.123, -0.00123, 988.0, 0.0]
    )
    assert np.isnan(tenas.round_sig([np.nan]))[0]


def test_dense_rank_ties_share_a_rank():
    np.testing.assert_array_equal(
        tenas.dense_rank([0.5, 0.1, 0.1, -0.2], descending=True), [0, 1, 1, 2]
    )
    np.testing.assert_array_equal(
        tenas.dense_rank([0.3, 0.0, 0.2, 0.2], descending=False), [2, 0, 1, 1]
    )


def test_rank_sum_rule_on_a_hand_worked_case():
    # Two edges, ops (none, a, b); none is off. Candidates (0,a) (0,b) (1,a) (1,b):
    # dkappa 0.5, 0.1, 0.1, -0.2 -> ranks (descending) 0, 1, 1, 2;
    # dR 0.3, 0.0, 0.2, 0.2 -> ranks (ascending) 2, 0, 1, 1;
    # sums 2, 1, 2, 3: edge 0 prunes b (1 < 2), edge 1 prunes a (2 < 3).
    active = np.array([[False, True, True], [False, True, True]])
    dk = np.array([[np.nan, 0.5, 0.1], [np.nan, 0.1, -0.2]])
    dr = np.array([[np.nan, 0.3, 0.0], [np.nan, 0.2, 0.2]])
    out = tenas.prune_by_rank_sum(active, dk, dr, prune_number=1)
    np.testing.assert_array_equal(out, [[False, True, False], [False, False, True]])


def test_rank_sum_rounds_to_three_significant_figures_before_ranking():
    # 0.12341 and 0.12349 tie at 3 s.f.; without rounding edge 1's op a would rank
    # behind op b and the choice on edge 1 would flip.
    active = np.array([[False, True, True], [False, True, True]])
    dk = np.array([[np.nan, 0.9, 0.0], [np.nan, 0.12341, 0.12349]])
    dr = np.array([[np.nan, 0.0, 0.5], [np.nan, 0.1, 0.2]])
    out = tenas.prune_by_rank_sum(active, dk, dr, prune_number=1)
    # dk ranks: 0.9->0, 0.0->2, 0.123(both)->1; dR ranks: 0.0->0, 0.5->3, 0.1->1, 0.2->2.
    # Sums: (0,a)=0, (0,b)=5, (1,a)=2, (1,b)=3 -> edge 1 prunes a.
    np.testing.assert_array_equal(out[1], [False, False, True])


def test_nan_delta_is_pruned_first():
    active = np.array([[False, True, True, True]])
    dk = np.array([[0.0, 0.9, np.nan, -0.5]])
    dr = np.array([[0.0, -0.9, 0.1, 0.5]])
    out = tenas.prune_by_rank_sum(active, dk, dr, prune_number=1)
    np.testing.assert_array_equal(out, [[False, True, False, True]])


def test_equal_rank_sums_prune_the_larger_dkappa_first():
    # Three candidates on one edge: dkappa 0.3, 0.1, 0.2 -> ranks 0, 2, 1; dR 0.5, 0.1,
    # 0.3 -> ranks 2, 0, 1: every sum is 2. The code's ranking dictionary is filled in
    # dkappa order, so its stable sort prunes in dkappa order: 0, then 2, then 1.
    np.testing.assert_array_equal(tenas.pruning_order([0.3, 0.1, 0.2], [0.5, 0.1, 0.3]), [0, 2, 1])
    active = np.array([[False, True, True, True]])
    out = tenas.prune_by_rank_sum(
        active, np.array([[0, 0.3, 0.1, 0.2]]), np.array([[0, 0.5, 0.1, 0.3]]), prune_number=2
    )
    np.testing.assert_array_equal(out, [[False, False, True, False]])


def test_supernet_ntk_rows_run_in_pairs_on_a_cpu_only():
    assert tenas.ntk_rows_per_chunk("cpu") == 2
    assert tenas.ntk_rows_per_chunk("gpu") is None
    assert tenas.ntk_rows_per_chunk("tpu") is None


def test_edge_groups_keep_the_two_most_important_inputs_per_node():
    # One cell of 3 nodes (edges 0-1 -> node 0, 2-4 -> node 1, 5-8 -> node 2), one op
    # (index 1) left on every edge. Removing edge e scores -log kappa = table[e] and
    # regions 100 - e, so dkappa = 1 - exp(s_N - s_e) grows with table[e] and dR
    # = e / 100 with e: the rank sums order the edges, and each node keeps its two
    # largest sums. Node 0 has only two inputs and is never scored.
    table = np.array([0.0, 0.0, 0.5, -0.5, 0.1, 0.3, 0.2, -0.1, 0.0])
    active = np.zeros((9, 2), bool)
    active[:, 1] = True
    calls = []

    def score_masks(masks, valid, step):
        calls.append((step, np.asarray(valid)))
        keep = np.asarray(masks)[:, :, 1]  # bool[C, E]
        removed = np.where(~keep.all(axis=1), np.argmin(keep, axis=1), -1)
        s = np.where(removed >= 0, table[removed], 0.2)[:, None]
        r = np.where(removed >= 0, 100.0 - removed, 100.0)[:, None]
        return np.where(np.asarray(valid)[:, None], s, np.nan), r

    out, history = tenas.prune_edge_groups(score_masks, active, [[0, 1], [2, 3, 4], [5, 6, 7, 8]])
    # Node 1: dkappa ranks (descending table 0.5, -0.5, 0.1): 0, 2, 1; dR ranks
    # (ascending 0.02, 0.03, 0.04): 0, 1, 2; sums 0, 3, 3 -> edge 2 pruned.
    # Node 2: table 0.3, 0.2, -0.1, 0.0 -> ranks 0, 1, 3, 2; dR ranks 0, 1, 2, 3;
    # sums 0, 2, 5, 5 -> edges 5 and 6 pruned.
    np.testing.assert_array_equal(out[:, 1], [1, 1, 0, 1, 1, 0, 0, 1, 1])
    assert [c[0] for c in calls] == [1, 2] and [h["group"] for h in history] == [
        [2, 3, 4],
        [5, 6, 7, 8],
    ]
    # Node 2 is scored on the supernet that node 1's pruning left.
    assert calls[1][1].sum() == 1 + 4


def test_edge_groups_need_single_op_edges():
    active = np.ones((5, 3), bool)
    with pytest.raises(errors.ConfigError, match="one active op per edge"):
        tenas.prune_edge_groups(lambda *a: None, active, [[2, 3, 4]])


def test_tenas_darts_genotype_is_a_valid_darts_cell():
    rng = np.random.default_rng(0)
    num_edges = len(darts_supernet.edges())
    active = np.zeros((2 * num_edges, len(darts_supernet.TENAS_OPS)), bool)
    for cell in range(2):
        for group in darts_supernet.edge_groups():
            for e in rng.choice(group, 2, replace=False):
                active[cell * num_edges + e, rng.integers(1, 8)] = True
    genotype = darts_supernet.to_genotype(active, darts.NB301_OPS)
    space = darts.space()
    space.validate(genotype[None])
    np.testing.assert_array_equal(space.from_string(space.to_string(genotype)), genotype)
    # Node 0 of the normal cell: its two inputs in order, with their ops by name.
    kept = [e for e in (0, 1) if active[e].any()]
    assert [genotype[0], genotype[2]] == kept
    names = [darts_supernet.TENAS_OPS[int(np.argmax(active[e]))] for e in kept]
    assert [darts.NB301_OPS[genotype[1]], darts.NB301_OPS[genotype[3]]] == names
    active[0] = active[1] = True
    with pytest.raises(errors.ArchitectureError, match="cell 0 node 0"):
        darts_supernet.to_genotype(active, darts.NB301_OPS)


def test_darts_supernet_taps_and_weights_follow_the_active_ops():
    weights = np.zeros((2, 14, 8), np.float32)
    weights[:, :, 2] = 1.0  # sep_conv_3x3 everywhere
    net = darts_supernet.network(weights, **darts_supernet.TENAS_REGIONS_NETWORK)
    x = jax.random.normal(jax.random.key(0), (16, 3, 3, 1))
    params = net.init(jax.random.key(1), x)
    logits, taps = net.apply(params, x, taps=True)
    chex.assert_shape(logits, (16, 10))
    flat = {"/".join(k): v for k, v in _flatten(taps)}
    assert float(flat["cell0/edge_0/sep_conv_3x3_mid"].weight) == 1.0
    assert float(flat["cell0/edge_0/sep_conv_5x5_mid"].weight) == 0.0
    # Every edge's input is read by one ReLU (the active separable conv).
    assert float(flat["cell1/edge_13/relu_input"].weight) == 1.0
    with pytest.raises(errors.ArchitectureError, match=r"f32\[2, 14, 8\]"):
        darts_supernet.network(np.zeros((14, 8)))


def _flatten(tree, prefix=()):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _flatten(v, prefix + (k,))
        else:
            yield prefix + (k,), v


def test_removal_candidates_mark_single_op_edges_as_not_candidates():
    active = np.array([[False, True, True], [False, False, True]])
    masks, real = tenas.removal_candidates(active)
    chex.assert_shape(masks, (7, 2, 3))
    np.testing.assert_array_equal(real, [True, False, True, True, False, False, False])
    np.testing.assert_array_equal(masks[0], active)
    np.testing.assert_array_equal(masks[1 + 2], [[False, True, False], [False, False, True]])
    np.testing.assert_allclose(tenas.op_weights(active), [[0, 0.5, 0.5], [0, 0, 1]])


def _fake_round(seed, fail=None):
    """A stand-in for the two proxies: seeded per (round, mask), NaN for `fail`."""

    def score_round(active, round_index):
        masks, _ = tenas.removal_candidates(active)
        key = jax.random.fold_in(jax.random.key(seed), round_index)
        table = jax.random.normal(key, (2,) + masks.shape[1:])
        w = np.asarray(tenas.op_weights(masks))
        s = np.einsum("ceo,eo->c", w, np.asarray(table[0]))[:, None].repeat(3, 1)
        r = 100.0 + 10.0 * np.einsum("ceo,eo->c", w, np.asarray(table[1]))[:, None].repeat(3, 1)
        if fail is not None:
            s[1 + fail[0] * 5 + fail[1]] = np.nan
        return s, r

    return score_round


def test_pruning_loop_ends_with_one_op_per_edge_and_a_valid_genotype():
    genotype, history = tenas.prune(_fake_round(0), 6, 5, tenas.NB201_PRUNE_NUMBER)
    assert len(history) == 3  # 4 ops -> 3 rounds of one per edge
    chex.assert_shape(genotype, (6,))
    assert np.all(genotype >= 1)  # none is never kept
    arch = nb201.to_string(genotype)
    np.testing.assert_array_equal(nb201.from_string(arch), genotype)
    assert [int(np.sum(h["active"])) for h in history] == [24, 18, 12]


def test_pruning_is_deterministic_per_seed_and_differs_across_seeds():
    runs = [tenas.prune(_fake_round(s), 6, 5, 1)[0] for s in (0, 0, 1, 2, 3)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert any(not np.array_equal(runs[0], g) for g in runs[2:])


def test_a_failed_candidate_never_keeps_its_op():
    genotype, history = tenas.prune(_fake_round(0, fail=(2, 3)), 6, 5, 1)
    assert history[0]["num_failed"] == 3
    assert not history[1]["active"][2][3]
    assert genotype[2] != 3


# ---------------------------------------------------------------------- Zero-Cost-PT


def _linear_scorer(table, nan_op=None):
    """Removal scores linear in the op weights: removing op o of edge e costs table[e, o]."""

    def score(key, weights):
        del key
        s = jnp.sum(weights * table[None], axis=(1, 2))
        if nan_op is not None:
            s = s.at[nan_op].set(jnp.nan)
        return s

    return score


def test_zc_pt_keeps_the_op_whose_removal_lowers_the_score_most():
    table = jax.random.uniform(jax.random.key(0), (6, 5))
    run = jax.jit(lambda k: zc_pt.propose(k, _linear_scorer(table), 6, 5))
    genotype, scores, failed = run(jax.random.key(1))
    # With linear scores, removing op o scores (const - table[e, o] / 5): the arg-min is
    # the op with the largest table entry, whatever the edge order.
    np.testing.assert_array_equal(genotype, np.argmax(np.asarray(table), axis=1))
    chex.assert_shape(scores, (6, 5))
    assert not bool(failed)


def test_zc_pt_nan_never_wins_and_seeds_change_the_edge_order():
    table = jnp.zeros((6, 5)).at[:, 2].set(1.0)
    genotype, _, failed = zc_pt.propose(jax.random.key(0), _linear_scorer(table, nan_op=2), 6, 5)
    assert not np.any(np.asarray(genotype) == 2)
    assert not bool(failed)

    def order_probe(key):
        # The scores depend on which edges are already decided, so the result depends
        # on the (seeded) edge order.
        def score(k, weights):
            del k
            decided = jnp.sum(jnp.max(weights, axis=2) == 1.0)
            return jnp.arange(5.0) * (decided % 2 * 2 - 1).astype(jnp.float32)

        return zc_pt.propose(key, score, 6, 5)[0]

    keys = jax.random.split(jax.random.key(3), 8)
    results = np.asarray(jax.vmap(order_probe)(keys))
    np.testing.assert_array_equal(results[0], np.asarray(order_probe(keys[0])))
    assert len({tuple(r) for r in results}) > 1


def test_zc_pt_pick_ignores_failed_validation():
    pool = jnp.arange(12, dtype=jnp.int32).reshape(3, 4)
    chosen, index = zc_pt.pick(pool, jnp.array([1.0, jnp.nan, 0.5]))
    assert int(index) == 0
    np.testing.assert_array_equal(chosen, pool[0])


# ----------------------------------------------------------------------------- KNAS


def test_knas_picks_the_best_signal_among_the_top_k_scores():
    scores = jnp.array([5.0, 4.0, 3.0, 2.0, 1.0, jnp.nan])
    signal = jnp.array([10.0, 30.0, 97.0, 98.0, 99.0, 100.0])
    key = jax.random.key(0)
    # 400 draws (with replacement) from 6 cells include every cell.
    chosen, drawn = knas.select(key, scores, signal, 400, 1)
    assert set(np.asarray(drawn).tolist()) == set(range(6))
    assert int(chosen) == 0  # k=1: the best score, whatever its signal
    # k=N: the best signal among cells with a score (cell 5 failed).
    assert int(knas.select(key, scores, signal, 400, 400)[0]) == 4


def test_knas_runs_vmap_over_seeds_repeat_and_differ():
    scores = jax.random.normal(jax.random.key(0), (50,))
    signal = jax.random.normal(jax.random.key(1), (50,))
    keys = jax.random.split(jax.random.key(2), 16)
    run = jax.jit(lambda k: knas.select_runs(k, scores, signal, 10, 3))
    first, second = run(keys), run(keys)
    chex.assert_trees_all_equal(first, second)
    chex.assert_shape(first[1], (16, 10))
    assert len(set(np.asarray(first[0]).tolist())) > 1


def test_knas_never_picks_a_failed_score_or_missing_signal():
    scores = jnp.array([jnp.nan, jnp.nan, 1.0, 0.0])
    signal = jnp.array([100.0, 100.0, jnp.nan, 50.0])
    keys = jax.random.split(jax.random.key(0), 20)
    # k = N keeps the failed cells too; they still never win on their signal.
    chosen, drawn = knas.select_runs(keys, scores, signal, 20, 20)
    assert set(np.asarray(chosen).tolist()) == {3}
    assert np.isin(0, np.asarray(drawn))


@pytest.mark.parametrize("bad", [dict(top_k=0), dict(top_k=5, num_samples=3)])
def test_knas_config_errors(tmp_path, bad):
    with pytest.raises(errors.ConfigError):
        list(
            supernet_search._knas(
                _knas_config(bad), nb201.space(), bad, jax.random.key(0), 0, str(tmp_path)
            )
        )


def _knas_config(params):
    config = configs.default_config()
    config.search.params = params
    return config


@pytest.mark.slow
def test_tenas_on_real_proxy_networks_returns_a_valid_cell(tiny_batch):
    space = nb201.space()
    scorer = jax.jit(
        tenas.supernet_scorer(
            tenas.nb201_network_fn(space),
            ntk_network=dict(channels=2, cells_per_stage=1, num_stages=1),
            regions_network=dict(regions.TENAS_REGIONS_NETWORK),
        )
    )
    x = tiny_batch["x"][:4]
    crops = jax.random.normal(jax.random.key(0), (2, 64, 3, 3, 1))

    def score_round(active, round_index):
        masks, valid = tenas.removal_candidates(active)
        keys = jax.random.split(jax.random.fold_in(jax.random.key(1), round_index), 2)
        s, r = scorer(masks, valid, keys, jnp.stack([x, x]), crops)
        assert np.all(np.isnan(np.asarray(s)[~np.asarray(valid)]))
        assert np.all(np.isfinite(np.asarray(s)[np.asarray(valid)]))
        return np.asarray(s), np.asarray(r)

    genotype, history = tenas.prune(score_round, 6, 5, 1)
    assert len(history) == 3
    nb201.space().validate(genotype[None])
    assert np.all(genotype >= 1)


def _stand_in_supernet_scorer(network_fn, ntk_network=None, regions_network=None):
    """`tenas.supernet_scorer`'s contract with a cheap score: -log kappa and regions
    linear in the op weights, by seeded tables (the wiring is under test)."""
    del network_fn, ntk_network, regions_network

    def score(masks, valid, keys, images, crops):
        del images, crops
        w = tenas.op_weights(masks)  # f32[C, E, O]
        tables = jax.vmap(lambda k: jax.random.normal(k, (2,) + w.shape[1:]))(keys)
        s = jnp.einsum("ceo,reo->cr", w, tables[:, 0])
        r = 100.0 + jnp.einsum("ceo,reo->cr", w, tables[:, 1])
        return jnp.where(valid[:, None], s, jnp.nan), jnp.where(valid[:, None], r, jnp.nan)

    return score


def test_tenas_on_darts_end_to_end_gives_a_darts_cell(tmp_path, monkeypatch):
    monkeypatch.setattr(tenas, "supernet_scorer", _stand_in_supernet_scorer)
    rng = np.random.default_rng(0)
    path = tmp_path / "images.npz"
    np.savez(
        path,
        train_images=rng.integers(0, 256, (32, 8, 8, 3), np.uint8),
        train_labels=rng.integers(0, 10, 32),
    )
    config = load_config("configs/darts_tenas_search.py", "runs=2,repeats=2,crops=4,ntk_batch=3")
    config.data.path = str(path)
    summary = experiment.run(config, str(tmp_path / "run"))
    runs = [json.loads(line) for line in open(tmp_path / "run" / "runs.jsonl")]
    assert summary["num_runs"] == 2 and len(runs) == 2
    space = darts.space()
    for r in runs:
        genotype = space.from_string(r["arch"])  # parses: a valid NB301 cell
        space.validate(genotype[None])
        # 7 ops on 28 edges, then 4: two rounds of prune_number=3.
        assert [int(np.sum(h["active"])) for h in r["rounds"]] == [196, 112]
        # Three nodes per cell have more than two inputs.
        assert [len(h["group"]) for h in r["edge_groups"]] == [3, 4, 5] * 2
        # Counted on DARTS' CIFAR-10 network (C=36, 20 cells; DARTS-V2: 3.3 M), not on
        # the C=1 supernet (thousands).
        assert 5e5 < r["params_eval_network"] < 1e7
    assert runs[0]["arch"] != runs[1]["arch"]


def test_supernet_search_refuses_labels_beyond_its_class_count(tmp_path):
    # CIFAR-100 labels with the CIFAR-10 head: TE-NAS's NTK would run on a 10-class
    # network without a word; the run must name data.num_classes instead.
    path = tmp_path / "images.npz"
    np.savez(
        path,
        train_images=np.zeros((8, 8, 8, 3), np.uint8),
        train_labels=np.arange(92, 100),
    )
    config = load_config("configs/nb201_tenas_search.py", "runs=1")
    config.data.path = str(path)
    with pytest.raises(errors.DataError, match="labels go up to 99 .* data.num_classes=100"):
        experiment.run(config, str(tmp_path / "run"))
    config.data.num_classes = 100
    images, labels = supernet_search._pool(config)
    assert images.shape == (8, 8, 8, 3) and labels.max() == 99


def test_zc_pt_on_darts_is_a_config_error(tmp_path):
    config = load_config("configs/darts_tenas_search.py")
    config.search.strategy = "zc_pt"
    with pytest.raises(errors.ConfigError, match="NB201 supernet here; got space 'darts'"):
        experiment.run(config, str(tmp_path))


def test_unknown_supernet_strategy_is_a_config_error(tmp_path):
    config = configs.default_config()
    config.mode = "supernet"
    config.search.strategy = "darts_pt"
    with pytest.raises(errors.ConfigError, match="unknown supernet strategy"):
        experiment.run(config, str(tmp_path))


@pytest.mark.slow  # 64 s at load 22 on the shared 2-core machine (mostly compilation)
def test_knas_end_to_end_writes_runs_and_resumes(tmp_path, shared_data):
    del shared_data
    config = load_config("configs/nb201_knas.py", "pool=12,n=6,k=2,runs=4")
    config.proxies = ("params",)  # a cheap stand-in score; the pipeline is under test
    config.archs_per_call = 12
    summary = experiment.run(config, str(tmp_path))
    runs = [json.loads(line) for line in open(tmp_path / "runs.jsonl")]
    assert [r["run"] for r in runs] == [0, 1, 2, 3]
    assert summary["num_runs"] == 4
    assert 0 < summary["cifar10_test"]["mean"] < 100
    assert all(r["pool_size"] == 12 for r in runs)
    config.search.num_runs = 6
    experiment.run(config, str(tmp_path))
    again = [json.loads(line) for line in open(tmp_path / "runs.jsonl")]
    assert again[:4] == runs and len(again) == 6
