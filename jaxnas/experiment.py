"""The edge of the library: run an experiment described by an `ml_collections` config.

Names in the config (space, proxies, strategy, data source) are resolved here through the
plain-dict registries; everything below this module takes Python objects. Modes:

  * "score": score a population (a seeded sample, the whole space, or the cells of a
    benchmark table) with one or more proxies over K initialisations; write
    `scores.jsonl` and, when a benchmark table is given, a correlation `report.json`.
  * "search": R independent seeded search runs of a strategy (default: NASWOT random
    sampling, N architectures, keep the best); write `runs.jsonl` and `summary.json`
    with the chosen architectures' benchmark accuracies.

The resolved config is saved as `config.json` in the workdir. A search restarted in a
workdir whose `config.json` equals the new config (except perhaps `search.num_runs`) keeps
the runs already in `runs.jsonl` and continues with the next run: run r's keys depend only
on the seed and r, so a resumed or extended search gives the same records as an
uninterrupted one.
"""

import functools
import hashlib
import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxnas import (
    benchmarks,
    data,
    dispatch,
    distributed,
    errors,
    evaluation,
    proxies,
    spaces,
    strategies,
    types,
)
from jaxnas.progress import Progress


def default_config() -> ml_collections.ConfigDict:
    """Every field an experiment config may set, with defaults (the demo's settings)."""
    c = ml_collections.ConfigDict()
    c.mode = "score"
    c.seed = 0
    c.space = ml_collections.ConfigDict({"name": "nb201", "kwargs": {}})
    c.proxies = ("naswot",)
    c.num_inits = 1  # K random initialisations per architecture
    c.aggregate = "mean"  # over the K initialisations
    # "switch" | "mask" for spaces with both (NB201, NB101, NDS); "auto": switch on CPU,
    # mask on GPU/TPU (`jaxnas.dispatch`).
    c.dispatch = "auto"
    c.chunk_size = 0  # architectures vmapped together in a call; 0: by dispatch (1 for switch)
    c.archs_per_call = 16  # architectures per compiled call (progress granularity)
    # Score proxies with the same network overrides in one compiled program
    # (`proxies.stack`): shared subexpressions (a loss gradient, an input gradient) are
    # computed once; timings are then per group of proxies.
    c.fuse_proxies = False

    c.data = ml_collections.ConfigDict()
    c.data.source = "synthetic"  # synthetic | npz | tfds
    c.data.path = ""  # npz file
    c.data.images_key = "images"
    c.data.labels_key = "labels"
    c.data.dataset = "cifar10"  # tfds dataset (cifar10 | cifar100 | imagenet16-120)
    c.data.split = "train"
    c.data.data_dir = ""
    c.data.max_examples = 5000  # images read from tfds into the sampling pool
    c.data.normalization = "cifar10"
    c.data.augment = False  # random crop (crop_padding) + flip, as NASLib's train loader
    c.data.crop_padding = 4
    c.data.batch_size = 128  # NASWOT reference default (score_networks.py --batch_size)
    # Score mode: a batch drawn per architecture (NAS-Bench-Suite-Zero's protocol) instead
    # of one seeded batch shared by all (NASWOT's; common random numbers).
    c.data.batch_per_arch = False
    c.data.image_size = 32  # synthetic images
    c.data.num_classes = 10  # synthetic labels
    # > 0: the batch is this many random crop_size x crop_size single-channel crops of
    # the (normalised) images instead (TE-NAS's linear-region inputs, 3000 crops of 3x3).
    c.data.crops = 0
    c.data.crop_size = 3

    c.population = ml_collections.ConfigDict()
    c.population.source = "sample"  # sample | all | benchmark | list
    c.population.size = 200  # for sample / benchmark: distinct cells drawn with the seed
    c.population.archs = ()  # for list: architecture strings in the space's notation

    c.benchmark = ml_collections.ConfigDict()
    c.benchmark.path = ""  # CSV(.gz) table with an arch_str column; "" = none
    c.benchmark.key = "arch_str"  # column with each row's architecture in the space's notation
    c.benchmark.key_columns = ()  # or: build `key` by joining these columns (NB101: rows;ops)
    c.benchmark.key_separator = ";"
    c.benchmark.targets = ("cifar10_test",)  # accuracy columns to correlate with / report
    c.benchmark.references = ()  # published proxy-score columns to compare against
    # proxy spec -> its own published column (ours vs that column only), e.g.
    # {"jacob_cov": "jacov"}; the columns are also correlated with every target.
    c.benchmark.reference_of = ml_collections.ConfigDict()

    c.search = ml_collections.ConfigDict()
    c.search.strategy = "random_search"
    c.search.population_size = 100  # N
    c.search.num_generations = 1
    c.search.num_runs = 1  # R independent seeded runs

    c.report = ml_collections.ConfigDict()
    c.report.num_bootstrap = 1000
    return c


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """Parses a config-file argument `"a=1,b=x,flag"` against typed defaults.

    `--config=file.py:size=1000,quick` gives `{"size": 1000, "quick": True, ...}`; a bare
    name sets a boolean default to True. Unknown names raise ConfigError.
    """
    out = ml_collections.ConfigDict(defaults)
    for item in filter(None, (arg or "").split(",")):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in defaults:
            raise errors.ConfigError(
                f"unknown config argument {name!r}; expected one of {sorted(defaults)}"
            )
        default = defaults[name]
        if not value:
            out[name] = True
        elif isinstance(default, bool):
            out[name] = value.lower() in ("1", "true", "yes")
        else:
            try:
                out[name] = type(default)(value)
            except ValueError as exc:
                raise errors.ConfigError(f"config argument {name}={value!r}: {exc}") from exc
    return out


# Our proxy name -> its NAS-Bench-Suite-Zero column, where the two names differ.
SUITE_ZERO_COLUMN = {"naswot": "nwot", "jacob_cov": "jacov"}


def suite_zero_column(name: str) -> str:
    """The NAS-Bench-Suite-Zero column holding a proxy's published scores."""
    return SUITE_ZERO_COLUMN.get(name, name)


def suite_zero(
    arg: str | None, table: str, proxies: tuple[str, ...], size: int, **defaults
) -> tuple[ml_collections.ConfigDict, ml_collections.ConfigDict]:
    """A config scoring cells of a NAS-Bench-Suite-Zero table as Suite-Zero did.

    NASLib's benchmark runner (shared/docs/reference.md §A.11-A.12): one batch of real
    CIFAR-10 training images (`cifar10_jpeg_yoongikim_...npz`, JPEG-decoded), NASLib's
    CIFAR-10 normalisation and training augmentation (random crop, 4 pixels of padding,
    horizontal flip), real labels, one initialisation per cell. `size` distinct rows of
    `table` are drawn with the seed (those of a smaller size are among those of a larger
    one); each proxy is correlated with `val_acc` and with its own published column
    (`suite_zero_column`).

    Args:
      arg: the config file's argument, `size=N,seed=S,batch=B,per_cell=1,proxies=a+b,
        fuse=1` plus the names of `defaults`; `per_cell` draws a batch per cell as
        Suite-Zero did (default: one seeded batch shared by every cell).
      table: the Suite-Zero table.
      proxies: our names of the proxies with a column in `table` (scored by default).
      size: the default number of cells.
      **defaults: further arguments of the config file and their defaults.

    Returns:
      The config and the parsed arguments.

    Raises:
      ConfigError: a proxy without a published column in this table.
    """
    args = parse_arg(
        arg, size=size, seed=0, batch=64, per_cell=False, proxies="", fuse=False, **defaults
    )
    names = tuple(args.proxies.split("+")) if args.proxies else tuple(sorted(proxies))
    unknown = sorted(set(names) - set(proxies))
    if unknown:
        raise errors.ConfigError(
            f"no published column for {unknown} in {os.path.basename(table)}; "
            f"available: {sorted(proxies)}"
        )
    config = default_config()
    config.seed = args.seed
    config.fuse_proxies = args.fuse
    config.proxies = names
    config.population.source = "benchmark"
    config.population.size = args.size
    config.benchmark.path = table
    config.benchmark.targets = ("val_acc",)
    config.benchmark.reference_of = {name: suite_zero_column(name) for name in names}
    config.data.source = "npz"
    config.data.path = shared_path("images", "cifar10_jpeg_yoongikim_train1280_test1000.npz")
    config.data.images_key = "train_images"
    config.data.labels_key = "train_labels"
    config.data.normalization = "cifar10-naslib"
    config.data.augment = True
    config.data.crop_padding = 4
    config.data.batch_size = args.batch
    config.data.batch_per_arch = args.per_cell
    config.report.num_bootstrap = 500
    return config, args


def shared_path(*parts: str) -> str:
    """A file under the shared data directory (see `benchmarks.shared_data_dir`)."""
    return os.path.join(benchmarks.shared_data_dir(), *parts)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs the experiment; returns the report (score) or the summary (search)."""
    workdir, config_file = distributed.host_files(workdir, config.mode)
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, config_file)
    previous = json.load(open(path)) if os.path.exists(path) else None
    text = config.to_json_best_effort(indent=2, sort_keys=True)
    with open(path, "w") as f:
        f.write(text)
    same_config = previous is not None and _without_num_runs(previous) == _without_num_runs(
        json.loads(text)
    )
    if config.mode == "score":
        return _score(config, workdir, resume=same_config)
    if config.mode == "search":
        return _search(config, workdir, resume=same_config)
    raise errors.ConfigError(f"unknown mode {config.mode!r}; expected 'score' or 'search'")


# ------------------------------------------------------------------------------ edges


def _space(config):
    if config.space.name not in spaces.SPACES:
        raise errors.ConfigError(
            f"unknown space {config.space.name!r}; available: {sorted(spaces.SPACES)}"
        )
    factory = spaces.SPACES[config.space.name]
    kwargs, _ = dispatch.resolve(factory, config.space.kwargs, config.dispatch)
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise errors.ConfigError(f"space {config.space.name!r}: {exc}") from exc


def _benchmark(config):
    if not config.benchmark.path:
        return None
    b = config.benchmark
    bench = benchmarks.Benchmark.from_csv(
        b.path, key=b.key, key_columns=tuple(b.key_columns), separator=b.key_separator
    )
    paired = tuple(b.reference_of.values())
    for column in (*b.targets, *b.references, *paired):
        bench.column(column)
    return bench


class _Images:
    """The configured image source: draws a batch per key."""

    def __init__(self, config):
        self.config = config.data
        self.pool = None
        if self.config.source == "npz":
            if not self.config.path:
                raise errors.ConfigError("data.source='npz' needs data.path")
            self.pool = data.load_npz(
                self.config.path, self.config.images_key, self.config.labels_key or None
            )
        elif self.config.source == "tfds":
            self.pool = data.load_tfds(
                self.config.dataset,
                self.config.split,
                self.config.data_dir or None,
                self.config.max_examples,
            )
        elif self.config.source != "synthetic":
            raise errors.ConfigError(
                f"unknown data.source {self.config.source!r}; expected synthetic, npz or tfds"
            )

    def batch(self, key):
        c = self.config
        if c.crops > 0:
            return {"x": data.random_crops(key, self._all_images(key), c.crops, c.crop_size)}
        if self.pool is None:
            shape = (c.image_size, c.image_size, 3)
            return data.synthetic_batch(key, c.batch_size, shape, c.num_classes)
        images, labels = self.pool
        padding = c.crop_padding if c.augment else None
        return data.sample_batch(key, images, labels, c.batch_size, c.normalization, padding)

    def batches(self, key, start, stop):
        """The batches of architectures start..stop-1 (`data.batch_per_arch`), stacked:
        architecture i's is `batch(fold_in(key, i + 1))`."""
        drawn = [self.batch(jax.random.fold_in(key, i + 1)) for i in range(start, stop)]
        return jax.tree.map(lambda *v: jnp.stack(v), *drawn)

    def _all_images(self, key):
        """Every pool image, normalised (synthetic: `batch_size` N(0, 1) images)."""
        c = self.config
        if self.pool is None:
            shape = (c.image_size, c.image_size, 3)
            return data.synthetic_batch(jax.random.fold_in(key, 1), c.batch_size, shape)["x"]
        return jnp.asarray(data.normalize(self.pool[0], c.normalization))


def _scorer(config, space, proxy, batch_per_arch=False, mesh=None):
    _, chunk = dispatch.resolve(
        spaces.SPACES[config.space.name],
        config.space.kwargs,
        config.dispatch,
        config.chunk_size,
        config.archs_per_call,
    )

    @jax.jit
    def scorer(population, batch, keys):
        return proxies.score_population(
            proxy,
            space,
            population,
            batch,
            keys,
            chunk_size=chunk,
            batch_per_arch=batch_per_arch,
            mesh=mesh,
        )

    return scorer


def _proxy_groups(config) -> list[dict[str, types.ProxyFn]]:
    """The proxies scored together, spec -> function: one group each, or (`fuse_proxies`)
    one group per set of network overrides, in the order of `config.proxies`."""
    fns = {spec: proxies.get_proxy(spec) for spec in config.proxies}
    if not config.fuse_proxies:
        return [{spec: fn} for spec, fn in fns.items()]
    groups: dict[str, dict[str, types.ProxyFn]] = {}
    for spec, fn in fns.items():
        groups.setdefault(repr(sorted(proxies.network_overrides(fn).items())), {})[spec] = fn
    return list(groups.values())


def _score_chunks(
    scorer, population, batch, keys, per_call, progress, checkpoint=None, previous=None, mesh=None
) -> np.ndarray:
    """f32[P, K, ...] scores of a host population, in fixed-size compiled calls (padded).

    `batch` is shared by every architecture, or a function `(start, stop) -> batch` giving
    the batches of architectures `start..stop-1` stacked (a scorer with `batch_per_arch`).
    With `checkpoint` (a .npy path) the scores so far are saved after every call;
    `previous` (scores of the first architectures, saved by an earlier call with the
    same population) are kept and scoring goes on after them. `mesh` is the scorer's
    (default: `proxies.population_mesh()`, every process's devices).
    """
    per_call = min(per_call, population.shape[0])
    # Inputs are replicated over the devices the population is sharded over.
    mesh = proxies.population_mesh() if mesh is None else mesh
    keys = distributed.replicate(keys, mesh)
    if not callable(batch):
        batch = distributed.replicate(batch, mesh)
    out = [] if previous is None else [previous]
    first = 0 if previous is None else previous.shape[0]
    for start in range(first, population.shape[0], per_call):
        chunk = population[start : start + per_call]
        real = chunk.shape[0]
        pad = per_call - real
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], pad, axis=0)])
        chunk_batch = batch
        if callable(batch):
            chunk_batch = batch(start, start + real)
            if pad:
                chunk_batch = jax.tree.map(
                    lambda v, n=pad: jnp.concatenate([v, jnp.repeat(v[:1], n, 0)]), chunk_batch
                )
            chunk_batch = distributed.replicate(chunk_batch, mesh)
        chunk = distributed.replicate(chunk, mesh)
        with jax.transfer_guard("disallow"):
            scores = scorer(chunk, chunk_batch, keys)
        out.append(distributed.to_host(scores)[:real])
        if checkpoint:
            distributed.save_whole(checkpoint, np.concatenate(out))
        progress.update(real)
    return np.concatenate(out)


def _check_finite_or_failed(name, scores):
    failed = int(np.isnan(scores).sum())
    if failed:
        print(f"warning: {name}: {failed} evaluations returned NaN (failed); they never win")


# ------------------------------------------------------------------------------ score


def _population(config, space, bench, key) -> np.ndarray:
    pop = config.population
    if pop.source == "all":
        return space.enumerate()
    if pop.source == "sample":
        if space.size <= 10**6:
            rows = np.asarray(
                jax.random.choice(key, space.size, (min(pop.size, space.size),), replace=False)
            )
            return space.enumerate()[np.sort(rows)]
        return np.asarray(space.sample(key, pop.size))
    if pop.source == "benchmark":
        if bench is None:
            raise errors.ConfigError("population.source='benchmark' needs benchmark.path")
        n = min(pop.size, len(bench))
        rows = np.sort(np.asarray(jax.random.choice(key, len(bench), (n,), replace=False)))
        return np.stack([space.from_string(a) for a in bench.column(bench.key)[rows]])
    if pop.source == "list":
        if not pop.archs:
            raise errors.ConfigError("population.source='list' needs population.archs")
        return np.stack([space.from_string(a) for a in pop.archs])
    raise errors.ConfigError(
        f"unknown population.source {pop.source!r}; expected sample, all, benchmark or list"
    )


def _score(config, workdir, resume=False) -> dict:
    space = _space(config)
    bench = _benchmark(config)
    images = _Images(config)
    key = jax.random.key(config.seed)
    key_pop, key_data, key_init = jax.random.split(key, 3)
    population = space.validate(_population(config, space, bench, key_pop))
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
    for group in _proxy_groups(config):
        name = "+".join(group)
        fns = list(group.values())
        proxy = fns[0] if len(fns) == 1 else proxies.stack(*fns)
        scorer = _scorer(config, space, proxy, per_arch, mesh)
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
            return _score_chunks(
                scorer,
                chunk,
                shard_batch,
                keys,
                config.archs_per_call,
                progress,
                checkpoint,
                previous,
                mesh,
            )

        path = distributed.score_shard(score_range, len(population), workdir, name + tag, resume)
        shards.append((group, name + tag, path))
        if progress is not None:
            timing[name] = {
                "seconds_total": time.perf_counter() - progress.start,
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
            _check_finite_or_failed(spec, scores[..., m])
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
                    "scores": [_json_float(v) for v in scores[i]],
                    "score": _json_float(agg[i]),
                }
            f.write(json.dumps(row) + "\n")

    # Every host's shard files, now merged into scores.jsonl.
    for _, file_name, _ in shards:
        for i in range(hosts.count):
            os.remove(distributed.shard_path(workdir, file_name, i, hosts.count))
    report = {"num_archs": len(population), "timing": timing, "correlations": {}}
    if bench is not None:
        report["correlations"] = _correlations(config, bench, archs, results)
    with open(os.path.join(workdir, "report.json"), "w") as f:
        json.dump(_jsonable(report), f, indent=2)
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


def _without_num_runs(config: dict) -> dict:
    return {**config, "search": {**config.get("search", {}), "num_runs": None}}


def _completed_runs(path: str, num_runs: int) -> list[dict]:
    """The records 0, 1, ..., k-1 at the head of an earlier `runs.jsonl` (a partial last
    line from an interrupted write is dropped)."""
    runs = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    break
                if record.get("run") != len(runs) or len(runs) == num_runs:
                    break
                runs.append(record)
    return runs


def _search(config, workdir, resume=False) -> dict:
    space = _space(config)
    bench = _benchmark(config)
    images = _Images(config)
    s = config.search
    if s.strategy not in strategies.STRATEGIES:
        raise errors.ConfigError(
            f"unknown strategy {s.strategy!r}; available: {sorted(strategies.STRATEGIES)}"
        )
    if config.data.batch_per_arch:
        raise errors.ConfigError(
            "data.batch_per_arch is for score mode; a search run shares one batch per run"
        )
    strategy = strategies.STRATEGIES[s.strategy](space, s.population_size)
    spec = config.proxies[0]
    scorer = _scorer(config, space, proxies.get_proxy(spec))
    path = os.path.join(workdir, "runs.jsonl")
    runs = _completed_runs(path, s.num_runs) if resume else []
    if runs:
        print(f"resuming: {len(runs)} of {s.num_runs} runs already in {path}")
    total = (s.num_runs - len(runs)) * s.num_generations * s.population_size
    progress = Progress(total, f"search {spec}")
    key = jax.random.key(config.seed)
    with open(path, "w") as f:
        for record in runs:
            f.write(json.dumps(record) + "\n")
        for r in range(len(runs), s.num_runs):
            start = time.perf_counter()
            key_run = jax.random.fold_in(key, r)
            key_state, key_data, key_init, key_loop = jax.random.split(key_run, 4)
            # One batch per run, shared by all its candidates (the NASWOT protocol).
            batch = images.batch(key_data)
            keys = jax.random.split(key_init, config.num_inits)
            state = strategy.init(key_state, strategy.default_params)
            seen = []
            for g in range(s.num_generations):
                key_ask, key_tell = jax.random.split(jax.random.fold_in(key_loop, g))
                population, state = strategy.ask(key_ask, state, strategy.default_params)
                population = np.asarray(population)
                scores = _score_chunks(
                    scorer, population, batch, keys, config.archs_per_call, progress
                )
                agg = proxies.aggregate(jnp.asarray(scores), config.aggregate)
                state, _ = strategy.tell(
                    key_tell, jnp.asarray(population), agg, state, strategy.default_params
                )
                seen.extend(space.to_string(p) for p in population)
            best = space.to_string(np.asarray(state.best.genotype))
            record = {
                "run": r,
                "arch": best,
                "score": _json_float(state.best.score),
                "seconds": time.perf_counter() - start,
            }
            if bench is not None:
                for target in config.benchmark.targets:
                    record[target] = float(bench.lookup(target, [best])[0])
                    record[f"optimal_in_sample/{target}"] = float(
                        np.nanmax(bench.lookup(target, seen))
                    )
            runs.append(record)
            f.write(json.dumps(record) + "\n")
            f.flush()
    summary = {
        "num_runs": s.num_runs,
        "population_size": s.population_size,
        "num_generations": s.num_generations,
        "proxy": spec,
        "seconds_per_run": evaluation.mean_std([r["seconds"] for r in runs]),
    }
    if bench is not None:
        for target in config.benchmark.targets:
            for name in (target, f"optimal_in_sample/{target}"):
                summary[name] = evaluation.mean_std([r[name] for r in runs])
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(_jsonable(summary), f, indent=2)
    print(f"{s.num_runs} search runs -> {workdir}/runs.jsonl")
    for name, value in summary.items():
        if isinstance(value, tuple):
            print(f"{name}: {value[0]:.2f} +- {value[1]:.2f}")
    return summary


def _jsonable(value):
    """Strict JSON: non-finite floats become null / "inf" / "-inf", tuples lists."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return _json_float(value)
    return value


def _json_float(value):
    value = float(value)
    if np.isnan(value):
        return None
    if np.isinf(value):
        return "-inf" if value < 0 else "inf"
    return value
