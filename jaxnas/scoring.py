"""The chunked scoring engine: a population scored in fixed-size compiled calls, resumable
from a checkpoint (the CLI's score mode, KNAS's pool and `scripts/proxy_report.py`)."""

import collections
import concurrent.futures
import functools
import itertools
import time
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxnas import dispatch, distributed, proxies, types
from jaxnas.progress import Progress
from jaxnas.spaces import SearchSpace


class Scorer:
    """A population scorer in two compiled programs, called as
    `scorer(population, batch, keys) -> f32[P, K(, M)]` with the arguments and result of
    `proxies.score_population`.

    With shared keys key[K], `init(population, batch, keys)` draws the K initialisations
    (`proxies.shared_initialisations`) and `score(population, batch, keys,
    initialisations)` scores the population with them; with key[P, K], `score` draws its
    own and takes None. The initialisation program depends only on the space, the
    proxy's network settings, the image shape and K: each scorer traces its own, but
    with JAX's persistent compilation cache on (the CLI's default) it is compiled once
    for every proxy and run that share them, and the scoring programs no longer compile
    it (on DARTS ~8 s of each one's compile). Without the cache every scorer compiles
    its own, so a single proxy then pays a little more than one program did (NB201
    naswot 4.7 -> 5.9 s; docs/performance.md).
    """

    def __init__(self, init, score):
        self.init = init
        self.score = score

    def __call__(self, population, batch, keys) -> jax.Array:
        initialisations = self.init(population, batch, keys) if keys.ndim == 1 else None
        return self.score(population, batch, keys, initialisations)

    def temp_bytes(self, population, batch, keys) -> int | None:
        """XLA's temporary bytes for one call of the scoring program with these arguments
        (from its compiled form, which JAX has cached once a call has run); None where the
        backend does not say."""
        score = self.score
        if hasattr(score, "lower"):
            initialisations = self.init(population, batch, keys) if keys.ndim == 1 else None
            score = score.lower(population, batch, keys, initialisations).compile()
        analysis = score.memory_analysis()
        return None if analysis is None else analysis.temp_size_in_bytes

    def map(self, fn) -> "Scorer":
        """A scorer whose programs are `fn(program, "init")` and `fn(program, "score")`
        (e.g. `compilation_cache.traced`)."""
        return Scorer(fn(self.init, "init"), fn(self.score, "score"))

    def compile(self, population, batch, keys) -> "Scorer":
        """The scorer compiled ahead of time for arguments like these (its programs must
        be `jax.jit` functions)."""
        if keys.ndim != 1:
            return Scorer(self.init, self.score.lower(population, batch, keys, None).compile())
        init = self.init.lower(population, batch, keys).compile()
        initialisations = init(population, batch, keys)
        return Scorer(init, self.score.lower(population, batch, keys, initialisations).compile())


def make_scorer(
    proxy: types.ProxyFn,
    space: SearchSpace,
    *,
    chunk_size: int | None = None,
    init_chunk_size: int = 0,
    batch_per_arch: bool = False,
    mesh=None,
) -> Scorer:
    """The `Scorer` of `proxies.score_population` with these settings (`inputs.chunk_size`
    resolves a config's); its initialisations are replicated over the mesh's devices."""
    mesh = proxies.population_mesh() if mesh is None else mesh  # the same for both programs
    replicated = NamedSharding(mesh, PartitionSpec())

    @functools.partial(jax.jit, out_shardings=replicated)
    def init(population, batch, keys):
        return proxies.shared_initialisations(
            proxy, space, population, batch, keys, batch_per_arch=batch_per_arch
        )

    @jax.jit
    def score(population, batch, keys, initialisations):
        return proxies.score_population(
            proxy,
            space,
            population,
            batch,
            keys,
            chunk_size=chunk_size,
            init_chunk_size=init_chunk_size,
            batch_per_arch=batch_per_arch,
            mesh=mesh,
            initialisations=initialisations,
        )

    return Scorer(init, score)


def proxy_groups(config) -> list[dict[str, types.ProxyFn]]:
    """The proxies scored together, spec -> function: one group each, or (`fuse_proxies`)
    one group per set of declared network overrides (`proxies.fuse_groups`), in the
    order of `config.proxies`."""
    specs = list(dict.fromkeys(config.proxies))
    groups = proxies.fuse_groups(specs) if config.fuse_proxies else [[s] for s in specs]
    return [{spec: proxies.get_proxy(spec) for spec in group} for group in groups]


def score_chunks(
    scorer: Scorer,
    population: np.ndarray,
    batch,
    keys: jax.Array,
    per_call: int,
    progress: Progress,
    checkpoint: str | None = None,
    previous: np.ndarray | None = None,
    mesh=None,
    concurrent_calls: int = 0,
) -> np.ndarray:
    """f32[P, K, ...] scores of a host population, in fixed-size compiled calls (padded).

    `batch` is shared by every architecture, or a function `(start, stop) -> batch` giving
    the batches of architectures `start..stop-1` stacked (a scorer with `batch_per_arch`).
    With `checkpoint` (a .npy path) the scores so far are saved after every call;
    `previous` (scores of the first architectures, saved by an earlier call with the
    same population) are kept and scoring goes on after them. `mesh` is the scorer's
    (default: `proxies.population_mesh()`, every process's devices). The first call
    (which compiles) runs alone; after it, `concurrent_calls` calls run at once, each in
    a host thread, and their scores are kept, saved and counted in order. 0 (auto):
    `dispatch.concurrent_calls`' choice for the first call's temporaries, kept when the
    next calls show it faster (one call alone, then that many at once) and 1 otherwise.
    The calls after the first run in other threads, outside the caller's thread-local
    JAX settings (`jax.default_matmul_precision` and the like): set those globally.
    """
    out = [] if previous is None else [previous]
    first = 0 if previous is None else previous.shape[0]

    def run(args):
        with jax.transfer_guard("disallow"):
            return jax.block_until_ready(scorer(*args))

    def finish(real, scores):
        out.append(distributed.to_host(scores)[:real])
        if checkpoint:
            distributed.save_whole(checkpoint, np.concatenate(out))
        progress.update(real)

    def window(calls, workers) -> float | None:
        """Runs `calls`, `workers` at once; seconds per call (None: there were none)."""
        start, count, pending = time.perf_counter(), 0, collections.deque()

        def finish_oldest():
            real, future = pending.popleft()
            finish(real, future.result())

        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            try:
                for real, args in calls:
                    pending.append((real, pool.submit(run, args)))
                    count += 1
                    if len(pending) == workers:
                        finish_oldest()
                while pending:
                    finish_oldest()
            finally:
                for _, future in pending:  # interrupted: the calls not yet started never start
                    future.cancel()
        return (time.perf_counter() - start) / count if count else None

    workers = concurrent_calls and dispatch.concurrent_calls(concurrent_calls, lambda: None)
    calls = _calls(population, batch, keys, per_call, first, mesh)
    head = next(calls, None)
    if head is None:
        return np.concatenate(out)
    real, args = head
    finish(real, run(args))
    if not workers:
        workers = dispatch.concurrent_calls(0, lambda: scorer.temp_bytes(*args))
        if workers > 1:
            # Calls at once pay where a call's kernels leave cores idle and cost where the
            # calls are small (batch-1 meco: 1.8x slower): the next calls, one alone and
            # then `workers` at once, decide.
            alone = window(itertools.islice(calls, 1), 1)
            together = window(itertools.islice(calls, workers), workers)
            if alone is not None and together is not None and together >= alone:
                workers = 1
    window(calls, workers)
    return np.concatenate(out)


def compile_scorer(
    scorer, population: np.ndarray, batch, keys: jax.Array, per_call: int, mesh=None
):
    """`scorer` (a `Scorer`) compiled ahead of time for the calls of `score_chunks` with
    the same arguments, so that compilation is timed apart from scoring."""
    _, args = next(_calls(population, batch, keys, per_call, 0, mesh))
    return scorer.compile(*args)


def _calls(population, batch, keys, per_call, first, mesh) -> Iterator[tuple[int, tuple]]:
    """`(real, (chunk, batch, keys))` per call from architecture `first` on: `real`
    architectures padded to `per_call` with copies of the chunk's first, the inputs
    replicated over the devices the population is sharded over."""
    per_call = min(per_call, population.shape[0])
    mesh = proxies.population_mesh() if mesh is None else mesh
    keys = distributed.replicate(keys, mesh)
    if not callable(batch):
        batch = distributed.replicate(batch, mesh)
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
        yield real, (distributed.replicate(chunk, mesh), chunk_batch, keys)


def warn_failed(name: str, scores: np.ndarray) -> None:
    """Prints how many of a proxy's scores are NaN (failed evaluations), if any."""
    failed = int(np.isnan(scores).sum())
    if failed:
        print(f"warning: {name}: {failed} evaluations returned NaN (failed); they never win")
