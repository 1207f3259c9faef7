"""What an experiment config names, built: the search space, the benchmark table, the
image source and the population to score (`jaxnas.experiment`, `jaxnas.supernet_search`
and the scripts that reuse a config)."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import benchmarks, data, dispatch, errors, spaces


def space(config):
    """The search space `config.space` names, built with its kwargs and the resolved
    dispatch (`dispatch.resolve`); ConfigError for an unknown name or argument."""
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


def benchmark(config):
    """The benchmark table of `config.benchmark` (None without a path), its target,
    reference and paired columns checked to exist."""
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
    # Targets may live in the extra tables (search); the search's report checks those.
    targets = () if b.extra_paths else b.targets
    for column in (*targets, *b.references, *paired):
        bench.column(column)
    return bench


def chunk_size(config) -> int:
    """Architectures vmapped together in a compiled call: `config.chunk_size`, or (0) the
    default of the resolved dispatch (`dispatch.resolve`)."""
    _, chunk = dispatch.resolve(
        spaces.SPACES[config.space.name],
        config.space.kwargs,
        config.dispatch,
        config.chunk_size,
        config.archs_per_call,
    )
    return chunk


def check_labels(labels, num_classes: int | None, setting: str) -> None:
    """DataError when int `labels` reach `num_classes` or beyond: the network's head (set
    by the config field `setting`) would not match the data, and a loss-based proxy would
    score NaN (no such class). Nothing to check without labels or a class count."""
    if labels is None or num_classes is None or len(labels) == 0:
        return
    top = int(np.max(labels))
    if top >= num_classes:
        raise errors.DataError(
            f"the data's labels go up to {top} but the network has {num_classes} classes; "
            f"set {setting}={top + 1} (e.g. 100 for CIFAR-100)"
        )


class Images:
    """The image source of `config.data` (synthetic, npz or tfds): draws a batch per key."""

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

    def check_classes(self, space) -> None:
        """`check_labels` of the pool's labels against the class count of `space`'s
        networks (`space.kwargs.num_classes`); nothing to check without labels."""
        if self.pool is not None and self.pool[1] is not None:
            check_labels(self.pool[1], network_classes(space), "space.kwargs.num_classes")

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


def network_classes(space) -> int | None:
    """The class count of `space`'s networks (its `num_classes` setting, the same for
    every architecture), read from the materialised network of a sampled one; None for
    a space without one."""
    genotype = np.asarray(space.sample(jax.random.key(0), 1))[0]
    return getattr(space.materialize(genotype), "num_classes", None)


def population(config, space, bench, key) -> np.ndarray:
    """int32[P, D] genotypes of `config.population`: a seeded sample, the whole space,
    seeded rows of the benchmark table `bench`, or a listed set of architectures."""
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
