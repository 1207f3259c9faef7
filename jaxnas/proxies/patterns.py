"""Binary activation patterns: exact counting of distinct patterns with packed bit codes.

A ReLU (or GeLU) unit is active on an input when its pre-activation is > 0 (GeLU(x) > 0
iff x > 0, so taps at the nonlinearity inputs serve both). Counting distinct patterns
is done on integers: patterns are packed 32 units (or samples) per uint32 word, sorted
lexicographically and compared with their neighbours. The count is exact for any
number of units, unlike the reference codes' fp16 matrix products (TE-NAS) that are
exact only up to 2048 units (reference.md §F.10).
"""

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from jaxnas import types

WORD = 32


def distinct_taps(taps: Mapping[str, types.Tap]) -> list[types.Tap]:
    """Taps of distinct arrays (a tensor read by several ReLUs appears once), in order.

    The weights of taps of the same array are added, so a unit is present (weight > 0)
    when any ReLU reads it. Duplicate units never change a count of distinct patterns.
    """
    merged: dict[int, types.Tap] = {}
    for tap in taps.values():
        key = id(tap.value)
        weight = tap.weight.astype(jnp.float32)
        if key in merged:
            weight = merged[key].weight + weight
        merged[key] = types.Tap(tap.value, weight)
    return list(merged.values())


def active_units(tap: types.Tap) -> tuple[jax.Array, jax.Array]:
    """Per-sample activity of a tap's units and which units exist.

    Returns:
      bool[B, N] (pre-activation > 0) and bool[N] (weight > 0: the unit is in the
      architecture).
    """
    value = tap.value
    active = (value > 0).reshape(value.shape[0], -1)
    present = jnp.broadcast_to(tap.weight > 0, value.shape[1:]).reshape(-1)
    return active, present


def pack_bits(bits: jax.Array) -> jax.Array:
    """bool[R, N] -> uint32[R, ceil(N / 32)], bit k of word w = bits[:, 32 w + k]."""
    r, n = bits.shape
    words = -(-n // WORD)
    padded = jnp.pad(bits, ((0, 0), (0, words * WORD - n)))
    shifts = jnp.left_shift(jnp.uint32(1), jnp.arange(WORD, dtype=jnp.uint32))
    grouped = padded.reshape(r, words, WORD).astype(jnp.uint32)
    return jnp.sum(grouped * shifts[None, None, :], axis=-1, dtype=jnp.uint32)


def count_distinct_rows(codes: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """Number of distinct rows of uint32[R, W] among the rows where `valid` (bool[R]): i32[].

    Rows are sorted lexicographically (invalid rows last) and a valid row counts when it
    differs from its predecessor.
    """
    r = codes.shape[0]
    if valid is None:
        valid = jnp.ones((r,), bool)
    # lexsort: the last key is the primary one.
    keys = [codes[:, w] for w in reversed(range(codes.shape[1]))] + [(~valid).astype(jnp.uint32)]
    order = jnp.lexsort(keys)
    rows, ok = codes[order], valid[order]
    new = jnp.concatenate([jnp.ones((1,), bool), jnp.any(rows[1:] != rows[:-1], axis=1)])
    return jnp.sum(new & ok, dtype=jnp.int32)


def sample_codes(taps: Sequence[types.Tap]) -> jax.Array:
    """Each sample's activation pattern over all present units: uint32[B, words].

    Units absent from the architecture are forced to 0, a constant that cannot separate
    samples.
    """
    parts = []
    for tap in taps:
        active, present = active_units(tap)
        parts.append(active & present[None, :])
    return pack_bits(jnp.concatenate(parts, axis=1))


def unit_codes(taps: Sequence[types.Tap]) -> tuple[jax.Array, jax.Array]:
    """Each unit's activation pattern over the batch: uint32[N, words] and bool[N] present."""
    actives, presents = zip(*(active_units(tap) for tap in taps))
    return pack_bits(jnp.concatenate(actives, axis=1).T), jnp.concatenate(presents)
