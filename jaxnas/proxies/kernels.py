"""Linear algebra shared by the kernel proxies."""

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from jaxnas import types


def binary_codes(tap: types.Tap) -> tuple[jax.Array, jax.Array]:
    """Binarised activations of a tap and the weight of each unit.

    Returns:
      codes f32[B, N] with 1 where the pre-activation is > 0 (the ReLU is active), and
      weights f32[N] (how many units read each element; 0 for absent units).
    """
    value = tap.value
    b = value.shape[0]
    codes = (value > 0).astype(jnp.float32).reshape(b, -1)
    weights = jnp.broadcast_to(tap.weight.astype(jnp.float32), value.shape[1:]).reshape(-1)
    return codes, weights


def hamming_kernel(
    taps: Mapping[str, types.Tap], tap_weight: Callable[[str], float] | None = None
) -> jax.Array:
    """NASWOT's kernel K[i, j] = N_A - d_H(c_i, c_j) over all weighted units: f32[B, B].

    Equals the sum over taps and units of w_u * [c_iu == c_ju], i.e. the reference's
    accumulation of `x xT + (1 - x)(1 - x)T` per ReLU, with one matmul per distinct
    tapped tensor: K = W - s 1T - 1 sT + 2 (C diag(w)) CT, where s = C w and W = sum(w).
    Entries are integers (exact in float32 below 2**24 units).

    Taps that record the same array (a node feeding several ReLUs) are merged by
    adding their weights, and a tensor read by no unit (total weight 0, e.g. a node
    whose edges all hold non-conv ops) skips its matmul at run time.

    Args:
      taps: name -> Tap with pre-activations f32[B, ...].
      tap_weight: optional multiplier per tap name (e.g. the reference's double count).
    """
    merged = {}
    for name, tap in taps.items():
        weight = tap.weight.astype(jnp.float32)
        if tap_weight is not None:
            weight = weight * tap_weight(name)
        key = id(tap.value)
        if key in merged:
            merged[key] = types.Tap(tap.value, merged[key].weight + weight)
        else:
            merged[key] = types.Tap(tap.value, weight)
    if not merged:
        raise ValueError("hamming_kernel needs at least one tap")
    batch = next(iter(merged.values())).value.shape[0]
    kernel = jnp.zeros((batch, batch), jnp.float32)
    for tap in merged.values():
        kernel = kernel + jax.lax.cond(
            jnp.any(tap.weight != 0),
            _weighted_agreement,
            lambda t: jnp.zeros((batch, batch), jnp.float32),
            tap,
        )
    return kernel


def _weighted_agreement(tap: types.Tap) -> jax.Array:
    if tap.weight.size == 1:
        return _packed_agreement(tap)
    codes, weights = binary_codes(tap)
    weighted = codes * weights[None, :]
    ones = weighted.sum(axis=1)
    return 2.0 * (weighted @ codes.T) - ones[:, None] - ones[None, :] + weights.sum()


def _packed_agreement(tap: types.Tap) -> jax.Array:
    """`_weighted_agreement` for one weight shared by every unit, on packed bits.

    The codes of 32 units go into one uint32 and the units on which images i and j are
    both active are counted with `population_count`, for K[i, j] = w (N - n_i - n_j +
    2 both_ij), with n_i = both_ii. The float codes' matmul needed their transpose
    copied first (XLA:CPU's dot takes its right operand contraction-major): NB201
    NASWOT 157 -> 136 ms per cell in single-cell calls (WORKSPACE_NOTES.md, Session 34).
    """
    value = tap.value
    b = value.shape[0]
    active = (value > 0).reshape(b, -1)
    units = active.shape[1]
    active = jnp.pad(active, ((0, 0), (0, -units % 32))).reshape(b, -1, 32)
    shifts = jnp.arange(32, dtype=jnp.uint32)[None, None, :]
    words = jnp.sum(active.astype(jnp.uint32) << shifts, axis=-1)
    both = jax.lax.population_count(words[:, None, :] & words[None, :, :])
    both = jnp.sum(both, axis=-1, dtype=jnp.int32).astype(jnp.float32)
    ones = jnp.diagonal(both)
    weight = tap.weight.astype(jnp.float32).reshape(())
    return weight * (units - ones[:, None] - ones[None, :] + 2.0 * both)


def logdet(kernel: jax.Array) -> jax.Array:
    """log|det K| as in the reference (`slogdet`, sign discarded): f32[].

    A singular kernel gives -inf, the worst possible score, not a failure.
    """
    return jnp.linalg.slogdet(kernel)[1]
