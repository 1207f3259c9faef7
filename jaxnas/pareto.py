"""Pareto dominance: a jittable non-dominated sort with crowding (NSGA-II), and host-side
fronts and 2-D hypervolume for reports.

Every objective is maximised (pass costs negated). NaN (a failed evaluation) is treated
as -inf in every objective, so a failed cell dominates nothing.
"""

import jax
import jax.numpy as jnp
import numpy as np


def _finite_or_worst(objectives):
    failed = jnp.any(jnp.isnan(objectives), axis=-1, keepdims=True)
    return jnp.where(failed, -jnp.inf, objectives)


def dominates(objectives: jax.Array) -> jax.Array:
    """bool[n, n]: [i, j] is True when i is at least as good as j everywhere and better
    somewhere. `objectives` is f32[n, M]."""
    o = _finite_or_worst(objectives)
    ge = jnp.all(o[:, None, :] >= o[None, :, :], axis=-1)
    gt = jnp.any(o[:, None, :] > o[None, :, :], axis=-1)
    return ge & gt


def nondominated_rank(objectives: jax.Array) -> jax.Array:
    """int32[n]: 0 for the Pareto front of f32[n, M], 1 for the front once it is removed, ..."""
    dom = dominates(objectives)
    n = objectives.shape[0]

    def peel(r, carry):
        rank, remaining = carry
        dominated = jnp.any(dom & remaining[:, None], axis=0)
        front = remaining & ~dominated
        return jnp.where(front, r, rank), remaining & ~front

    rank, _ = jax.lax.fori_loop(0, n, peel, (jnp.full((n,), n, jnp.int32), jnp.ones((n,), bool)))
    return rank


def crowding_distance(objectives: jax.Array, rank: jax.Array) -> jax.Array:
    """f32[n]: NSGA-II crowding distance of each point within its front (inf at a front's
    ends; 0 for failed points), objectives normalised by each front's range."""
    o = _finite_or_worst(objectives)
    n, m = o.shape
    distance = jnp.zeros((n,), jnp.float32)
    for j in range(m):
        order = jnp.lexsort((o[:, j], rank))
        v, r = o[order, j], rank[order]
        lo = jax.ops.segment_min(v, r, num_segments=n + 1)[r]
        hi = jax.ops.segment_max(v, r, num_segments=n + 1)[r]
        has_prev = jnp.concatenate([jnp.zeros(1, bool), r[1:] == r[:-1]])
        has_next = jnp.concatenate([r[:-1] == r[1:], jnp.zeros(1, bool)])
        gap = jnp.roll(v, -1) - jnp.roll(v, 1)
        span = hi - lo
        inner = jnp.where(span > 0, gap / jnp.where(span > 0, span, 1.0), 0.0)
        d = jnp.where(has_prev & has_next, inner, jnp.inf)
        distance = distance.at[order].add(d)
    failed = jnp.any(jnp.isinf(o) & (o < 0), axis=-1)
    return jnp.where(failed, 0.0, distance)


def front(points) -> np.ndarray:
    """Indices of the non-dominated rows of f64[n, M] (maximised; NaN rows excluded),
    one per distinct point."""
    p = np.asarray(points, np.float64)
    keep = ~np.isnan(p).any(axis=1)
    idx = np.flatnonzero(keep)
    p = p[keep]
    if p.shape[1] == 2:
        # A sweep, O(n log n): by the first objective falling (ties: second falling), a
        # point is on the front when its second objective beats every point before it.
        order = np.lexsort((-p[:, 1], -p[:, 0]))
        best_before = np.maximum.accumulate(np.concatenate([[-np.inf], p[order, 1]]))[:-1]
        return np.sort(idx[order[p[order, 1] > best_before]])
    _, first = np.unique(p, axis=0, return_index=True)
    idx, p = idx[np.sort(first)], p[np.sort(first)]
    ge = (p[:, None, :] >= p[None, :, :]).all(-1)
    gt = (p[:, None, :] > p[None, :, :]).any(-1)
    dominated = (ge & gt).any(axis=0)
    return idx[~dominated]


def hypervolume_2d(points, reference) -> float:
    """Area dominated by f64[n, 2] maximised points and bounded below by `reference`."""
    p = np.asarray(points, np.float64)
    ref = np.asarray(reference, np.float64)
    p = p[~np.isnan(p).any(axis=1)]
    p = p[(p > ref).all(axis=1)]
    if p.size == 0:
        return 0.0
    p = p[front(p)]
    p = p[np.argsort(-p[:, 0])]  # first objective falling, so the second rises
    heights = np.diff(np.concatenate([[ref[1]], p[:, 1]]))
    return float(np.sum((p[:, 0] - ref[0]) * heights))
