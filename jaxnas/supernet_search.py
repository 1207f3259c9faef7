"""Proxy-driven searches that are not ask/tell loops: TE-NAS, Zero-Cost-PT, KNAS.

`run(config, workdir)` is the CLI's `mode="supernet"` (`jaxnas.experiment.run`). It runs
`config.search.num_runs` seeded runs of `config.search.strategy` with the settings in
`config.search.params`, and writes `runs.jsonl` (one record per run: the chosen cell in
the space's notation, seconds, the benchmark accuracies of `config.benchmark.targets`)
and `summary.json` (mean, std and 95 % CI half-width per target; seconds per run).
Run r's keys depend only on the seed and r; a restarted search with the same config
keeps the runs already written.

  * "tenas": TE-NAS pruning-by-importance (`strategies.tenas`) on the NB201 supernet,
    or with space "darts" on TE-NAS's DARTS supernet (`spaces.darts_supernet`): op
    pruning, then edge pruning to two inputs per node (`tenas.prune_edge_groups`).
    params: prune_number, repeats, ntk_batch, crops.
  * "zc_pt": Zero-Cost-PT (`strategies.zc_pt`) with `config.proxies[0]` as the scorer.
    params: pool_size (P), validate_rounds (V), supernet and cell (network overrides
    of the supernet and of the validated cells, e.g. channels / cells_per_stage;
    default: the benchmark network). The batch is `data.batch_size` images.
  * "knas": KNAS (`strategies.knas`) on a pool of `population.size` distinct cells
    scored once with `config.proxies[0]` (saved as `pool_scores.npy`, reused on
    restart), N and k from params.num_samples / params.top_k, the pick signal
    params.signal_column of the table params.signal_path.
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import (
    benchmarks,
    data,
    errors,
    evaluation,
    inputs,
    proxies,
    run_files,
    scoring,
    training,
)
from jaxnas.progress import Progress
from jaxnas.spaces import darts_supernet
from jaxnas.strategies import knas, tenas, zc_pt

STRATEGIES = ("tenas", "zc_pt", "knas")


def run(config, workdir: str, resume: bool = False) -> dict:
    """Runs the configured supernet / pool search; returns the summary."""
    s = config.search
    if s.strategy not in STRATEGIES:
        raise errors.ConfigError(
            f"unknown supernet strategy {s.strategy!r}; expected one of {STRATEGIES}"
        )
    if s.num_runs < 1:
        raise errors.ConfigError(f"search.num_runs must be >= 1, got {s.num_runs}")
    space = inputs.space(config)
    supernets = {"tenas": ("nb201", "darts"), "zc_pt": ("nb201",)}.get(s.strategy)
    if supernets is not None and space.name not in supernets:
        raise errors.ConfigError(
            f"{s.strategy} runs on the {' and '.join(n.upper() for n in supernets)} "
            f"supernet here; got space {space.name!r}"
        )
    bench = inputs.benchmark(config)
    params = config.search.params.to_dict() if "params" in config.search else {}
    path = os.path.join(workdir, "runs.jsonl")
    runs = run_files.completed_runs(path, s.num_runs) if resume else []
    if runs:
        print(f"resuming: {len(runs)} of {s.num_runs} runs already in {path}")
    runner = {"tenas": _tenas, "zc_pt": _zc_pt, "knas": _knas}[s.strategy]
    if s.strategy == "tenas" and space.name == "darts":
        runner = _tenas_darts
    key = jax.random.key(config.seed)
    progress = Progress(s.num_runs - len(runs), f"{s.strategy} runs")
    with open(path, "w") as f:
        for record in runs:
            f.write(json.dumps(record) + "\n")
        # On disk before the next run starts: a stop during it must not lose them.
        f.flush()
        for record in runner(config, space, params, key, len(runs), workdir):
            if bench is not None:
                for target in config.benchmark.targets:
                    record[target] = float(bench.lookup(target, [record["arch"]])[0])
            runs.append(record)
            f.write(json.dumps(run_files.jsonable(record)) + "\n")
            f.flush()
            progress.update(1)
    summary = {
        "strategy": s.strategy,
        "num_runs": len(runs),
        "params": params,
        "seconds_per_run": evaluation.mean_std([r["seconds"] for r in runs]),
    }
    if bench is not None:
        for target in config.benchmark.targets:
            values = np.asarray([r[target] for r in runs], np.float64)
            mean, std = evaluation.mean_std(values)
            # Normal-approximation 95 % CI of the mean (sample std; `std` is the tables').
            n = len(values)
            half = 1.96 * float(np.std(values, ddof=1)) / np.sqrt(n) if n > 1 else float("nan")
            summary[target] = {"mean": mean, "std": std, "ci95_half_width": half}
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(run_files.jsonable(summary), f, indent=2)
    print(f"{len(runs)} {s.strategy} runs -> {path}")
    for target in config.benchmark.targets if bench is not None else ():
        t = summary[target]
        print(f"{target}: {t['mean']:.2f} +- {t['std']:.2f} (95% CI +- {t['ci95_half_width']:.2f})")
    return summary


def _need(params: dict, name: str, default, minimum: int = 1):
    value = params.get(name, default)
    if isinstance(default, int) and (not isinstance(value, int) or value < minimum):
        raise errors.ConfigError(
            f"search.params.{name} must be an integer >= {minimum}, got {value!r}"
        )
    return value


def _pool(config):
    """The configured image pool (uint8 NHWC images, int labels); npz only."""
    if config.data.source != "npz":
        raise errors.ConfigError(
            "supernet searches read real images: set data.source='npz' and data.path"
        )
    images, labels = data.load_npz(
        config.data.path, config.data.images_key, config.data.labels_key or None
    )
    inputs.check_labels(labels, config.data.num_classes, "data.num_classes")
    return images, labels


# --------------------------------------------------------------------------- TE-NAS


def _tenas_scorer(config, params, scorer, ntk_batch_default):
    """`score(masks, valid, key) -> (f[C, R], f[C, R])` on fresh batches and crops."""
    repeats = _need(params, "repeats", 3)
    ntk_batch = _need(params, "ntk_batch", ntk_batch_default)
    num_crops = _need(params, "crops", 3000)
    images, labels = _pool(config)
    normalised = jnp.asarray(data.normalize(images, config.data.normalization))

    def score(masks, valid, k):
        key_init, key_data = jax.random.split(k)
        batches, crops = [], []
        for i in range(repeats):
            kb, kc = jax.random.split(jax.random.fold_in(key_data, i))
            batches.append(data.sample_batch(kb, images, labels, ntk_batch)["x"])
            crops.append(data.random_crops(kc, normalised, num_crops))
        s, regions = scorer(
            masks, valid, jax.random.split(key_init, repeats), jnp.stack(batches), jnp.stack(crops)
        )
        return np.asarray(s), np.asarray(regions)

    return score


def _round_scorer(score, key_run):
    """`tenas.prune`'s `score_round`: a round's removal candidates under its own key."""

    def score_round(active, round_index):
        masks, valid = tenas.removal_candidates(active)
        return score(masks, valid, jax.random.fold_in(key_run, round_index))

    return score_round


def _tenas(config, space, params, key, first, workdir):
    del workdir
    prune_number = _need(params, "prune_number", tenas.NB201_PRUNE_NUMBER)
    network_fn = tenas.nb201_network_fn(space, config.data.num_classes)
    score = _tenas_scorer(config, params, jax.jit(tenas.supernet_scorer(network_fn)), 72)
    num_edges, num_ops = len(space.num_choices), space.num_choices[0]
    for r in range(first, config.search.num_runs):
        start = time.perf_counter()
        score_round = _round_scorer(score, jax.random.fold_in(key, r))
        genotype, history = tenas.prune(score_round, num_edges, num_ops, prune_number)
        yield {
            "run": r,
            "arch": space.to_string(genotype),
            "seconds": time.perf_counter() - start,
            "rounds": history,
        }


def _tenas_darts(config, space, params, key, first, workdir):
    """TE-NAS on DARTS: op pruning on the stacked (normal, reduction) edges, then edge
    pruning to two inputs per node; the cell in the configured space's notation."""
    del workdir
    prune_number = _need(params, "prune_number", darts_supernet.TENAS_PRUNE_NUMBER)
    ops = darts_supernet.TENAS_OPS
    space_ops = space.materialize(np.zeros(len(space.num_choices), np.int32)).ops
    missing = [op for op in ops[1:] if op not in space_ops]
    if missing:
        raise errors.ConfigError(
            f"TE-NAS prunes the DARTS ops {ops[1:]}; the configured space lacks {missing}"
        )
    scorer = tenas.supernet_scorer(
        darts_supernet.network_fn(config.data.num_classes),
        darts_supernet.TENAS_NTK_NETWORK,
        darts_supernet.TENAS_REGIONS_NETWORK,
    )
    score = _tenas_scorer(config, params, jax.jit(scorer), darts_supernet.TENAS_NTK_BATCH)
    num_edges = len(darts_supernet.edges())
    groups = [
        [cell * num_edges + e for e in group]
        for cell in range(2)
        for group in darts_supernet.edge_groups()
    ]
    for r in range(first, config.search.num_runs):
        start = time.perf_counter()
        key_run = jax.random.fold_in(key, r)
        score_round = _round_scorer(score, key_run)
        kept, rounds = tenas.prune(score_round, 2 * num_edges, len(ops), prune_number)
        active = np.zeros((2 * num_edges, len(ops)), bool)
        active[np.arange(2 * num_edges), kept] = True

        def score_group(masks, valid, group, key_run=key_run, offset=len(rounds)):
            return score(masks, jnp.asarray(valid), jax.random.fold_in(key_run, offset + group))

        active, group_history = tenas.prune_edge_groups(score_group, active, groups)
        genotype = darts_supernet.to_genotype(active, space_ops)
        seconds = time.perf_counter() - start
        yield {
            "run": r,
            "arch": space.to_string(genotype),
            "seconds": seconds,
            # What TE-NAS reports beside its cell: the size of the CIFAR-10 evaluation
            # network (C=36, 20 cells), auxiliary head not counted.
            "params_eval_network": _param_count(
                space.materialize(genotype, **DARTS_EVAL_NETWORK), (1, 32, 32, 3)
            ),
            "rounds": rounds,
            "edge_groups": group_history,
        }


DARTS_EVAL_NETWORK = dict(training.RECIPES["darts"]["space"], auxiliary=False)


def _param_count(module, image_shape) -> int:
    shapes = jax.eval_shape(
        module.init, jax.random.key(0), jax.ShapeDtypeStruct(image_shape, jnp.float32)
    )
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(shapes["params"])))


# ---------------------------------------------------------------------- Zero-Cost-PT


def _zc_pt(config, space, params, key, first, workdir):
    del workdir
    pool_size = _need(params, "pool_size", 10)
    rounds = _need(params, "validate_rounds", 100)
    supernet_kwargs = dict(params.get("supernet", {}))
    cell_kwargs = dict(params.get("cell", {}))
    spec = config.proxies[0]
    proxy = proxies.get_proxy(spec)
    overrides = {**proxies.network_overrides(proxy), "num_classes": config.data.num_classes}
    images, labels = _pool(config)
    pool_x = jnp.asarray(data.normalize(images, config.data.normalization))
    pool_y = jnp.asarray(labels if labels is not None else np.zeros(len(images)), jnp.int32)
    batch_size = config.data.batch_size
    if batch_size > pool_x.shape[0]:
        raise errors.DataError(f"batch size {batch_size} exceeds the {pool_x.shape[0]} images")
    num_edges, num_ops = len(space.num_choices), space.num_choices[0]

    def draw(k):
        idx = jax.random.choice(k, pool_x.shape[0], (batch_size,), replace=False)
        return {"x": pool_x[idx], "y": pool_y[idx]}

    def supernet(weights):
        return space.network(weights, dispatch="mask", **overrides, **supernet_kwargs)

    def cell(genotype):
        return space.network(genotype, **overrides, **cell_kwargs)

    @jax.jit
    def one_run(k):
        key_init, key_prop, key_val = jax.random.split(k, 3)
        template = supernet(jnp.full((num_edges, num_ops), 1.0 / num_ops))
        params_super = template.init(key_init, pool_x[:1])

        def score_removals(kk, weights):
            batch = draw(kk)

            def one(w):
                net = supernet(w)
                p = proxy(net, proxies.base.rescaled_init(net, params_super), batch, kk)
                return jnp.asarray(p, jnp.float32)

            return jax.lax.map(one, weights)

        pool, scores, failed = jax.lax.map(
            lambda kp: zc_pt.propose(kp, score_removals, num_edges, num_ops),
            jax.random.split(key_prop, pool_size),
        )
        key_vinit, key_vdata = jax.random.split(key_val)
        params_cell = cell(pool[0]).init(key_vinit, pool_x[:1])

        def validate(genotype):
            net = cell(genotype)

            def round_score(total, kk):
                p = proxy(net, proxies.base.rescaled_init(net, params_cell), draw(kk), kk)
                return total + jnp.asarray(p, jnp.float32), None

            total, _ = jax.lax.scan(
                round_score, jnp.zeros((), jnp.float32), jax.random.split(key_vdata, rounds)
            )
            return total

        validation = jax.lax.map(validate, pool)
        chosen, index = zc_pt.pick(pool, validation)
        return chosen, index, pool, scores, failed, validation

    for r in range(first, config.search.num_runs):
        start = time.perf_counter()
        chosen, index, pool, scores, failed, validation = jax.device_get(
            one_run(jax.random.fold_in(key, r))
        )
        if np.all(np.isnan(validation)):
            raise errors.DataError(f"zc_pt run {r}: every validation score of {spec} is NaN")
        yield {
            "run": r,
            "arch": space.to_string(chosen),
            "seconds": time.perf_counter() - start,
            "proxy": spec,
            "pool": [space.to_string(g) for g in pool],
            "pool_index": int(index),
            "validation": [run_files.json_float(v) for v in validation],
            "removal_scores": scores.tolist(),
            "edges_all_failed": bool(np.any(failed)),
        }


# ----------------------------------------------------------------------------- KNAS


def _knas(config, space, params, key, first, workdir):
    num_samples = _need(params, "num_samples", 300)
    top_k = _need(params, "top_k", 40)
    if top_k > num_samples:
        raise errors.ConfigError(f"search.params.top_k={top_k} exceeds num_samples={num_samples}")
    signal_path = params.get("signal_path", "")
    signal_column = params.get("signal_column", "cifar10valid_valid_12ep")
    signal_bench = benchmarks.Benchmark.from_csv(signal_path)
    signal_bench.column(signal_column)
    spec = config.proxies[0]
    key_pop, key_data, key_init, key_runs = jax.random.split(key, 4)
    population = space.validate(inputs.population(config, space, None, key_pop))
    archs = [space.to_string(g) for g in population]
    scores_path = os.path.join(workdir, "pool_scores.npy")
    start = time.perf_counter()
    scores = _pool_scores(config, space, spec, population, key_data, key_init, scores_path)
    pool_seconds = time.perf_counter() - start
    signal = jnp.asarray(signal_bench.lookup(signal_column, archs), jnp.float32)
    agg = proxies.aggregate(jnp.asarray(scores), config.aggregate)
    keys = jax.vmap(lambda r: jax.random.fold_in(key_runs, r))(
        jnp.arange(first, config.search.num_runs)
    )
    start = time.perf_counter()
    chosen, drawn = jax.device_get(knas.select_runs(keys, agg, signal, num_samples, top_k))
    per_run = (time.perf_counter() - start) / max(len(chosen), 1)
    for i, r in enumerate(range(first, config.search.num_runs)):
        yield {
            "run": r,
            "arch": archs[int(chosen[i])],
            "seconds": per_run,
            "pool_scoring_seconds_total": pool_seconds,
            "pool_size": len(archs),
            "num_distinct_drawn": int(len(np.unique(drawn[i]))),
            "signal": f"{os.path.basename(signal_path)}:{signal_column}",
        }


def _pool_scores(config, space, spec, population, key_data, key_init, path) -> np.ndarray:
    """f32[M, K] proxy scores of the pool, from `path` if an earlier run saved them."""
    partial = path + ".partial.npy"
    if os.path.exists(path):
        scores = np.load(path)
        if scores.shape[0] == population.shape[0]:
            print(f"pool scores read from {path}")
            return scores
    previous = np.load(partial) if os.path.exists(partial) else None
    images = inputs.Images(config)
    images.check_classes(space)
    batch = images.batch(key_data)
    keys = jax.random.split(key_init, config.num_inits)
    scorer = scoring.make_scorer(
        proxies.get_proxy(spec),
        space,
        chunk_size=inputs.chunk_size(config),
        init_chunk_size=config.init_chunk_size,
    )
    done = 0 if previous is None else previous.shape[0]
    progress = Progress(population.shape[0], f"score pool {spec}", done=done)
    scores = scoring.score_chunks(
        scorer,
        population,
        batch,
        keys,
        config.archs_per_call,
        progress,
        partial,
        previous,
        concurrent_calls=config.concurrent_calls,
    )
    np.save(path, scores)
    os.remove(partial)
    return scores
