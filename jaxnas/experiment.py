"""The edge of the library: run an experiment described by an `ml_collections` config.

Names in the config (space, proxies, strategy, data source) are resolved here through the
plain-dict registries; everything below this module takes Python objects. Modes:

  * "score": score a population (a seeded sample, the whole space, or the cells of a
    benchmark table) with one or more proxies over K initialisations; write
    `scores.jsonl` and, when a benchmark table is given, a correlation `report.json`.
  * "search": R independent seeded runs of `jaxnas.search.run` with a strategy
    (default: NASWOT random sampling, N architectures, keep the best; or REA / AREA,
    evolution under a budget, NSGA-II) and a fitness source (`jaxnas.fitness`: a live
    proxy, one run per compiled call; a benchmark column or a score table, all runs
    vmapped in one program); write `runs.jsonl`, `summary.json` (mean, std, 95 % CI of
    the chosen architectures' benchmark accuracies beside the published row) and the
    best-so-far curve (`curve.json`, `curve.png` with matplotlib).
  * "supernet": R seeded runs of TE-NAS pruning, Zero-Cost-PT or KNAS
    (`jaxnas.supernet_search`), with the same outputs.
  * "train": train one architecture (`train.arch`, or the choice of a search workdir,
    `train.from_search`) with a recipe; see `jaxnas.training`.

The resolved config is saved as `config.json` in the workdir. A search restarted in a
workdir whose `config.json` equals the new config (except perhaps `search.num_runs`) keeps
the runs already in `runs.jsonl` and continues with the next run: run r's keys depend only
on the seed and r, so a resumed or extended search gives the same records as an
uninterrupted one (lookup searches are quick and simply run again).
"""

import functools
import hashlib
import inspect
import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxnas import (
    benchmarks,
    combination,
    compilation_cache,
    config_checks,
    configs,
    distributed,
    errors,
    evaluation,
    fitness,
    inputs,
    pareto,
    proxies,
    run_files,
    scoring,
    search,
    search_report,
    strategies,
    supernet_search,
    training,
)
from jaxnas.progress import Progress


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs the experiment; returns the report (score) or the summary (search)."""
    config_checks.validate(config, configs.default_config())
    workdir, config_file = distributed.host_files(workdir, config.mode)
    os.makedirs(workdir, exist_ok=True)
    same_config = run_files.write_config(config, os.path.join(workdir, config_file))
    if config.mode == "score":
        return _score(config, workdir, resume=same_config)
    if config.mode == "search":
        return _search(config, workdir, resume=same_config)
    if config.mode == "supernet":
        return supernet_search.run(config, workdir, resume=same_config)
    if config.mode == "train":
        return training.train(config, workdir)
    raise errors.ConfigError(
        f"unknown mode {config.mode!r}; expected 'score', 'search', 'supernet' or 'train'"
    )


def _score(config, workdir, resume=False) -> dict:
    combination.validate(config)
    space = inputs.space(config)
    bench = inputs.benchmark(config)
    images = inputs.Images(config)
    images.check_classes(space)
    key = jax.random.key(config.seed)
    key_pop, key_data, key_init = jax.random.split(key, 3)
    population = space.validate(inputs.population(config, space, bench, key_pop))
    per_arch = config.data.batch_per_arch
    if per_arch:
        batch = functools.partial(images.batches, key_data)
    else:
        batch = images.batch(key_data)
    keys = jax.random.split(key_init, config.num_inits)
    archs = [space.to_string(g) for g in population]

    # Each host scores its shard on its own devices (one host: the whole population), all
    # proxies first; then host 0 merges. Several hosts' files carry the config's
    # fingerprint, so that a stale shard of another config is never merged.
    hosts = distributed.hosts()
    mesh = proxies.population_mesh(jax.local_devices())
    text = config.to_json_best_effort(sort_keys=True).encode()
    tag = "" if hosts.count == 1 else "." + hashlib.sha1(text).hexdigest()[:10]
    timing, shards = {}, []
    for group in scoring.proxy_groups(config):
        name = "+".join(group)
        fns = list(group.values())
        proxy = fns[0] if len(fns) == 1 else proxies.stack(*fns)
        scorer = scoring.make_scorer(
            proxy,
            space,
            chunk_size=inputs.chunk_size(config),
            init_chunk_size=config.init_chunk_size,
            batch_per_arch=per_arch,
            mesh=mesh,
        )
        # The config and the proxies determine the programs (with jaxnas's sources).
        scorer = scorer.map(
            lambda program, part, name=name: compilation_cache.traced(
                program, f"{text.decode()} {name} {part}"
            )
        )
        progress = None

        def score_range(start, stop, checkpoint, previous, name=name, scorer=scorer):
            # Scores so far are saved per call: a run that stops resumes (same config).
            nonlocal progress
            done = 0 if previous is None else previous.shape[0]
            if done:
                print(f"resuming {name}: {done} of {stop - start} already scored")
            progress = Progress(stop - start, f"score {name}", done=done)
            shard_batch = (lambda a, b: batch(start + a, start + b)) if per_arch else batch
            chunk = population[start:stop]
            return scoring.score_chunks(
                scorer,
                chunk,
                shard_batch,
                keys,
                config.archs_per_call,
                progress,
                checkpoint,
                previous,
                mesh,
                config.concurrent_calls,
            )

        path = distributed.score_shard(score_range, len(population), workdir, name + tag, resume)
        shards.append((group, name + tag, path))
        if progress is not None:
            timing[name] = {
                "seconds_total": time.perf_counter() - progress.start,
                # Trace + compile (or compilation-cache load) + the first call.
                "seconds_to_first_call": progress.first_update_seconds(),
                "archs_per_second_after_compile": progress.rate(),
            }
    if not hosts.primary:
        paths = [path for _, _, path in shards]
        print(f"host {hosts.index} of {hosts.count}: its shards -> {paths}")
        return {"num_archs": len(population), "timing": timing, "shards": paths}

    results = {}
    for group, file_name, _ in shards:
        scores = distributed.merge_shards(workdir, file_name, hosts.count)
        scores = scores.reshape(*scores.shape[:2], len(group))
        for m, spec in enumerate(group):
            scoring.warn_failed(spec, scores[..., m])
            results[spec] = (
                scores[..., m],
                np.asarray(proxies.aggregate(jnp.asarray(scores[..., m]), config.aggregate)),
            )
    with open(os.path.join(workdir, "scores.jsonl"), "w") as f:
        for i, genotype in enumerate(population):
            row = {"arch": archs[i], "genotype": genotype.tolist()}
            if bench is not None and "index" in bench.columns and archs[i] in bench:
                row["index"] = int(bench.lookup("index", [archs[i]])[0])
            for spec, (scores, agg) in results.items():
                row[spec] = {
                    "scores": [run_files.json_float(v) for v in scores[i]],
                    "score": run_files.json_float(agg[i]),
                }
            f.write(json.dumps(row) + "\n")

    # Every host's shard files, now merged into scores.jsonl.
    for _, file_name, _ in shards:
        for i in range(hosts.count):
            os.remove(distributed.shard_path(workdir, file_name, i, hosts.count))
    report = {"num_archs": len(population), "timing": timing, "correlations": {}}
    if bench is not None:
        report["correlations"] = _correlations(config, bench, archs, results)
    if config.combine.method:
        report["combine"] = combination.run(config, bench, archs, results, workdir)
    with open(os.path.join(workdir, "report.json"), "w") as f:
        json.dump(run_files.jsonable(report), f, indent=2)
    print(f"scored {len(population)} architectures -> {workdir}/scores.jsonl")
    for spec, t in timing.items():
        print(
            f"{spec}: {1.0 / t['archs_per_second_after_compile']:.3f} s/arch after compile, "
            f"{t['seconds_total']:.1f} s total"
        )
    return report


def _correlations(config, bench, archs, results) -> dict:
    present = [a in bench for a in archs]
    if not any(present):
        print(f"note: none of the scored architectures is in {bench.name}; no correlations")
        return {}
    rows = [a for a, p in zip(archs, present) if p]
    nboot = config.report.num_bootstrap
    out = {}
    for spec, (_, agg) in results.items():
        agg = agg[np.asarray(present)]
        for target in config.benchmark.targets:
            r = evaluation.rank_correlations(agg, bench.lookup(target, rows), num_bootstrap=nboot)
            out[f"{spec} vs {target}"] = r
        paired = config.benchmark.reference_of.get(spec)
        for ref in (*config.benchmark.references, *([paired] if paired else [])):
            r = evaluation.rank_correlations(agg, bench.lookup(ref, rows), num_bootstrap=nboot)
            out[f"{spec} vs reference {ref}"] = r
    all_refs = dict.fromkeys(
        (*config.benchmark.references, *config.benchmark.reference_of.values())
    )
    for ref in all_refs:
        for target in config.benchmark.targets:
            r = evaluation.rank_correlations(
                bench.lookup(ref, rows), bench.lookup(target, rows), num_bootstrap=nboot
            )
            out[f"reference {ref} vs {target}"] = r
    for name, r in out.items():
        print(evaluation.format_correlation(name, r))
    return out


# ----------------------------------------------------------------------------- search
class _Targets:
    """Benchmark columns of the report tables (benchmark.path + extra_paths), laid out by
    genotype code so that whole histories are looked up by NumPy indexing."""

    def __init__(self, config, space, bench):
        self.tables = [bench] if bench is not None else []
        self.tables += [benchmarks.Benchmark.from_csv(p) for p in config.benchmark.extra_paths]
        self.code = fitness.genotype_code(space)
        self._columns = {}
        # The reported targets: none without a table.
        self.names = tuple(config.benchmark.targets) if self.tables else ()

    def has(self, column):
        return any(column in t.columns for t in self.tables)

    def column(self, space, column) -> np.ndarray:
        """f32[N]: the column by genotype code (NaN where a cell has no row)."""
        if column not in self._columns:
            table = next((t for t in self.tables if column in t.columns), None)
            if table is None:
                raise errors.BenchmarkError(
                    f"no report table has column {column!r} (benchmark.path, extra_paths)"
                )
            self._columns[column] = fitness.benchmark_table(space, table, [column])[:, 0]
        return self._columns[column]

    def __call__(self, space, column, genotypes) -> np.ndarray:
        return self.column(space, column)[np.asarray(self.code(jnp.asarray(genotypes)))]


def _lookup_column(space, path, column, what) -> np.ndarray:
    if not path or not column:
        raise errors.ConfigError(f"{what} needs both a path and a column")
    bench = benchmarks.Benchmark.from_csv(path)
    bench.column(column)
    return fitness.benchmark_table(space, bench, [column])[:, 0]


def _fitness_source(config, space, spec, what):
    """A fitness factory `(batch, init_keys) -> Fitness` for a search.fitness-like spec,
    with its tables read here (outside any jit). Returns (factory, is_live)."""
    if spec.combine and spec.source != "table":
        raise errors.ConfigError(
            f"{what}.combine ranks a whole scored space: it needs {what}.source='table', "
            f"got {spec.source!r}"
        )
    if spec.proxies and not spec.combine:
        raise errors.ConfigError(
            f"{what}.proxies names the proxies that {what}.combine combines; set "
            f"{what}.combine (rank_sum, log_rank or vote) or leave {what}.proxies empty"
        )
    if spec.source == "proxy":
        proxy = proxies.get_proxy(config.proxies[0])
        chunk, init_chunk, how = config.chunk_size, config.init_chunk_size, config.aggregate

        def live(batch, keys):
            return fitness.live_proxy(
                proxy,
                space,
                batch,
                keys,
                aggregate=how,
                chunk_size=chunk,
                init_chunk_size=init_chunk,
            )

        return live, True
    if spec.source == "benchmark":
        table = _lookup_column(space, spec.path, spec.column, f"{what}.source='benchmark'")
        return (lambda batch, keys: fitness.lookup(space, table)), False
    if spec.source == "table":
        if not spec.table:
            raise errors.ConfigError(f"{what}.source='table' needs {what}.table (a score run)")
        if spec.combine:
            names = tuple(spec.proxies) or tuple(config.proxies)
            tables = fitness.load_score_tables(space, spec.table, names)
            table = fitness.combined_table(tables, spec.combine, config.aggregate)
            return (lambda batch, keys: fitness.lookup(space, table)), False
        (table,) = fitness.load_score_tables(space, spec.table, config.proxies[:1])
        return (lambda batch, keys: fitness.score_table(space, table)), False
    raise errors.ConfigError(
        f"unknown {what}.source {spec.source!r}; expected proxy, benchmark or table"
    )


def _strategy_factory(config, space, warmup_size, constraint, num_objectives):
    """`warmup -> (strategy, params)` from search.strategy and search.params."""
    s = config.search
    if s.strategy not in strategies.STRATEGIES:
        raise errors.ConfigError(
            f"unknown strategy {s.strategy!r}; available: {sorted(strategies.STRATEGIES)}"
        )
    factory = strategies.STRATEGIES[s.strategy]
    accepted = inspect.signature(factory).parameters
    given = s.params.to_dict()
    static = {k: v for k, v in given.items() if k in accepted}
    wired = {
        "warmup_size": warmup_size,
        "constraint": constraint,
        "num_objectives": num_objectives if num_objectives > 1 else None,
    }
    for name, value in wired.items():
        if value is not None and name != "warmup_size":
            if name not in accepted:
                raise errors.ConfigError(
                    f"strategy {s.strategy!r} does not take a {name} (search.cost); "
                    f"use evolution (budget) or nsga2 (objective)"
                )
            static[name] = value
    if warmup_size:
        if "warmup" not in accepted:
            raise errors.ConfigError(f"strategy {s.strategy!r} takes no warm-up (use rea)")
        static["warmup_size"] = warmup_size

    def make(warmup):
        kwargs = dict(static)
        if warmup is not None:
            kwargs["warmup"] = warmup
        try:
            strategy = factory(space, s.population_size, **kwargs)
        except TypeError as exc:
            raise errors.ConfigError(f"strategy {s.strategy!r}: {exc}") from exc
        dynamic = {k: v for k, v in given.items() if k not in accepted}
        unknown = sorted(set(dynamic) - set(strategy.default_params))
        if unknown:
            raise errors.ConfigError(
                f"unknown search.params {unknown} for {s.strategy!r}; it takes "
                f"{sorted(set(accepted) - {'space', 'population_size', 'warmup'})} and "
                f"{sorted(strategy.default_params)}"
            )
        params = {
            k: jnp.asarray(dynamic.get(k, v), jnp.asarray(v).dtype)
            for k, v in strategy.default_params.items()
        }
        return strategy, params

    return make


def _search(config, workdir, resume=False) -> dict:
    space = inputs.space(config)
    bench = inputs.benchmark(config)
    s = config.search
    if config.data.batch_per_arch:
        raise errors.ConfigError(
            "data.batch_per_arch is for score mode; a search run shares one batch per run"
        )
    for name in ("num_runs", "num_generations", "population_size", "runs_per_call"):
        if s[name] <= 0:
            raise errors.ConfigError(f"search.{name} must be positive; got {s[name]}")
    make_fitness, live = _fitness_source(config, space, s.fitness, "search.fitness")
    make_warmup, warm_live = None, False
    if s.warmup.source:
        if s.warmup.size <= 0:
            raise errors.ConfigError("search.warmup needs size > 0 (M cells scored)")
        make_warmup, warm_live = _fitness_source(config, space, s.warmup, "search.warmup")
    constraint, cost_table = None, None
    if s.cost.path or s.cost.column:
        cost_table = _lookup_column(space, s.cost.path, s.cost.column, "search.cost")
        factory = strategies.STRATEGIES.get(s.strategy)
        accepted = inspect.signature(factory).parameters if factory else {}
        if s.cost.budget > 0 and "constraint" in accepted:
            constraint = fitness.within_budget(space, cost_table, s.cost.budget)
    time_table = None
    if s.time.column:
        time_table = _lookup_column(space, s.fitness.path, s.time.column, "search.time")
    num_objectives = 2 if s.cost.objective else 1
    if s.cost.objective and cost_table is None:
        raise errors.ConfigError("search.cost.objective needs search.cost.path and column")
    make_strategy = _strategy_factory(
        config, space, s.warmup.size if make_warmup else 0, constraint, num_objectives
    )
    make_strategy(None if make_warmup is None else (lambda k, p: p[:, 0]))  # checks only

    def program(key, batch, init_keys):
        score = make_fitness(batch, init_keys)
        if cost_table is not None and s.cost.objective:
            score = fitness.stack(score, fitness.negate(fitness.lookup(space, cost_table)))
        warmup = None if make_warmup is None else make_warmup(batch, init_keys)
        strategy, params = make_strategy(warmup)
        timing = {}
        if time_table is not None:
            cost = fitness.lookup(space, time_table)
            timing = {"cost_fn": lambda p: cost(None, p), "time_budget": s.time.budget}
        return search.run(key, strategy, score, s.num_generations, params, **timing)

    key = jax.random.key(config.seed)
    run_keys = [jax.random.split(jax.random.fold_in(key, r), 3) for r in range(s.num_runs)]
    path = os.path.join(workdir, "runs.jsonl")
    targets = _Targets(config, space, bench)
    if live or warm_live:
        images = inputs.Images(config)
        images.check_classes(space)
        records = run_files.completed_runs(path, s.num_runs) if resume else []
        if records:
            print(f"resuming: {len(records)} of {s.num_runs} runs already in {path}")
        one_run = jax.jit(program)
        curves = []  # best-so-far metrics of the runs done now, for the curve
        progress = Progress(s.num_runs, f"search {s.strategy}", unit="run", done=len(records))
        with open(path, "w") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")
            for r in range(len(records), s.num_runs):
                start = time.perf_counter()
                key_search, key_data, key_init = run_keys[r]
                # One batch and K initialisations per run, shared by its candidates
                # (the NASWOT protocol).
                batch = images.batch(key_data)
                init_keys = jax.random.split(key_init, config.num_inits)
                out = jax.device_get(one_run(key_search, batch, init_keys))
                record = _run_record(
                    config, space, targets, r, out, time.perf_counter() - start, cost_table
                )
                records.append(record)
                curves.append(
                    {k: out[1][k] for k in ("num_evaluations", "best_genotype", "best_score")}
                )
                f.write(json.dumps(run_files.jsonable(record)) + "\n")
                f.flush()
                progress.update(1)
        outputs = (None, jax.tree.map(lambda *v: np.stack(v), *curves)) if curves else None
    else:
        outputs, records = _search_by_lookup(config, space, targets, program, run_keys, cost_table)
        with open(path, "w") as f:
            for record in records:
                f.write(json.dumps(run_files.jsonable(record)) + "\n")
    summary = _search_summary(config, space, targets, records, outputs, workdir, cost_table)
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(run_files.jsonable(summary), f, indent=2)
    return summary


def _search_by_lookup(config, space, targets, program, run_keys, cost_table):
    """All runs of a table / lookup search, `runs_per_call` seeds per vmapped call."""
    s = config.search
    keys = jnp.stack([k[0] for k in run_keys])
    per_call = min(s.runs_per_call, s.num_runs)
    many = jax.jit(jax.vmap(lambda k: program(k, None, None)))
    progress = Progress(s.num_runs, f"search {s.strategy}", unit="run")
    chunks, records = [], []
    for start in range(0, s.num_runs, per_call):
        t0 = time.perf_counter()
        chunk = keys[start : start + per_call]
        real = chunk.shape[0]
        if real < per_call:
            chunk = jnp.concatenate([chunk, jnp.repeat(chunk[:1], per_call - real, 0)])
        out = jax.tree.map(lambda v, n=real: v[:n], jax.device_get(many(chunk)))
        seconds = (time.perf_counter() - t0) / real
        for i in range(real):
            one = jax.tree.map(lambda v, i=i: v[i], out)
            records.append(_run_record(config, space, targets, start + i, one, seconds, cost_table))
        chunks.append(out)
        progress.update(real)
    return jax.tree.map(lambda *v: np.concatenate(v), *chunks), records


def _run_record(config, space, targets, r, out, seconds, cost_table) -> dict:
    """One run's record: the chosen cell, its score and benchmark accuracies, the
    evaluation count, the optimum among the cells it evaluated, and (with a cost) its
    Pareto front's hypervolume against the true front of the space."""
    state, metrics = out
    evaluated = np.asarray(metrics["evaluated"])
    genotypes = np.asarray(metrics["genotypes"])[evaluated].reshape(-1, len(space.num_choices))
    best = np.asarray(state.best.genotype)
    record = {
        "run": r,
        "arch": space.to_string(best),
        "score": float(state.best.score),
        "num_evaluations": int(np.asarray(metrics["num_evaluations"])[-1]),
        "simulated_time": float(np.asarray(metrics["simulated_time"])[-1]),
        "seconds": seconds,
    }
    for target in targets.names:
        values = targets(space, target, genotypes)
        record[target] = float(targets(space, target, best[None])[0])
        record[f"optimal_in_sample/{target}"] = float(np.nanmax(values))
    s = config.search
    if cost_table is not None and targets.names:
        target = targets.names[0]
        acc = targets.column(space, target)
        codes = np.asarray(targets.code(jnp.asarray(genotypes)))
        scored = np.asarray(metrics["fitness"])[evaluated].reshape(codes.shape[0], -1)
        if s.cost.objective:
            on_front = pareto.front(scored)
            record["front"] = [space.to_string(g) for g in genotypes[on_front]]
            reference = (np.nanmin(acc), -np.nanmax(cost_table))
            points = np.stack([acc[codes[on_front]], -cost_table[codes[on_front]]], axis=1)
            every = np.stack([acc, -cost_table], axis=1)
            record["hypervolume"] = pareto.hypervolume_2d(points, reference)
            record["hypervolume_ratio"] = record["hypervolume"] / pareto.hypervolume_2d(
                every, reference
            )
            # A stricter measure than the hypervolume (which the cheap, inaccurate cells
            # near the reference point dominate): the share of the true front evaluated.
            true_front = pareto.front(every)
            record["true_front_found"] = float(np.isin(true_front, codes).mean())
        if s.cost.budget > 0:
            # The fittest evaluated cell within the budget (evolution's own answer).
            under = cost_table[codes] <= s.cost.budget
            fit = np.where(under & ~np.isnan(scored[:, 0]), scored[:, 0], -np.inf)
            chosen = codes[int(np.argmax(fit))]
            record["chosen_under_budget"] = space.to_string(genotypes[int(np.argmax(fit))])
            record[f"chosen_under_budget/{target}"] = float(acc[chosen]) if under.any() else None
            record[f"chosen_under_budget/{s.cost.column}"] = float(cost_table[chosen])
            record[f"best_under_budget/{target}"] = float(
                np.nanmax(np.where(cost_table <= s.cost.budget, acc, np.nan))
            )
    return record


def _search_summary(config, space, targets, records, outputs, workdir, cost_table) -> dict:
    s = config.search
    summary = {
        "num_runs": s.num_runs,
        "strategy": s.strategy,
        "fitness": s.fitness.to_dict(),
        "population_size": s.population_size,
        "num_generations": s.num_generations,
        "proxy": config.proxies[0],
        "seconds_per_run": search_report.describe([r["seconds"] for r in records]),
        "evaluations_per_run": search_report.describe([r["num_evaluations"] for r in records]),
    }
    published = config.report.published.to_dict()
    if published:
        summary["published"] = {"source": config.report.published_source, **published}
    names = [
        name
        for target in targets.names
        for name in (
            target,
            f"optimal_in_sample/{target}",
            f"chosen_under_budget/{target}",
            f"best_under_budget/{target}",
        )
    ] + ["hypervolume_ratio", "true_front_found", "score"]
    print(f"{s.num_runs} search runs -> {workdir}/runs.jsonl")
    for name in names:
        values = [r.get(name) for r in records]
        if any(v is None for v in values):
            continue
        summary[name] = search_report.describe(values)
        print(search_report.format_row(name, summary[name], published.get(name)))
    print(search_report.format_row("seconds per run", summary["seconds_per_run"]))
    if outputs is not None and targets.names:
        target = targets.names[0]
        _, metrics = outputs
        evaluations = np.asarray(metrics["num_evaluations"])[0]
        best = np.asarray(metrics["best_genotype"])
        curve = targets(space, target, best.reshape(-1, best.shape[-1])).reshape(best.shape[:2])
        curves = {target: curve, "fitness": np.asarray(metrics["best_score"])}
        label = f"{s.strategy}, {s.num_runs} runs"
        png = search_report.write_curve(workdir, evaluations, curves, label)
        summary["curve"] = png or os.path.join(workdir, "curve.json")
    return summary
