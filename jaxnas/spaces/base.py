"""The `SearchSpace` contract, and the builder that gives every space its checks.

A space module supplies what is its own (the data-driven and materialised networks,
its notation, its choices); `build` wraps them with what every space needs: override
validation, genotype checks, the enumerate guard, and restriction of the data-driven
network's parameters to one architecture. `check_images` is the image check its
networks run when called.
"""

import itertools
import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxnas import errors, types
from jaxnas.network import Network

MAX_ENUMERATE = 2**21  # `enumerate` refuses larger spaces (NDS ResNet, 1.26M, is listed)

# The data-driven network setting of spaces that can apply repeated cells under `nn.scan`
# (NB201, NB101). Every other space's cells are one module each, so the override
# `scan_cells=False` (what proxies that intercept per-cell modules ask for) holds there
# already and is accepted as a no-op.
SCAN_CELLS = "scan_cells"


class SearchSpace(NamedTuple):
    """A space of architectures whose members are integer genotypes.

    Attributes:
      name: registry name of the space.
      num_choices: static number of choices at every genotype position (D entries).
      sample: `(key, n) -> int32[n, D]`, uniform over the space.
      mutate: `(key, genotype) -> genotype` changing exactly one position to another
        value, uniformly.
      network: `(genotype, **overrides) -> Network`. The genotype may be a traced
        `int32[D]`, so one compiled program serves every architecture. Overrides change
        static width/depth settings (e.g. TE-NAS's C=3, N=1 proxy network).
      materialize: `(genotype, **overrides) -> flax.linen.Module`, the fixed network of
        one architecture (for training or export), called as `module(x, train=...)`.
        Its parameters are the data-driven network's parameters restricted to the
        selected ops (same names).
      to_string: genotype -> the benchmark's own notation.
      from_string: the benchmark's notation -> `np.int32[D]`; raises
        `errors.ArchitectureError` naming the problem.
      validate: array-like `[P, D]` or `[D]` -> `np.int32` array, or raises
        `errors.ArchitectureError`.
      enumerate: `() -> np.int32[N, D]`, every architecture; raises
        `errors.ConfigError` for spaces of more than `MAX_ENUMERATE` architectures.
      size: number of architectures.
      restrict: `(params, genotype, x, **overrides) -> params`, the `{"params": ...}`
        collection of `materialize(genotype, **overrides)` on images like `x` (an array
        or `jax.ShapeDtypeStruct`) cut out of the data-driven network's `params`.
      settings: the names of the overrides `network` accepts (`materialize` accepts
        those that are not data-driven only, such as `dispatch`); names only, so that
        the space stays hashable (a static argument of jitted functions).
    """

    name: str
    num_choices: tuple[int, ...]
    sample: Callable[[types.PRNGKey, int], jax.Array]
    mutate: Callable[[types.PRNGKey, types.Genotype], types.Genotype]
    network: Callable[..., Network]
    materialize: Callable[..., Any]
    to_string: Callable[[Any], str]
    from_string: Callable[[str], np.ndarray]
    validate: Callable[[Any], np.ndarray]
    enumerate: Callable[[], np.ndarray]
    size: int
    restrict: Callable[..., dict]
    settings: tuple[str, ...]


def uniform_sampler(num_choices: tuple[int, ...]):
    """Returns `sample(key, n) -> int32[n, D]`, each position uniform and independent."""
    maxval = jnp.asarray(num_choices, jnp.int32)

    def sample(key, n):
        shape = (n, len(num_choices))
        return jax.random.randint(key, shape, 0, jnp.broadcast_to(maxval, shape), jnp.int32)

    return sample


def one_position_mutator(num_choices: tuple[int, ...]):
    """Returns `mutate(key, genotype)` that resamples one position to a different value."""
    choices = jnp.asarray(num_choices, jnp.int32)

    def mutate(key, genotype):
        key_pos, key_val = jax.random.split(key)
        pos = jax.random.randint(key_pos, (), 0, len(num_choices))
        n = choices[pos]
        shift = jax.random.randint(key_val, (), 1, jnp.maximum(n, 2))
        new = jnp.where(n > 1, (genotype[pos] + shift) % n, genotype[pos])
        return genotype.at[pos].set(new.astype(genotype.dtype))

    return mutate


def range_validator(name: str, num_choices: tuple[int, ...]):
    """Returns `validate(genotypes)` that checks shape and every value's range."""
    limits = np.asarray(num_choices)

    def validate(genotypes):
        arr = np.asarray(genotypes)
        if arr.ndim not in (1, 2) or arr.shape[-1] != len(num_choices):
            raise errors.ArchitectureError(
                f"{name}: a genotype has {len(num_choices)} integer entries; "
                f"got an array of shape {arr.shape}"
            )
        if not np.issubdtype(arr.dtype, np.integer):
            raise errors.ArchitectureError(f"{name}: genotypes must be integers, got {arr.dtype}")
        bad = (arr < 0) | (arr >= limits)
        if bad.any():
            row = np.argwhere(bad)[0]
            raise errors.ArchitectureError(
                f"{name}: genotype value {arr[tuple(row)]} at position {row[-1]} is out of "
                f"range [0, {limits[row[-1]]})"
            )
        return arr.astype(np.int32)

    return validate


def product_enumerator(num_choices: tuple[int, ...]):
    """Returns `enumerate() -> int32[prod(num_choices), D]` in lexicographic order."""

    def enumerate_all():
        return np.asarray(list(itertools.product(*map(range, num_choices))), np.int32)

    return enumerate_all


def check_images(
    x: jax.Array, name: str, in_channels: int, multiple: int = 1, why: str = "", square=False
) -> None:
    """Raises `errors.ShapeError` naming the problem unless `x` is f32[B, H, W, in_channels]
    with H and W multiples of `multiple` (`why`: the reason, e.g. " with 3 stages") and,
    with `square`, H == W."""
    if x.ndim != 4 or x.shape[-1] != in_channels:
        raise errors.ShapeError(
            f"{name} expects NHWC images f32[B, H, W, {in_channels}], got shape "
            f"{tuple(x.shape)}" + (" (channels first?)" if x.ndim == 4 else "")
        )
    if square and x.shape[1] != x.shape[2]:
        raise errors.ShapeError(f"{name} needs square images, got {x.shape[1]}x{x.shape[2]}")
    if x.shape[1] % multiple or x.shape[2] % multiple:
        raise errors.ShapeError(
            f"{name} needs H and W divisible by {multiple}{why}, got {x.shape[1]}x{x.shape[2]}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise errors.ShapeError(f"{name} expects floating-point images, got {x.dtype}")


def check_genotype(genotype, name: str, length: int) -> jax.Array:
    """`genotype` as an array (it may be traced); raises `errors.ArchitectureError` unless
    it is one integer genotype int32[length]."""
    genotype = jnp.asarray(genotype)
    if genotype.shape != (length,) or not jnp.issubdtype(genotype.dtype, jnp.integer):
        raise errors.ArchitectureError(
            f"a {name} genotype is int32[{length}], got {genotype.dtype}{list(genotype.shape)}"
        )
    return genotype


def restrict_params(params, shapes):
    """The leading corners of `params` with the shapes of `shapes` (same names).

    Spaces that mask channels or keep their parameters at the maximum widths (the
    weight-sharing supernet of OFA / AutoFormer) keep a layer's valid channels first,
    so a materialised network's parameter is the leading slice `[:n0, :n1, ...]` of the
    data-driven one.

    Args:
      params: the data-driven network's parameters (nested dict).
      shapes: nested dict of arrays or `jax.ShapeDtypeStruct` naming a subset of the
        leaves of `params`, each no larger than its data-driven leaf (e.g. the `"params"`
        of `jax.eval_shape(model.init, ...)` for a materialised model).

    Returns:
      A nested dict with the structure and shapes of `shapes`.
    """
    flat = traverse_util.flatten_dict(params)
    out = {}
    for path, leaf in traverse_util.flatten_dict(shapes).items():
        if path not in flat:
            raise errors.ShapeError(f"parameter {'/'.join(path)} is not in the supernet")
        source = flat[path]
        if len(leaf.shape) != source.ndim or any(n > m for n, m in zip(leaf.shape, source.shape)):
            raise errors.ShapeError(
                f"parameter {'/'.join(path)}: shape {tuple(leaf.shape)} is not a corner of the "
                f"supernet's {tuple(source.shape)}"
            )
        out[path] = source[tuple(slice(0, n) for n in leaf.shape)]
    return traverse_util.unflatten_dict(out)


# The network settings of the built-in spaces that are sizes or counts.
COUNT_SETTINGS = frozenset(
    {
        "channels",
        "stem_channels",
        "stem_width",
        "cells_per_stage",
        "cells_per_stack",
        "num_stages",
        "num_stacks",
        "num_cells",
        "num_classes",
        "in_channels",
        "patch_size",
        "max_relative_position",
    }
)


def _is_count(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def build(
    name: str,
    num_choices: tuple[int, ...],
    defaults: dict[str, Any],
    network: Callable[[jax.Array, dict], Network],
    materialize: Callable[[tuple[int, ...], dict], Any],
    to_string: Callable[[Any], str],
    from_string: Callable[[str], np.ndarray],
    *,
    network_defaults: dict[str, Any] | None = None,
    settle: Callable[[dict], dict] | None = None,
    check_network_genotype: Callable[[Any, dict], jax.Array] | None = None,
    check_valid: Callable[[np.ndarray], None] | None = None,
    sample: Callable | None = None,
    mutate: Callable | None = None,
    enumerate_all: Callable[[], np.ndarray] | None = None,
    size: int | None = None,
    restrict: Callable[[Any, dict], dict] | None = None,
) -> SearchSpace:
    """A `SearchSpace` from what is a space's own, with the checks every space shares.

    Args:
      name: registry name; errors name it.
      num_choices: choices per genotype position (D entries).
      defaults: the settings `network` and `materialize` accept as overrides, with their
        defaults. An unknown override raises `errors.ConfigError` naming it, and so does
        a setting of `COUNT_SETTINGS` that is not a positive integer.
      network: `(genotype, settings) -> Network`, given a checked (maybe traced)
        genotype and the settled settings.
      materialize: `(genotype tuple[int, ...], settings) -> Linen module`, given one
        validated genotype.
      to_string, from_string: the space's notation.
      network_defaults: settings only the data-driven network accepts (e.g. `dispatch`).
      settle: `settings -> settings`, checks (raising `errors.ConfigError`) and
        completes merged settings; run on the defaults here, so bad defaults fail at
        construction.
      check_network_genotype: `(genotype, settings) -> genotype` raising
        `errors.ArchitectureError` (default: one integer genotype int32[D]).
      check_valid: `int32[P, D] -> None`, raising `errors.ArchitectureError` for
        in-range genotypes that are no architecture (e.g. NB101's disconnected cells).
      sample, mutate: default uniform per position and `one_position_mutator`.
      enumerate_all: `() -> int32[size, D]`; default every product of the choices.
      size: number of architectures (default the product of `num_choices`).
      restrict: `(model, params) -> params`, the materialised `model`'s parameters cut
        out of the data-driven `params` collection; default the leading corners of the
        model's parameter shapes (`restrict_params`).
    """
    network_defaults = network_defaults or {}
    settle = settle or (lambda settings: settings)
    size = math.prod(num_choices) if size is None else size
    check_range = range_validator(name, num_choices)

    def settings(overrides, allowed):
        unknown = sorted(set(overrides) - set(allowed))
        if unknown:
            raise errors.ConfigError(
                f"unknown {name} network setting {unknown[0]!r}; expected one of {sorted(allowed)}"
            )
        merged = {**allowed, **overrides}
        for key in COUNT_SETTINGS & merged.keys():
            if not (_is_count(merged[key]) and merged[key] >= 1):
                raise errors.ConfigError(
                    f"{name} network setting {key!r} must be a positive integer, got "
                    f"{merged[key]!r}"
                )
        return settle(merged)

    network_settings = {**defaults, **network_defaults}
    settings({}, network_settings)

    def validate(genotypes):
        arr = check_range(genotypes)
        if check_valid is not None:
            check_valid(arr)
        return arr

    def network_of(genotype, **overrides):
        if overrides.get(SCAN_CELLS) is False and SCAN_CELLS not in network_defaults:
            overrides = {k: v for k, v in overrides.items() if k != SCAN_CELLS}
        s = settings(overrides, network_settings)
        if check_network_genotype is None:
            genotype = check_genotype(genotype, name, len(num_choices))
        else:
            genotype = check_network_genotype(genotype, s)
        return network(genotype, s)

    def materialize_of(genotype, **overrides):
        s = settings(overrides, defaults)
        g = validate(genotype)
        if g.size != len(num_choices):
            raise errors.ArchitectureError(
                f"{name}: materialize takes one genotype int32[{len(num_choices)}], got shape "
                f"{g.shape}"
            )
        return materialize(tuple(int(v) for v in g.reshape(-1)), s)

    def enumerate_of():
        if size > MAX_ENUMERATE:
            raise errors.ConfigError(
                f"{name} has {size:,} architectures, too many to enumerate (limit "
                f"{MAX_ENUMERATE:,}); sample it instead"
            )
        return (enumerate_all or product_enumerator(num_choices))()

    def restrict_of(params, genotype, x, **overrides):
        model = materialize_of(genotype, **overrides)
        if restrict is not None:
            return {"params": restrict(model, params["params"])}
        shapes = jax.eval_shape(model.init, jax.random.key(0), x)
        return {"params": restrict_params(params["params"], shapes["params"])}

    return SearchSpace(
        name=name,
        num_choices=num_choices,
        sample=sample or uniform_sampler(num_choices),
        mutate=mutate or one_position_mutator(num_choices),
        network=network_of,
        materialize=materialize_of,
        to_string=to_string,
        from_string=from_string,
        validate=validate,
        enumerate=enumerate_of,
        size=size,
        restrict=restrict_of,
        settings=tuple(sorted(network_settings)),
    )
