"""Scoring populations of architectures with a proxy, over several random initialisations.

A proxy is a pure function `proxy(network, params, batch, key) -> f32[]` (higher is
better, NaN = failed). `score_population` turns it into `f32[P, K]` for P genotypes of a
search space and K initialisation keys; it is a pure function of its inputs, so the
caller decides where to `jax.jit` it (one compile serves every population of the same
shape). Populations are sharded over the devices (a `jax.sharding.Mesh` with a
`"population"` axis; `population_mesh`).
"""

import contextlib
import contextvars
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from jaxnas import dispatch, errors, types
from jaxnas.network import Network, initial_params, rescaled_init
from jaxnas.spaces.base import SearchSpace


def with_network_overrides(proxy: types.ProxyFn, **overrides) -> types.ProxyFn:
    """Declares the static network overrides a proxy needs; returns `proxy`.

    E.g. synflow scores the network without BatchNorm (`batch_norm=False`).
    `score_population` builds every network with them (explicit `network_kwargs`
    win); callers that build networks themselves read them with `network_overrides`.
    """
    proxy.network_overrides = dict(overrides)
    return proxy


def network_overrides(proxy: types.ProxyFn) -> dict[str, Any]:
    """The static `space.network` overrides `proxy` declared (usually none)."""
    return dict(getattr(proxy, "network_overrides", {}))


def with_shared_requests(proxy: types.ProxyFn, *names: str) -> types.ProxyFn:
    """Declares the `shared` results a proxy asks for; returns `proxy`.

    A `stack` tells its proxies (`requested`) what the others will ask for, so that two
    results computable together are computed together (the loss gradient and the input
    gradient from one forward pass, `layerwise.loss_pass`).
    """
    proxy.shared_requests = tuple(names)
    return proxy


def shared_requests(proxy: types.ProxyFn) -> tuple[str, ...]:
    """The `shared` results `proxy` declared (usually none)."""
    return tuple(getattr(proxy, "shared_requests", ()))


_SHARED: contextvars.ContextVar[dict | None] = contextvars.ContextVar("shared", default=None)
_REQUESTED: contextvars.ContextVar[frozenset] = contextvars.ContextVar(
    "requested", default=frozenset()
)


@contextlib.contextmanager
def sharing(requests=()):
    """Within this context `shared` traces each distinct computation once; `requests`
    are the shared results the proxies traced in it declared (`requested`)."""
    token = _SHARED.set({})
    requested_token = _REQUESTED.set(frozenset(requests))
    try:
        yield
    finally:
        _REQUESTED.reset(requested_token)
        _SHARED.reset(token)


def requested(name: str) -> bool:
    """Whether a proxy traced in the current `sharing()` context declared `name`."""
    return name in _REQUESTED.get()


def shared(name: str, fn: Callable[..., Any], *args) -> Any:
    """`fn(*args)`, traced once per `name` and argument objects inside `sharing()`.

    XLA does not merge two identical gradient computations that contain `lax.switch`
    (measured: snip + grad_norm + plain stacked cost 3.1x snip alone), so proxies that
    need the same intermediate result (the loss gradient, the input gradient) ask for
    it by name and the first request's traced value serves the others. Arguments are
    matched by identity (the same network, params and batch objects of one stacked
    call) and kept alive in the cache so identities cannot be reused. Outside
    `sharing()` this is just `fn(*args)`.
    """
    cache = _SHARED.get()
    if cache is None:
        return fn(*args)
    key = (name, *(id(a) for a in args))
    if key not in cache:
        cache[key] = (args, fn(*args))
    return cache[key][1]


def stack(*proxy_fns: types.ProxyFn) -> types.ProxyFn:
    """Several proxies as one function returning their scores side by side: f32[M].

    The proxies are traced together inside `sharing()`, so an intermediate result they
    request through `shared` is computed once (snip, grad_norm and plain take the same
    loss gradient; jacob_cov and epe_nas the same input gradient). `score_population`
    of the stacked proxy returns f32[P, K, M]. The proxies must declare the same network
    overrides.
    """
    if not proxy_fns:
        raise errors.ConfigError("stack needs at least one proxy")
    overrides = network_overrides(proxy_fns[0])
    if any(network_overrides(p) != overrides for p in proxy_fns[1:]):
        raise errors.ConfigError(
            "proxies with different network overrides cannot be stacked: "
            f"{[network_overrides(p) for p in proxy_fns]}"
        )

    requests = {name for p in proxy_fns for name in shared_requests(p)}

    def stacked(network, params, batch, key):
        with sharing(requests):
            scores = [jnp.asarray(p(network, params, batch, key), jnp.float32) for p in proxy_fns]
        return jnp.stack(scores)

    return with_network_overrides(stacked, **overrides)


def score_network(
    proxy: types.ProxyFn, network: Network, batch: types.Batch, key: types.PRNGKey
) -> types.Score:
    """Initialises `network` with one key and scores it: f32[].

    The key is split into an initialisation key and a proxy key (for proxies that draw
    random numbers), so a score is a deterministic function of `(network, batch, key)`.
    """
    key_init, key_proxy = jax.random.split(key)
    params = initial_params(network, key_init, batch["x"])
    return jnp.asarray(proxy(network, params, batch, key_proxy), jnp.float32)


def score_inits(
    proxy: types.ProxyFn,
    network: Network,
    batch: types.Batch,
    keys: types.PRNGKey,
    *,
    init_chunk_size: int = 0,
    backend: str | None = None,
) -> jax.Array:
    """Scores one network under K initialisations (key[K]): f32[K], evaluated
    `init_chunk_size` at a time (`map_inits`; 0: by `backend`)."""
    return map_inits(
        lambda key: score_network(proxy, network, batch, key), (keys,), init_chunk_size, backend
    )


def map_inits(fn, per_init, init_chunk_size: int = 0, backend: str | None = None) -> jax.Array:
    """`fn(*item)` for every item along the leading (initialisation) axis of the arrays in
    `per_init`, `lax.map`ped in chunks of `init_chunk_size` vmapped together (at least
    the number of items: all vmapped at once; 0: `dispatch.init_chunk`'s default for
    `backend`, one at a time on a CPU, all at once on an accelerator). The results are
    the same for every chunk size; chunks bound a call's memory to that many networks'
    activations (swap's 32 initialisations of an NB101 network need 45.6 GB at once).
    """
    num = jax.tree.leaves(per_init)[0].shape[0]
    chunk = dispatch.init_chunk(num, init_chunk_size, backend)
    if chunk == num:
        return jax.vmap(fn)(*per_init)
    return jax.lax.map(lambda item: fn(*item), per_init, batch_size=chunk)


POPULATION_AXIS = "population"


def population_mesh(devices=None) -> Mesh:
    """A one-axis mesh (`"population"`) over `devices` (default: every process's devices,
    `jax.devices()`; the local devices unless the run joined `jax.distributed`)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (POPULATION_AXIS,))


def score_population(
    proxy: types.ProxyFn,
    space: SearchSpace,
    population: types.Population,
    batch: types.Batch,
    keys: types.PRNGKey,
    *,
    network_kwargs: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
    init_chunk_size: int = 0,
    batch_per_arch: bool = False,
    mesh: Mesh | None = None,
    initialisations: Any = None,
) -> jax.Array:
    """Scores every genotype of a population under every initialisation key.

    Score [p, k] equals `score_network(proxy, space.network(population[p]), batch,
    key)` with the key of (p, k) (and, with `batch_per_arch`, the batch of p).

    Args:
      proxy: the proxy function.
      space: the search space; `space.network(genotype, **network_kwargs)` builds each
        network from a traced genotype, so the population is data and one compiled
        program serves every architecture.
      population: int32[P, D] genotypes, checked with `space.validate` when concrete
        (a traced population inside the caller's `jit` cannot be: validate it first).
      batch: `{"x": f32[B, H, W, C], "y": int32[B]}`, shared by every architecture;
        with `batch_per_arch`, `{"x": f32[P, B, H, W, C], "y": int32[P, B]}`, one batch
        per architecture (NAS-Bench-Suite-Zero drew a new batch for every cell).
      keys: key[K] shared by every architecture, or key[P, K] per architecture. With
        shared keys the scores are common random numbers: a genotype's score does not
        depend on the rest of the population, and since a space's parameters do not
        depend on the genotype, the K initialisations are drawn once for the whole
        population (architectures use the slices of them that they select, rescaled to
        their own layer widths by the network's `rescale_init`).
      network_kwargs: static overrides for `space.network` (e.g. a proxy network's
        width); they take precedence over the proxy's own `network_overrides`.
      chunk_size: architectures evaluated together with `vmap`; the population is mapped
        over in chunks of this size with `lax.map`. None (or 1) evaluates one
        architecture at a time, which bounds memory and keeps "switch" dispatch a real
        branch; larger chunks suit "mask" dispatch on accelerators.
      batch_per_arch: whether `batch` has a leading population axis.
      mesh: the devices to shard the population over, along its `"population"` axis
        (its other axes, if any, hold replicas); None: `population_mesh()`, all devices
        (of every process, in a multi-process run: the inputs must then be global
        arrays, e.g. `distributed.replicate`). Each device maps over its contiguous
        share of the genotypes (padded to a multiple of the device count with copies of
        the first, whose scores are dropped); the initial parameters and a shared batch
        are replicated.
      initialisations: with shared keys, the K parameter draws
        `shared_initialisations` returns for the same proxy, space, settings, batch and
        keys, drawn beforehand (e.g. in a program of their own, as `scoring.make_scorer`
        does); None draws them here. Their structure, shapes and dtypes are checked;
        that they come from these keys cannot be.

    Returns:
      f32[P, K] scores (f32[P, K, M] for a `stack` of M proxies); NaN marks a failed
      evaluation.
    """
    concrete = not isinstance(population, jax.core.Tracer)
    population = _check_population(space, population)
    if concrete:
        space.validate(population)
    num = population.shape[0]
    _check_batch(batch, num if batch_per_arch else None)
    kwargs = {**network_overrides(proxy), **(network_kwargs or {})}
    mesh = population_mesh() if mesh is None else mesh
    if POPULATION_AXIS not in mesh.shape:
        raise errors.ConfigError(
            f"score_population shards over a mesh axis named {POPULATION_AXIS!r}; got axes "
            f"{tuple(mesh.shape)}"
        )

    backend = mesh.devices.flat[0].platform

    def network(genotype):
        return space.network(genotype, **kwargs)

    if keys.ndim == 1:
        key_pairs = jax.vmap(jax.random.split)(keys)
        draw = functools.partial(
            shared_initialisations,
            proxy,
            space,
            population,
            batch,
            keys,
            network_kwargs=network_kwargs,
            batch_per_arch=batch_per_arch,
        )
        if initialisations is None:
            params = draw()
        else:
            params = _check_initialisations(initialisations, jax.eval_shape(draw))

        def score_shared(item, shared_batch, params, proxy_keys):
            genotype, arch_batch = item if batch_per_arch else (item, shared_batch)
            net = network(genotype)

            def score(p, k):
                return jnp.asarray(proxy(net, rescaled_init(net, p), arch_batch, k), jnp.float32)

            return map_inits(score, (params, proxy_keys), init_chunk_size, backend)

        # The initial parameters are drawn once and replicated (common random numbers).
        replicated = ({} if batch_per_arch else batch, params, key_pairs[:, 1])
        per_arch = (population, batch) if batch_per_arch else population
        return _map_sharded(score_shared, per_arch, replicated, num, mesh, chunk_size)

    if keys.ndim != 2 or keys.shape[0] != num:
        raise errors.ShapeError(
            f"keys must be key[K] or key[P={num}, K], got shape {tuple(keys.shape)}"
        )
    if initialisations is not None:
        raise errors.ShapeError(
            "initialisations are shared draws for key[K] keys; key[P, K] draws its own"
        )

    def score_own(item, shared_batch):
        if batch_per_arch:
            genotype, arch_batch, arch_keys = item
        else:
            (genotype, arch_keys), arch_batch = item, shared_batch
        return score_inits(
            proxy,
            network(genotype),
            arch_batch,
            arch_keys,
            init_chunk_size=init_chunk_size,
            backend=backend,
        )

    per_arch = (population, batch, keys) if batch_per_arch else (population, keys)
    replicated = ({} if batch_per_arch else batch,)
    return _map_sharded(score_own, per_arch, replicated, num, mesh, chunk_size)


def shared_initialisations(
    proxy: types.ProxyFn,
    space: SearchSpace,
    population: types.Population,
    batch: types.Batch,
    keys: types.PRNGKey,
    *,
    network_kwargs: Mapping[str, Any] | None = None,
    batch_per_arch: bool = False,
) -> Any:
    """The K initialisations that `score_population` shares across a population scored
    with keys key[K]: the space's parameters drawn once per key, stacked along a leading
    axis of length K (before each architecture's `rescale_init`).

    A space's parameters do not depend on the genotype, so the draws depend only on the
    proxy's network settings, the image shape and the keys (`population[0]` serves as
    the template). Drawn in a program of their own (`scoring.make_scorer`), they are
    compiled once for every proxy of a space rather than inside each scoring program,
    where the initialisation's kernels, one or two per parameter array, are a large
    share of the compile (855 arrays on DARTS). Pass the result to `score_population`
    as `initialisations`; arguments as there.
    """
    population = _check_population(space, population)
    _check_batch(batch, population.shape[0] if batch_per_arch else None)
    if keys.ndim != 1:
        raise errors.ShapeError(f"shared initialisations take key[K], got shape {keys.shape}")
    kwargs = {**network_overrides(proxy), **(network_kwargs or {})}
    key_pairs = jax.vmap(jax.random.split)(keys)
    example = batch["x"][0] if batch_per_arch else batch["x"]
    template = space.network(population[0], **kwargs)
    return jax.vmap(template.init, in_axes=(0, None))(key_pairs[:, 0], example)


def _check_population(space: SearchSpace, population: types.Population) -> jax.Array:
    population = jnp.asarray(population)
    if population.ndim != 2 or population.shape[1] != len(space.num_choices):
        raise errors.ArchitectureError(
            f"a {space.name} population is int32[P, {len(space.num_choices)}], got shape "
            f"{tuple(population.shape)}"
        )
    return population


def _check_initialisations(initialisations: Any, expected: Any) -> Any:
    """`initialisations` if they have the structure, shapes and dtypes of the draws
    `expected` (`jax.eval_shape` of this network's); draws for other keys of the same
    count cannot be told apart."""
    if jax.tree.structure(initialisations) != jax.tree.structure(expected):
        raise errors.ShapeError(
            "initialisations are not this network's parameters (draw them with "
            "shared_initialisations for the same proxy, space, network settings and batch)"
        )
    leaves = jax.tree_util.tree_leaves_with_path(initialisations)
    for (path, got), wanted in zip(leaves, jax.tree.leaves(expected)):
        if (got.shape, got.dtype) != (wanted.shape, wanted.dtype):
            raise errors.ShapeError(
                f"initialisations{jax.tree_util.keystr(path)}: {got.dtype}{list(got.shape)}, "
                f"expected {wanted.dtype}{list(wanted.shape)} (K={wanted.shape[0]} draws, "
                "one per key, of this network)"
            )
    return initialisations


def _map_sharded(fn, per_arch, replicated, num, mesh, chunk_size):
    """`lax.map(lambda item: fn(item, *replicated), per_arch)` in chunks of `chunk_size`,
    with the leading axis of `per_arch` (length `num`) sharded over the mesh's
    population axis."""
    shards = mesh.shape[POPULATION_AXIS]
    per_shard = -(-num // shards)
    batch_size = None if chunk_size is None or chunk_size <= 1 else min(chunk_size, per_shard)

    def mapped(items, *shared):
        return jax.lax.map(lambda item: fn(item, *shared), items, batch_size=batch_size)

    if shards == 1:
        return mapped(per_arch, *replicated)
    pad = -num % shards
    if pad:
        per_arch = jax.tree.map(
            lambda a: jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]), per_arch
        )
    spec = PartitionSpec(POPULATION_AXIS)
    sharded = jax.shard_map(
        mapped,
        mesh=mesh,
        in_specs=(spec, *(PartitionSpec() for _ in replicated)),
        out_specs=spec,
        # Spaces build branches that ignore their input (NB201's "none" edge returns
        # zeros); under varying-axis checks `lax.switch` would reject such branches.
        check_vma=False,
    )
    return sharded(per_arch, *replicated)[:num]


def _check_batch(batch: types.Batch, num: int | None = None) -> None:
    """Checks a shared batch, or (`num` = P) a batch per architecture."""
    if not isinstance(batch, Mapping) or "x" not in batch:
        raise errors.ShapeError("a batch is a mapping with an image array under 'x'")
    lead, names = ((), "") if num is None else ((num,), f"P={num}, ")
    x = batch["x"]
    if x.ndim != 4 + len(lead) or tuple(x.shape[: len(lead)]) != lead:
        raise errors.ShapeError(
            f"batch['x'] must be f32[{names}B, H, W, C], got shape {tuple(x.shape)}"
        )
    if "y" in batch and batch["y"].shape != x.shape[: len(lead) + 1]:
        raise errors.ShapeError(
            f"batch['y'] must be int32[{names}B={x.shape[len(lead)]}], got shape "
            f"{tuple(batch['y'].shape)}"
        )


AGGREGATES = {
    "mean": lambda s: jnp.mean(s, axis=-1),
    "median": lambda s: jnp.median(s, axis=-1),
    "max": lambda s: jnp.max(s, axis=-1),
    "min": lambda s: jnp.min(s, axis=-1),
}


def aggregate(scores: jax.Array, how: str = "mean") -> jax.Array:
    """Reduces f32[P, K] scores over initialisations to f32[P].

    A NaN in any initialisation makes the architecture's score NaN (failed); -inf
    (e.g. a singular NASWOT kernel) is a valid worst score and propagates as such.
    """
    if how not in AGGREGATES:
        raise errors.ConfigError(f"unknown aggregate {how!r}; expected one of {list(AGGREGATES)}")
    return AGGREGATES[how](scores)
