"""TE-NAS pruning-by-importance on a supernet with multi-hot genotypes.

Chen, Gong, Wang, "Neural Architecture Search on ImageNet in Four GPU Hours: A
Theoretically Inspired Perspective" (TE-NAS), ICLR 2021; reference code VITA-Group/TENAS
`prune_tenas.py` (`prune_func_rank`, `round_to`), reference.md §B.4, §A.2, §A.3.

The supernet is a "mask"-dispatch network called with op weights f32[E, O]: every active
op of an edge gets weight 1 / (active ops on the edge), the softmax of TE-NAS's
architecture parameters where a pruned op has alpha = -1000. `none` is inactive from the
start. One round:

  1. For every active op o on every edge with more than one active op, the supernet
     without o is scored against the supernet itself, R times (fresh initialisation and
     batch per repeat, shared by the supernet and every candidate of that repeat):
     dkappa = (kappa_N - kappa_{N-o}) / kappa_N (NTK condition number, `ntk.ntk_cond`, on
     the C=3/N=1 network with 72 images) and dR = (R_N - R_{N-o}) / R_N (linear regions,
     `regions.linear_regions`, on the thin C=1 network with 3000 crops), averaged over
     the repeats.
  2. Both are rounded to 3 significant figures (`round_sig`) and ranked over all
     candidates: dkappa descending, dR ascending, ties sharing a rank (`dense_rank`).
  3. On each edge the `prune_number` ops with the smallest rank sum are pruned
     (`prune_by_rank_sum`; equal sums in the code's order, `pruning_order`).

Rounds repeat until every edge keeps one op. The NB201 schedule (`prune_number=1`,
4 ops) takes 3 rounds; DARTS (`prune_number=3`, 7 ops, the normal and reduction cells'
28 edges pruned together) takes 2, then `prune_edge_groups` keeps two inputs per node
by the same rank sum. A candidate whose score is NaN (a failed evaluation) gets the
rank that prunes it first: a failure never keeps an op alive ("NaN never wins").

Deviations from the released code, both deliberate: within a repeat every candidate
shares the supernet's initialisation and batch (common random numbers; the code
re-draws them per candidate, which only adds noise), and the released code rounds
each repeat's delta to 3 decimals before averaging, where here the mean is rounded to
3 significant figures, as the paper's `--precision 3` describes.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors
from jaxnas import network as net_lib
from jaxnas.proxies import ntk, regions

PRECISION = 3
NB201_PRUNE_NUMBER = 1  # DARTS: 3 on CIFAR-10, 2 on ImageNet (reference.md §B.4)


def round_sig(values, digits: int = PRECISION) -> np.ndarray:
    """Rounds to `digits` significant figures (TE-NAS `round_to`); 0 and NaN stay.

    f64[...] -> f64[...].
    """
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values) & (values != 0)
    safe = np.where(finite, np.abs(values), 1.0)
    power = np.floor(np.log10(safe)) + 1
    scale = 10.0 ** (digits - power)
    rounded = np.round(values * scale) / scale
    return np.where(finite, rounded, values)


def dense_rank(values, descending: bool) -> np.ndarray:
    """Rank 0 for the first value in sort order; equal values share a rank, the next
    distinct value gets the next integer (TE-NAS's ranking loop). NaN ranks last.

    f[C] -> int64[C].
    """
    values = np.asarray(values, np.float64)
    key = np.where(np.isnan(values), np.inf, -values if descending else values)
    _, inverse = np.unique(key, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def pruning_order(dkappa, dregions) -> np.ndarray:
    """The order in which TE-NAS prunes candidates (first: least important).

    Both deltas are rounded to 3 significant figures and dense-ranked (dkappa
    descending, dR ascending); the candidates are sorted by the rank sum. Among equal
    sums the code's order holds: its ranking dictionary is filled in dkappa order, so
    the larger dkappa goes first, then the candidate order (edge-major). A NaN delta
    puts the candidate before every scored one ("NaN never wins").

    f[C], f[C] -> int64[C] candidate indices.
    """
    dk = round_sig(dkappa)
    dr = round_sig(dregions)
    kappa_rank = dense_rank(dk, descending=True)
    importance = kappa_rank + dense_rank(dr, descending=False)
    importance = np.where(np.isnan(dk) | np.isnan(dr), -1, importance)
    return np.lexsort((np.arange(dk.size), kappa_rank, importance))


def prune_by_rank_sum(
    active: np.ndarray,
    dkappa: np.ndarray,
    dregions: np.ndarray,
    prune_number: int,
) -> np.ndarray:
    """One TE-NAS pruning decision from the candidates' deltas.

    Args:
      active: bool[E, O] ops still in the supernet.
      dkappa: f[E, O] relative drop of kappa when the op is removed (read where the op
        is a candidate: active, on an edge with more than one active op).
      dregions: f[E, O] relative drop of the region count.
      prune_number: ops pruned per edge (at most the edge's active ops minus one).

    Returns:
      bool[E, O], `active` with the pruned ops switched off. A NaN delta ranks the
      candidate first for pruning.
    """
    active = np.asarray(active, bool)
    if prune_number < 1:
        raise errors.ConfigError(f"prune_number must be >= 1, got {prune_number}")
    counts = active.sum(axis=1)
    candidate = active & (counts[:, None] > 1)
    rows, cols = np.nonzero(candidate)
    if rows.size == 0:
        return active.copy()
    order = pruning_order(
        np.asarray(dkappa, np.float64)[rows, cols], np.asarray(dregions, np.float64)[rows, cols]
    )
    out = active.copy()
    pruned = np.zeros(active.shape[0], np.int64)
    for i in order:
        e, o = rows[i], cols[i]
        if pruned[e] < min(prune_number, counts[e] - 1):
            out[e, o] = False
            pruned[e] += 1
    return out


def op_weights(active) -> jax.Array:
    """The supernet's op weights f32[E, O]: 1 / (active ops on the edge) where active.

    TE-NAS's softmax over the architecture parameters with pruned ops at -1000.
    """
    active = jnp.asarray(active, jnp.float32)
    return active / jnp.maximum(jnp.sum(active, axis=-1, keepdims=True), 1.0)


def removal_candidates(active: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The supernet and, for every (edge, op), the supernet without that op.

    Returns:
      bool[1 + E*O, E, O] masks (index 0: the supernet itself; 1 + e*O + o: without op
      o of edge e) and bool[1 + E*O] whether each is a real candidate (the op is active
      on an edge with more than one active op; the supernet itself is always real).
    """
    active = jnp.asarray(active, bool)
    e, o = active.shape
    eye = jnp.eye(e * o, dtype=bool).reshape(e * o, e, o)
    without = active[None] & ~eye
    counts = jnp.sum(active, axis=1)
    real = (active & (counts[:, None] > 1)).reshape(-1)
    masks = jnp.concatenate([active[None], without])
    return masks, jnp.concatenate([jnp.ones((1,), bool), real])


def nb201_network_fn(space, num_classes: int = 10) -> Callable:
    """`(op_weights f32[6, 5], overrides) -> Network`: the NB201 "mask" supernet."""

    def network_fn(weights, overrides):
        return space.network(weights, dispatch="mask", num_classes=num_classes, **overrides)

    return network_fn


def ntk_rows_per_chunk(backend: str | None = None) -> int | None:
    """How many of the supernet NTK's backward passes run vmapped together: 2 on a CPU
    (at TE-NAS's 72 images 1.9x faster than all 72 vmapped, in a fifth of the memory;
    WORKSPACE_NOTES.md, Session 28), all of them (None) on a GPU or TPU, as
    `dispatch.init_chunk` decides for initialisations. `backend` defaults to JAX's."""
    backend = jax.default_backend() if backend is None else backend
    return 2 if backend == "cpu" else None


def supernet_scorer(
    network_fn: Callable,
    ntk_network: dict | None = None,
    regions_network: dict | None = None,
) -> Callable:
    """Returns `score(masks, valid, keys, images, crops) -> (f32[C, R], f32[C, R])`.

    The jittable core of a round: for C supernet masks (bool[C, E, O]) of which the
    `valid` ones are scored (others give NaN without being evaluated; `lax.cond`
    inside `lax.map`), and R repeats, it returns -log(kappa) (`ntk.ntk_cond`) and the
    region count (`regions.linear_regions`). `network_fn(op_weights f32[E, O],
    overrides)` builds the supernet (`nb201_network_fn`, `darts_supernet.network_fn`);
    `ntk_network` and `regions_network` are the overrides of the two networks (default:
    TE-NAS's NB201 ones). Repeat r initialises both networks with `keys[r]` (the same
    parameters for every mask) and uses `images[r]` f32[R, B, H, W, 3] (the NTK batch)
    and `crops[r]` f32[R, N, 3, 3, 1] (the regions inputs).
    """
    ntk_kwargs = dict(ntk.TENAS_NTK_NETWORK if ntk_network is None else ntk_network)
    thin_kwargs = dict(
        regions.TENAS_REGIONS_NETWORK if regions_network is None else regions_network
    )
    ntk_fn = ntk.ntk_cond(rows_per_chunk=ntk_rows_per_chunk())
    regions_fn = regions.linear_regions()

    def net(kind_kwargs, mask):
        return network_fn(op_weights(mask), kind_kwargs)

    def score(masks, valid, keys, images, crops):
        def repeat(key, x, c):
            key_ntk, key_thin = jax.random.split(key)
            template_ntk = net(ntk_kwargs, masks[0])
            template_thin = net(thin_kwargs, masks[0])
            params_ntk = template_ntk.init(key_ntk, x)
            params_thin = template_thin.init(key_thin, c)

            def one(item):
                mask, ok = item

                def run(mask):
                    a = net(ntk_kwargs, mask)
                    b = net(thin_kwargs, mask)
                    s = ntk_fn(a, net_lib.rescaled_init(a, params_ntk), {"x": x}, key)
                    r = regions_fn(b, net_lib.rescaled_init(b, params_thin), {"x": c}, key)
                    return jnp.asarray(s, jnp.float32), jnp.asarray(r, jnp.float32)

                nan = jnp.full((), jnp.nan, jnp.float32)
                return jax.lax.cond(ok, run, lambda m: (nan, nan), mask)

            return jax.lax.map(one, (masks, valid))

        # Repeats in sequence: vmapping them multiplies the compiled program's memory.
        s, r = jax.lax.map(lambda item: repeat(*item), (keys, images, crops))
        return s.T, r.T

    return score


def deltas(neg_log_kappa: np.ndarray, region_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean relative drops over repeats from a round's scores (row 0: the supernet).

    Args:
      neg_log_kappa: f[C, R] -log(kappa) per mask and repeat.
      region_counts: f[C, R] region counts.

    Returns:
      f64[C-1] dkappa = mean_r (kappa_N - kappa_c) / kappa_N and f64[C-1] dR = mean_r
      (R_N - R_c) / R_N for the candidates 1..C-1 (NaN where any repeat failed).
    """
    s = np.asarray(neg_log_kappa, np.float64)
    r = np.asarray(region_counts, np.float64)
    # kappa_c / kappa_N = exp(s_N - s_c) with s = -log kappa.
    dk = 1.0 - np.exp(s[:1] - s[1:])
    dr = (r[:1] - r[1:]) / r[:1]
    return dk.mean(axis=1), dr.mean(axis=1)


def prune(
    score_round: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
    num_edges: int,
    num_ops: int,
    prune_number: int,
    initially_inactive: tuple[int, ...] = (0,),
) -> tuple[np.ndarray, list[dict]]:
    """TE-NAS's pruning loop until one op per edge is left.

    Args:
      score_round: `(active bool[E, O], round) -> (f[C, R] -log kappa, f[C, R] regions)`
        for the masks of `removal_candidates(active)` (e.g. a jitted `supernet_scorer`
        with that round's keys and data).
      num_edges, num_ops: the supernet's shape E, O.
      prune_number: ops pruned per edge per round.
      initially_inactive: ops off from the start (`none`, index 0 in NB201 and DARTS).

    Returns:
      int32[E] the op kept on each edge and one record per round (active ops before the
      round, the candidates' deltas, the number of failed evaluations).
    """
    active = np.ones((num_edges, num_ops), bool)
    active[:, list(initially_inactive)] = False
    history = []
    for r in range(num_ops):
        if np.all(active.sum(axis=1) == 1):
            break
        s, regions_count = score_round(active, r)
        dk, dr = deltas(s, regions_count)
        _, real = removal_candidates(active)
        real = np.asarray(real)
        new = prune_by_rank_sum(
            active, dk.reshape(num_edges, num_ops), dr.reshape(num_edges, num_ops), prune_number
        )
        history.append(
            {
                "active": active.astype(int).tolist(),
                "num_failed": int(
                    np.isnan(s[real]).sum() + np.isnan(np.asarray(regions_count)[real]).sum()
                ),
                "dkappa": np.where(np.isnan(dk), None, dk).tolist(),
                "dregions": np.where(np.isnan(dr), None, dr).tolist(),
            }
        )
        active = new
    # Every round prunes at least one op of every edge with several: one op is left.
    return np.argmax(active, axis=1).astype(np.int32), history


def prune_edge_groups(
    score_masks: Callable[[jax.Array, np.ndarray, int], tuple[np.ndarray, np.ndarray]],
    active: np.ndarray,
    groups,
    keep: int = 2,
) -> tuple[np.ndarray, list[dict]]:
    """TE-NAS's edge pruning on DARTS (`prune_func_rank_group`): `keep` inputs per node.

    After op pruning every edge holds one op. Group by group (the edges into one node,
    in order), each edge of the group is removed from the current supernet in turn and
    scored against it; the group's candidates are ordered by `pruning_order` and all but
    the last `keep` are pruned before the next group is scored.

    Args:
      score_masks: `(masks bool[C, E, O], valid bool[C], step) -> (f[C, R] -log kappa,
        f[C, R] regions)`, called with `removal_candidates(active)`'s masks and `valid`
        marking the supernet (index 0) and the group's candidates.
      active: bool[E, O] with exactly one active op on every edge of a group larger
        than `keep`.
      groups: sequences of edge indices, one per node.
      keep: edges kept per group.

    Returns:
      bool[E, O] the pruned `active` and one record per scored group.
    """
    active = np.asarray(active, bool).copy()
    num_ops = active.shape[1]
    history = []
    for g, edges in enumerate(groups):
        edges = list(edges)
        if len(edges) <= keep:
            continue
        if np.any(active[edges].sum(axis=1) != 1):
            raise errors.ConfigError(
                f"edge pruning needs one active op per edge; group {g} has "
                f"{active[edges].sum(axis=1).tolist()} ops on edges {edges}"
            )
        in_group = np.zeros_like(active)
        in_group[edges] = True
        candidate = (active & in_group).reshape(-1)
        masks, _ = removal_candidates(active)
        s, regions_count = score_masks(masks, np.concatenate([[True], candidate]), g)
        dk, dr = deltas(s, regions_count)
        idx = np.nonzero(candidate)[0]
        order = pruning_order(dk[idx], dr[idx])
        history.append(
            {
                "group": edges,
                "dkappa": np.where(np.isnan(dk[idx]), None, dk[idx]).tolist(),
                "dregions": np.where(np.isnan(dr[idx]), None, dr[idx]).tolist(),
            }
        )
        for i in order[: len(idx) - keep]:
            e, o = divmod(int(idx[i]), num_ops)
            active[e, o] = False
    return active, history
