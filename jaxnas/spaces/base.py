"""The `SearchSpace` contract and genotype operations shared by every space."""

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors, types
from jaxnas.network import Network


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
      enumerate: `() -> np.int32[N, D]`, every architecture (small spaces only).
      size: number of architectures.
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
