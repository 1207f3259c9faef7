"""Helpers shared by the spaces whose shapes depend on the architecture (NDS, AutoFormer).

These spaces keep every parameter at the maximum size the space allows (the weight-sharing
supernet of OFA / AutoFormer). An architecture uses the *leading corner* of each leaf: a
kernel `f32[..., Ci_max, Co_max]` contributes `[..., :ci, :co]`, a bias `[:co]`. The
materialised network of an architecture declares exactly those corner shapes under the
same names, so `base.restrict_params` turns supernet parameters into its parameters.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors


def prefix_mask(size: int, n: jax.Array) -> jax.Array:
    """f32[size]: 1 at positions < n (n may be traced), else 0."""
    return (jnp.arange(size) < n).astype(jnp.float32)


def channels_last(mask: jax.Array, ndim: int) -> jax.Array:
    """A per-channel mask `f32[C]` reshaped to broadcast against a rank-`ndim` array."""
    return jnp.reshape(mask, (1,) * (ndim - 1) + (-1,))


def fit_channels(x: jax.Array, channels: int) -> jax.Array:
    """`x` with its last axis cut or zero-padded to `channels` (static)."""
    c = x.shape[-1]
    if c >= channels:
        return x[..., :channels]
    return jnp.pad(x, ((0, 0),) * (x.ndim - 1) + ((0, channels - c),))


def choice_table(values) -> jax.Array:
    """A static tuple of choices as a constant array indexed by a traced genotype entry."""
    arr = np.asarray(values)
    dtype = np.float32 if np.issubdtype(arr.dtype, np.floating) else np.int32
    return jnp.asarray(arr.astype(dtype))


def parse_fields(space: str, arch: str, fields: tuple[str, ...]) -> dict[str, list[str]]:
    """Splits `"name=v1,v2|name=v3"` into `{name: [v1, v2], ...}` with one-line errors.

    Every field of `fields` must appear exactly once and no other may appear.
    """
    if not isinstance(arch, str):
        raise errors.ArchitectureError(f"{space} architecture must be a string, got {arch!r}")
    parsed = {}
    for part in arch.strip().split("|"):
        name, sep, values = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise errors.ArchitectureError(
                f"malformed {space} string {arch!r}: {part!r} must look like 'name=v1,v2,...'"
            )
        if name not in fields:
            raise errors.ArchitectureError(
                f"unknown field {name!r} in {space} string {arch!r}; expected {', '.join(fields)}"
            )
        if name in parsed:
            raise errors.ArchitectureError(
                f"malformed {space} string {arch!r}: field {name!r} appears twice"
            )
        parsed[name] = [v.strip() for v in values.split(",")] if values.strip() else []
    missing = [f for f in fields if f not in parsed]
    if missing:
        raise errors.ArchitectureError(
            f"malformed {space} string {arch!r}: missing field {missing[0]!r}"
        )
    return parsed


def parse_number(space: str, field: str, text: str, kind: type) -> float | int:
    """Parses one value of a string field as `kind` (int or float), or raises."""
    try:
        value = float(text)
    except ValueError:
        raise errors.ArchitectureError(
            f"{space}: value {text!r} of field {field!r} is not a number"
        ) from None
    if kind is int:
        if value != int(value):
            raise errors.ArchitectureError(
                f"{space}: value {text!r} of field {field!r} must be an integer"
            )
        return int(value)
    return value


def choice_index(space: str, what: str, value, choices: tuple) -> int:
    """The index of `value` in `choices`, or an ArchitectureError naming both."""
    for i, c in enumerate(choices):
        if np.isclose(float(c), float(value), rtol=0.0, atol=1e-9):
            return i
    raise errors.ArchitectureError(
        f"{what} {format_number(value)} is not a choice of {space}; choices: "
        f"{', '.join(format_number(c) for c in choices)}"
    )


def format_number(value) -> str:
    """Shortest readable form: 16 -> '16', 0.25 -> '0.25', 4.0 -> '4'."""
    return f"{float(value):g}" if isinstance(value, float | np.floating) else str(int(value))
