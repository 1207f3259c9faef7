"""Config helpers for the files under `configs/`: every field an experiment config may
set (`default_config`), typed parsing of a config file's argument (`parse_arg`), the
NAS-Bench-Suite-Zero scoring settings (`suite_zero`), the benchmark tables configs draw
cells from (`Table`, `draw_cells`) and the shared data's paths."""

import os
from typing import NamedTuple

import ml_collections

from jaxnas import benchmarks, errors, training


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
    # Initialisations of an architecture vmapped together; 0: by backend (1 on a CPU, all
    # num_inits on a GPU/TPU: `dispatch.init_chunk`).
    c.init_chunk_size = 0
    c.archs_per_call = 16  # architectures per compiled call (progress granularity)
    # Compiled calls in flight at once, each in a host thread; 0: by backend and the
    # program's temporaries (`dispatch.concurrent_calls`: 2 on a CPU when small).
    c.concurrent_calls = 0
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
    c.combine.target = ""  # libra: accuracy column (default: each of benchmark.targets)
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
    # K scores drawn per evaluation; proxy = config.proxies[0]). With "table", `combine`
    # (rank_sum | log_rank | vote) makes the fitness the combination of the table's
    # `proxies` (default config.proxies) ranked over the whole space, e.g. the three a
    # LIBRA score run chose (its combine.json) under its fusion.
    fitness_fields = {
        "source": "proxy",
        "path": "",
        "column": "",
        "table": "",
        "combine": "",
        "proxies": (),
    }
    c.search.fitness = ml_collections.ConfigDict(fitness_fields)
    # AREA / proxy warm-up of REA: the initial population is the top N of `size` random
    # cells by this second fitness source (same fields as search.fitness; "" = none).
    c.search.warmup = ml_collections.ConfigDict({**fitness_fields, "source": "", "size": 0})
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


class Table(NamedTuple):
    """A benchmark table under the shared data and how its rows name cells.

    `key` is the column holding a row's architecture in `space`'s notation or, where
    `key_columns` is set, the name given to those columns joined (NB101: rows;ops).
    """

    space: str
    folder: str
    file: str
    key: str
    key_columns: tuple[str, ...] = ()

    def path(self) -> str:
        """The table's path under the shared data (`shared_path`)."""
        return shared_path(self.folder, self.file)


NB201_ACCURACIES = Table("nb201", "nasbench201", "nb201_test_acc_200ep.csv.gz", "arch_str")
NB201_SUITE_ZERO = Table(
    "nb201", "nasbench201", "nb201_zc_suitezero_cifar10_9445.csv.gz", "arch_str"
)
NB201_SUITE_ZERO_3DATASETS = Table(
    "nb201", "nasbench201", "nb201_zc_suitezero_subset725_3datasets.csv.gz", "arch_str"
)
NB101_SUITE_ZERO = Table(
    "nb101",
    "nasbench101",
    "nb101_zc_suitezero_subset250_cifar10.csv.gz",
    "arch",
    ("adjacency_rows", "ops"),
)
NB301_SUITE_ZERO = Table(
    "darts", "nasbench301_darts", "nb301_zc_suitezero_subset363_cifar10.csv.gz", "genotype"
)


def draw_cells(config: ml_collections.ConfigDict, table: Table, size: int) -> None:
    """Sets a config's space to `table`'s and its population to `size` distinct rows of
    the table drawn with the config's seed (targets and row filters are left as set)."""
    config.space.name = table.space
    config.population.source = "benchmark"
    config.population.size = size
    config.benchmark.path = table.path()
    config.benchmark.key = table.key
    config.benchmark.key_columns = table.key_columns


def bench_scores(
    args: ml_collections.ConfigDict, benches: dict[str, tuple], proxies: tuple[str, ...]
) -> tuple[ml_collections.ConfigDict, tuple]:
    """A config scoring `proxies` on cells of the table of `benches[args.bench]`.

    `benches` maps a bench name to `(table, default number of cells, ..., accuracy
    columns)`; `args` (from `parse_arg`) holds bench, size (0: the default), seed,
    batch, stem (NB101's stem width) and fuse. Returns the config and the bench's entry.
    """
    if args.bench not in benches:
        raise errors.ConfigError(f"unknown bench {args.bench!r}; expected {sorted(benches)}")
    entry = benches[args.bench]
    table, size, targets = entry[0], entry[1], entry[-1]
    config = default_config()
    config.seed = args.seed
    config.proxies = proxies
    config.fuse_proxies = args.fuse
    draw_cells(config, table, args.size or size)
    if table.space == "nb101":
        config.space.kwargs = {"stem_channels": args.stem}
    config.benchmark.targets = targets
    config.data.batch_size = args.batch
    return config, entry


def suite_zero(
    arg: str | None, table: Table, proxies: tuple[str, ...], size: int, **defaults
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
            f"no published column for {unknown} in {table.file}; available: {sorted(proxies)}"
        )
    config = default_config()
    config.seed = args.seed
    config.fuse_proxies = args.fuse
    config.proxies = names
    draw_cells(config, table, args.size)
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


def tenas_search(args: ml_collections.ConfigDict, prune_number: int) -> ml_collections.ConfigDict:
    """The supernet-mode config of TE-NAS's pruning-by-importance (`strategies.tenas`):
    NTK condition number and linear regions on the shared CIFAR-10 training images,
    `args.runs` runs from `args.seed`, `prune_number` ops pruned per edge and round, and
    `args`' `repeats`, `ntk_batch` and `crops`; the space and benchmark are the caller's."""
    config = default_config()
    config.mode = "supernet"
    config.seed = args.seed
    config.proxies = ("ntk_cond", "linear_regions")
    use_cifar10_train_images(config.data)
    config.data.normalization = "cifar10"
    config.search.strategy = "tenas"
    config.search.num_runs = args.runs
    config.search.params = dict(
        prune_number=prune_number,
        repeats=args.repeats,
        ntk_batch=args.ntk_batch,
        crops=args.crops,
    )
    return config


def shared_path(*parts: str) -> str:
    """A file under the shared data directory (see `benchmarks.shared_data_dir`)."""
    return os.path.join(benchmarks.shared_data_dir(), *parts)
