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
    config_checks,
    data,
    dispatch,
    distributed,
    errors,
    evaluation,
    fitness,
    json_lines,
    pareto,
    proxies,
    search,
    search_report,
    spaces,
    strategies,
    training,
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
    # Further tables joined by architecture string, for targets the first lacks (search).
    c.benchmark.extra_paths = ()

    # Keep only the rows whose column equals the value, e.g. {"dataset": "cifar100"} for
    # a table holding several datasets.
    c.benchmark.where = ml_collections.ConfigDict()

    # Score mode: one combined score from the proxies and/or published table columns
    # (`jaxnas.combination`; combiners in `jaxnas.proxies.combine`). "" = none.
    c.combine = ml_collections.ConfigDict()
    c.combine.method = ""  # rank_sum | vote | log_rank | libra
    c.combine.proxies = ()  # scored proxies that enter the matrix (default: all)
    c.combine.columns = ()  # published score columns of the benchmark table
    c.combine.calibration_size = 0  # libra: labelled cells of the population, held apart
    c.combine.target = ""  # libra: accuracy column (default: benchmark.targets[0])
    c.combine.params = "params"  # libra: #params, a scored proxy or a table column
    c.combine.fusion = "rank_sum"  # libra: how the three chosen proxies are fused
    c.combine.margin = 0.1  # libra: candidate band below the best Spearman
    c.combine.num_bins = 8  # libra: equal-frequency bins of the entropy estimates

    c.search = ml_collections.ConfigDict()
    c.search.strategy = "random_search"
    c.search.population_size = 100  # N
    c.search.num_generations = 1
    c.search.num_runs = 1  # R independent seeded runs
    # Strategy hyper-parameters: names the factory takes (children_per_step, warmup_size,
    # max_tries) configure it; the rest override its dynamic params (tournament_size).
    c.search.params = ml_collections.ConfigDict()
    # What a search maximises (`jaxnas.fitness`): "proxy" (live: config.proxies[0] over
    # num_inits initialisations), "benchmark" (a column of the table at `path`, looked up
    # on device) or "table" (a score-mode run over the whole space at `table`, one of its
    # K scores drawn per evaluation; proxy = config.proxies[0]).
    c.search.fitness = ml_collections.ConfigDict(
        {"source": "proxy", "path": "", "column": "", "table": ""}
    )
    # AREA / proxy warm-up of REA: the initial population is the top N of `size` random
    # cells by this second fitness source (same fields as search.fitness; "" = none).
    c.search.warmup = ml_collections.ConfigDict(
        {"source": "", "path": "", "column": "", "table": "", "size": 0}
    )
    # A cost column (params, FLOPs, a HW-NAS-Bench latency) of the table at `path`:
    # `budget` > 0 rejects cells above it where the strategy takes a constraint
    # ("evolution"), and the report names the fittest evaluated cell under it beside the
    # best cell of the space under it; `objective` makes the cost a second, minimised
    # objective ("nsga2") and reports the run's front and its hypervolume.
    c.search.cost = ml_collections.ConfigDict(
        {"path": "", "column": "", "budget": 0.0, "objective": False}
    )
    # Simulated-time budget (NB201's REA): seconds per evaluation from column `column` of
    # search.fitness.path; generations stop once `budget` seconds are spent. 0 = off.
    c.search.time = ml_collections.ConfigDict({"column": "", "budget": 0.0})
    c.search.runs_per_call = 100  # lookup / table fitness: seeds vmapped per compiled call

    c.report = ml_collections.ConfigDict()
    c.report.num_bootstrap = 1000
    # The published row printed beside ours (search): target -> (mean, std), and its source.
    c.report.published = ml_collections.ConfigDict()
    c.report.published_source = ""

    c.train = training.default_config()  # mode=train
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
    use_cifar10_train_images(config.data)
    config.data.normalization = "cifar10-naslib"
    config.data.augment = True
    config.data.crop_padding = 4
    config.data.batch_size = args.batch
    config.data.batch_per_arch = args.per_cell
    config.report.num_bootstrap = 500
    return config, args


# The 1,280 real CIFAR-10 training (and 1,000 test) images of the shared data.
CIFAR10_IMAGES = ("images", "cifar10_jpeg_yoongikim_train1280_test1000.npz")


def use_cifar10_train_images(data_config: ml_collections.ConfigDict) -> None:
    """Points a config's `data` block at the shared data's 1,280 real CIFAR-10 training
    images and labels (`CIFAR10_IMAGES`); normalisation and batch size are left as set."""
    data_config.source = "npz"
    data_config.path = shared_path(*CIFAR10_IMAGES)
    data_config.images_key = "train_images"
    data_config.labels_key = "train_labels"


def shared_path(*parts: str) -> str:
    """A file under the shared data directory (see `benchmarks.shared_data_dir`)."""
    return os.path.join(benchmarks.shared_data_dir(), *parts)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs the experiment; returns the report (score) or the summary (search)."""
    config_checks.validate(config, default_config())
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
    if config.mode == "supernet":
        # Imported here: supernet_search builds on this module's helpers.
        from jaxnas import supernet_search

        return supernet_search.run(config, workdir, resume=same_config)
    if config.mode == "train":
        return training.train(config, workdir)
    raise errors.ConfigError(
        f"unknown mode {config.mode!r}; expected 'score', 'search', 'supernet' or 'train'"
    )


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
        b.path,
        key=b.key,
        key_columns=tuple(b.key_columns),
        separator=b.key_separator,
        where=dict(b.where),
    )
    paired = tuple(b.reference_of.values())
    # Targets may live in the extra tables (search); `_Targets` checks those.
    targets = () if b.extra_paths else b.targets
    for column in (*targets, *b.references, *paired):
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
    one group per set of declared network overrides (`proxies.fuse_groups`), in the
    order of `config.proxies`."""
    specs = list(dict.fromkeys(config.proxies))
    groups = proxies.fuse_groups(specs) if config.fuse_proxies else [[s] for s in specs]
    return [{spec: proxies.get_proxy(spec) for spec in group} for group in groups]


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
    combination.validate(config)
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
    if config.combine.method:
        report["combine"] = combination.run(config, bench, archs, results, workdir)
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
    for record in json_lines.read_json_lines(path):
        if record.get("run") != len(runs) or len(runs) == num_runs:
            break
        runs.append(record)
    return runs


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
    if spec.source == "proxy":
        proxy = proxies.get_proxy(config.proxies[0])
        chunk, how = config.chunk_size, config.aggregate

        def live(batch, keys):
            return fitness.live_proxy(proxy, space, batch, keys, aggregate=how, chunk_size=chunk)

        return live, True
    if spec.source == "benchmark":
        table = _lookup_column(space, spec.path, spec.column, f"{what}.source='benchmark'")
        return (lambda batch, keys: fitness.lookup(space, table)), False
    if spec.source == "table":
        if not spec.table:
            raise errors.ConfigError(f"{what}.source='table' needs {what}.table (a score run)")
        table = fitness.load_score_table(space, spec.table, config.proxies[0])
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
    space = _space(config)
    bench = _benchmark(config)
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
        images = _Images(config)
        records = _completed_runs(path, s.num_runs) if resume else []
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
                f.write(json.dumps(_jsonable(record)) + "\n")
                f.flush()
                progress.update(1)
        outputs = (None, jax.tree.map(lambda *v: np.stack(v), *curves)) if curves else None
    else:
        outputs, records = _search_by_lookup(config, space, targets, program, run_keys, cost_table)
        with open(path, "w") as f:
            for record in records:
                f.write(json.dumps(_jsonable(record)) + "\n")
    summary = _search_summary(config, space, targets, records, outputs, workdir, cost_table)
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(_jsonable(summary), f, indent=2)
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
