"""Fitness sources for `jaxnas.search`: `(key, population int32[P, D]) -> f32[P]` or f32[P, M].

Three kinds, all pure and jittable, so a whole search (and R seeds of it) is one program:

  * `live_proxy`: a proxy (or a proxy stack) scored on the fly through
    `proxies.score_population`, aggregated over K initialisations.
  * `lookup`: a column of a benchmark table (e.g. 12-epoch validation accuracy, as the
    NB201 tables' REA used, or HW-NAS-Bench latency), gathered on device. A finite space's
    genotypes map to table rows through `genotype_code` (the mixed-radix number of the
    genotype, i.e. its row in `space.enumerate()`), so the lookup is a `jnp.take`.
  * `score_table`: "score once, search many". A score-mode run with
    `population.source="all"` and K initialisations gives f32[N, K]; every evaluation of
    a search draws one of the K scores of the cell. This has the distribution of live
    scoring with one fresh initialisation per evaluation drawn from the same K seeds (on
    the same batch the table was scored with); it equals live scoring exactly when K = 1
    and the live run uses that initialisation and batch. It is not the NASWOT protocol
    of one batch per run unless the table was scored per batch.

Objectives are maximised; a cost (latency, FLOPs) is passed negated (`negate`). NaN means
a failed evaluation and never wins a comparison.
"""

import json
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors, proxies, types
from jaxnas.benchmarks import Benchmark
from jaxnas.proxies import combine
from jaxnas.spaces.base import SearchSpace

Fitness = Callable[[types.PRNGKey, types.Population], jax.Array]

# Finite spaces up to this size get a dense table indexed by `genotype_code`.
MAX_TABLE_SIZE = 10**7


def genotype_code(space: SearchSpace) -> Callable[[jax.Array], jax.Array]:
    """Returns `code(int32[..., D]) -> int32[...]`, the row of each genotype in
    `space.enumerate()` (lexicographic, i.e. mixed radix with the last position fastest)."""
    size = int(np.prod(space.num_choices, dtype=np.int64))
    if size > MAX_TABLE_SIZE:
        raise errors.ConfigError(
            f"space {space.name!r} has {size} genotypes; lookup fitness needs a finite space of "
            f"at most {MAX_TABLE_SIZE}"
        )
    strides = np.cumprod((1, *space.num_choices[::-1]))[:-1][::-1]
    strides = jnp.asarray(strides, jnp.int32)

    def code(genotypes):
        return genotypes.astype(jnp.int32) @ strides

    return code


def benchmark_table(space: SearchSpace, bench: Benchmark, columns: Sequence[str]) -> np.ndarray:
    """Benchmark columns laid out by genotype code: f32[N, len(columns)], NaN where a
    genotype has no row (e.g. NB101's invalid encodings).

    Raises:
      BenchmarkError: a missing column, or a table that covers none of the space.
    """
    size = int(np.prod(space.num_choices, dtype=np.int64))
    code = genotype_code(space)
    genotypes = np.stack([space.from_string(a) for a in bench.column(bench.key)])
    rows = np.asarray(code(jnp.asarray(genotypes)))
    table = np.full((size, len(columns)), np.nan, np.float32)
    for m, name in enumerate(columns):
        table[rows, m] = bench.column(name)
    if rows.size == 0:
        raise errors.BenchmarkError(f"benchmark {bench.name!r} covers none of {space.name!r}")
    return table


def lookup(space: SearchSpace, table) -> Fitness:
    """Fitness by gathering rows of a table laid out by genotype code.

    Args:
      space: the finite space.
      table: f32[N] (one objective) or f32[N, M] (M objectives), row = `genotype_code`.

    Returns:
      `(key, int32[P, D]) -> f32[P]` or f32[P, M] (the key is unused).
    """
    code = genotype_code(space)
    table = jnp.asarray(table, jnp.float32)

    def fitness(key, population):
        del key
        return jnp.take(table, code(population), axis=0)

    return fitness


def score_table(space: SearchSpace, table) -> Fitness:
    """Fitness drawing one of K stored scores per evaluation.

    Args:
      space: the finite space.
      table: f32[N, K] scores of every genotype (row = `genotype_code`) under K
        initialisations, e.g. from `load_score_tables`.

    Returns:
      `(key, int32[P, D]) -> f32[P]`: evaluation p reads column `randint(key)[p]` of
      its cell's row, so two evaluations of a cell may see different initialisations.
    """
    code = genotype_code(space)
    table = jnp.asarray(table, jnp.float32)
    if table.ndim != 2:
        raise errors.ShapeError(f"a score table is f32[N, K]; got shape {table.shape}")

    def fitness(key, population):
        draw = jax.random.randint(key, population.shape[:1], 0, table.shape[1])
        return table[code(population), draw]

    return fitness


def live_proxy(
    proxy: types.ProxyFn,
    space: SearchSpace,
    batch: types.Batch,
    keys: types.PRNGKey,
    *,
    aggregate: str = "mean",
    chunk_size: int | None = None,
    init_chunk_size: int = 0,
) -> Fitness:
    """Fitness by scoring each population with a proxy under K initialisation keys.

    The keys and the batch are fixed (common random numbers: a cell's score does not
    depend on the rest of the population); the search key is unused.

    Args:
      proxy: a proxy function or `proxies.stack(...)` of several.
      space: the search space.
      batch: the batch shared by every candidate.
      keys: key[K], the initialisations.
      aggregate: how the K scores reduce (`proxies.aggregate`).
      chunk_size: architectures vmapped together (`proxies.score_population`).
      init_chunk_size: initialisations vmapped together (0: by backend).

    Returns:
      `(key, int32[P, D]) -> f32[P]` (f32[P, M] for a stack of M proxies).
    """

    def fitness(key, population):
        del key
        sizes = {"chunk_size": chunk_size, "init_chunk_size": init_chunk_size}
        scores = proxies.score_population(proxy, space, population, batch, keys, **sizes)
        if scores.ndim == 3:
            return jnp.stack(
                [proxies.aggregate(scores[..., m], aggregate) for m in range(scores.shape[-1])],
                axis=-1,
            )
        return proxies.aggregate(scores, aggregate)

    return fitness


def negate(fitness: Fitness, columns: Sequence[int] | None = None) -> Fitness:
    """Turns costs into maximised objectives: negates all (or the given) columns."""

    def negated(key, population):
        values = fitness(key, population)
        if columns is None:
            return -values
        sign = jnp.ones(values.shape[-1]).at[jnp.asarray(columns)].set(-1.0)
        return values * sign.reshape((1,) * (values.ndim - 1) + (-1,))

    return negated


def stack(*sources: Fitness) -> Fitness:
    """Several single-objective sources as one f32[P, M] source (each gets its own key)."""

    def stacked(key, population):
        keys = jax.random.split(key, len(sources))
        return jnp.stack([f(k, population) for f, k in zip(sources, keys)], axis=-1)

    return stacked


def load_score_tables(space: SearchSpace, path: str, names: Sequence[str]) -> list[np.ndarray]:
    """The K per-initialisation scores of proxies of a score-mode run over a whole space,
    read in one pass over the file.

    Args:
      space: the finite space that was scored.
      path: `scores.jsonl` of a score-mode run with `population.source="all"` (or its
        workdir).
      names: the proxy specs (keys of each row).

    Returns:
      One f32[N, K] per name, row = `genotype_code` (missing scores are NaN).

    Raises:
      BenchmarkError: no such file, or a proxy or some cells are missing from it.
    """
    if os.path.isdir(path):
        path = os.path.join(path, "scores.jsonl")
    if not os.path.exists(path):
        raise errors.BenchmarkError(
            f"score table not found: {path} (run score mode with population.source='all' first)"
        )
    genotypes, scores = [], {name: [] for name in names}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            for name in names:
                if name not in row:
                    raise errors.BenchmarkError(
                        f"score table {path} has no proxy {name!r}; it has "
                        f"{sorted(set(row) - {'arch', 'genotype', 'index'})}"
                    )
                scores[name].append(
                    [np.nan if v is None else float(v) for v in row[name]["scores"]]
                )
            genotypes.append(row["genotype"])
    size = int(np.prod(space.num_choices, dtype=np.int64))
    rows = np.asarray(genotype_code(space)(jnp.asarray(np.asarray(genotypes, np.int32))))
    missing = size - np.unique(rows).size
    if missing and space.size == size:
        raise errors.BenchmarkError(
            f"score table {path} lacks {missing} of the {size} cells of {space.name!r}; "
            f"finish the score run (it resumes) before searching by lookup"
        )
    tables = []
    for name in names:
        table = np.full((size, len(scores[name][0])), np.nan, np.float32)
        table[rows] = np.asarray(scores[name], np.float32)
        tables.append(table)
    return tables


def combined_table(tables: Sequence[np.ndarray], method: str, aggregate: str) -> np.ndarray:
    """One fitness column from several proxies' score tables, combined over the space.

    Each f32[N, K] table is aggregated over its K initialisations (`proxies.aggregate`),
    then the combiner (`combine.make_combiner`: rank_sum, log_rank or vote) ranks the N
    cells of the whole space, so a cell's fitness does not depend on which cells a search
    evaluates with it. Cells without a score in some table (NaN) get NaN.

    Args:
      tables: M >= 2 tables f32[N, K_m], row = `genotype_code`.
      method: the combiner's name (LIBRA's selection is made by a score run; pass the three
        proxies it chose with its fusion).
      aggregate: how K initialisations aggregate (`config.aggregate`).

    Returns:
      f32[N], higher is better.
    """
    if method not in combine.COMBINERS or method == "libra":
        raise errors.ConfigError(
            f"unknown table combination {method!r}; expected one of "
            f"{[m for m in combine.COMBINERS if m != 'libra']} (for LIBRA, combine the three "
            f"proxies its score run chose with its fusion)"
        )
    if len(tables) < 2:
        raise errors.ConfigError(f"combining needs >= 2 proxies, got {len(tables)}")
    matrix = np.stack(
        [np.asarray(proxies.aggregate(jnp.asarray(t), aggregate)) for t in tables], axis=1
    )
    complete = np.all(np.isfinite(matrix), axis=1)
    out = np.full(matrix.shape[0], np.nan, np.float32)
    out[complete] = np.asarray(combine.make_combiner(method)(jnp.asarray(matrix[complete])))
    return out


def within_budget(space: SearchSpace, cost_table, budget: float) -> Callable:
    """`int32[P, D] -> bool[P]`: True where a cell's cost (f32[N] by genotype code) is at
    most `budget` (a cell without a cost fails the budget)."""
    code = genotype_code(space)
    cost = jnp.asarray(cost_table, jnp.float32)

    def allowed(population):
        return jnp.take(cost, code(population)) <= budget

    return allowed
