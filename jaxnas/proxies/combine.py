"""Combining proxies: rank sum, vote, log-rank aggregation, LIBRA-NAS, a few-shot predictor.

A *combiner* maps a score matrix f32[P, M] (P architectures, M proxies, higher is better
in every column, NaN = failed) to one score f32[P] (higher is better). Combiners are pure
and jittable, so they serve as a search fitness over a score matrix as well as in reports
(`make_combiner`). NaN in any column of a row makes that row's combined score NaN.

* `rank_sum` (TE-NAS, Chen et al. ICLR'21): sum over proxies of each architecture's rank.
* `vote` (zero-cost-nas, Abdelfattah et al. ICLR'21): pairwise majority vote of the
  proxies; an architecture's score is the number of others it beats by majority
  (its Copeland count), the population form of the paper's pairwise vote.
* `log_rank` (AZ-NAS, Lee & Ham CVPR'24): sum_m log(rank_m / P), via
  `aznas.rank_aggregate`.
* `libra` (LIBRA-NAS, Casarin et al. CVPR'25, Alg. 1): three proxies chosen on labelled
  calibration cells (`libra_select`), then fused by rank sum (the main text does not say
  how the three are fused; see WORKSPACE_NOTES.md "Proxy combination").

Anything that uses accuracies (`libra_select`, `fit_ridge`, `fit_mlp`) is fitted on
calibration cells; `disjoint_split` draws calibration and evaluation cells that never
overlap. LIBRA's selection runs on the host (NumPy), once; the fits and the combiners
are jax.
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import stats

from jaxnas import errors
from jaxnas.proxies import aznas

COMBINERS = ("rank_sum", "vote", "log_rank", "libra")


def _matrix(scores) -> jax.Array:
    scores = jnp.asarray(scores, jnp.float32)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise errors.ShapeError(f"a combiner takes f32[P, M] with P, M > 0, got {scores.shape}")
    return scores


def ranks(scores) -> jax.Array:
    """Column-wise average ranks of f32[P, M]: f32[P, M], 1 = worst .. P = best.

    Ties share their average rank; NaN and -inf rank lowest (the caller masks NaN rows).
    """
    scores = _matrix(scores)

    def column_ranks(column):
        ordered = jnp.sort(column)
        below = jnp.searchsorted(ordered, column, side="left")
        upto = jnp.searchsorted(ordered, column, side="right")
        return (below + upto + 1).astype(jnp.float32) / 2.0

    clean = jnp.where(jnp.isnan(scores), -jnp.inf, scores)
    return jax.vmap(column_ranks, in_axes=1, out_axes=1)(clean)


def _mask_failed(scores: jax.Array, combined: jax.Array) -> jax.Array:
    return jnp.where(jnp.any(jnp.isnan(scores), axis=1), jnp.nan, combined)


def rank_sum(scores) -> jax.Array:
    """TE-NAS's rank sum: f32[P, M] -> f32[P], sum_m rank_m (P = best in a column)."""
    scores = _matrix(scores)
    return _mask_failed(scores, jnp.sum(ranks(scores), axis=1))


def vote(scores) -> jax.Array:
    """Pairwise majority vote: f32[P, M] -> f32[P], how many others each one beats.

    Architecture i beats j when more proxies rank i above j than j above i (a tie in a
    proxy abstains). Memory is O(P * M) per step (`lax.map` over architectures).
    """
    scores = _matrix(scores)
    r = ranks(scores)

    def wins(row):
        net = jnp.sum(jnp.sign(row[None, :] - r), axis=1)
        return jnp.sum(net > 0).astype(jnp.float32)

    return _mask_failed(scores, jax.lax.map(wins, r))


def log_rank(scores) -> jax.Array:
    """AZ-NAS's non-linear aggregation: f32[P, M] -> f32[P], sum_m log(rank_m / P)."""
    return aznas.rank_aggregate(_matrix(scores))


FUSIONS = {"rank_sum": rank_sum, "log_rank": log_rank}


def libra(scores, columns: Sequence[int], fusion: str = "rank_sum") -> jax.Array:
    """LIBRA-NAS's score: the chosen columns of f32[P, M] fused into f32[P].

    Args:
      scores: f32[P, M].
      columns: the three column indices `libra_select` chose (static).
      fusion: "rank_sum" (default) or "log_rank".
    """
    scores = _matrix(scores)
    if fusion not in FUSIONS:
        raise errors.ConfigError(f"unknown LIBRA fusion {fusion!r}; expected {sorted(FUSIONS)}")
    columns = [int(c) for c in columns]
    if not columns or any(c < 0 or c >= scores.shape[1] for c in columns):
        raise errors.ConfigError(f"LIBRA columns {columns} out of range for M={scores.shape[1]}")
    return FUSIONS[fusion](scores[:, jnp.asarray(columns)])


# ----------------------------------------------------------------- LIBRA-NAS selection


def discretize(values, num_bins: int) -> np.ndarray:
    """Equal-frequency bins of f64[N]: i64[N] in 0..num_bins-1 (ties share a bin)."""
    values = np.asarray(values, np.float64)
    if num_bins < 1:
        raise errors.ConfigError(f"num_bins must be >= 1, got {num_bins}")
    r = stats.rankdata(values, method="average")
    return np.minimum(((r - 0.5) * num_bins / len(values)).astype(np.int64), num_bins - 1)


def entropy(*codes) -> float:
    """Plug-in joint entropy in bits of one or more i64[N] discrete variables."""
    joint = np.stack([np.asarray(c, np.int64) for c in codes], axis=1)
    _, counts = np.unique(joint, axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log2(p)))


def conditional_entropy(target, *given) -> float:
    """H(target | given...) = H(target, given...) - H(given...), bits, discrete codes."""
    return entropy(target, *given) - entropy(*given)


def information_gain(accuracy, z1, z, num_bins: int = 8) -> float:
    """IG(z) = H(y | z1) - H(y | z1, z), all three discretised into equal-frequency bins."""
    y, a, b = (discretize(v, num_bins) for v in (accuracy, z1, z))
    return conditional_entropy(y, a) - conditional_entropy(y, a, b)


def bias(values, params) -> float:
    """Bias towards size: Pearson correlation of the ranks of f64[N] and of #params."""
    return float(stats.pearsonr(stats.rankdata(values), stats.rankdata(params))[0])


@dataclasses.dataclass(frozen=True)
class LibraSelection:
    """The three proxies LIBRA-NAS chose and every quantity the choice used.

    `columns` index the score matrix; `names` are their names; `spearman`, `info_gain`,
    `bias` map every proxy name to its value on the calibration cells (`info_gain` only
    for the candidates after z1); `widened` is True when fewer than two proxies lay within
    `margin` of the best and the pool was filled with the next-best by Spearman.
    """

    columns: tuple[int, ...]
    names: tuple[str, ...]
    spearman: dict
    info_gain: dict
    bias: dict
    accuracy_bias: float
    candidates: tuple[str, ...]
    widened: bool
    num_calibration: int
    margin: float
    num_bins: int


def libra_select(
    scores,
    accuracy,
    params,
    names: Sequence[str],
    *,
    margin: float = 0.1,
    num_bins: int = 8,
) -> LibraSelection:
    """LIBRA-NAS Alg. 1 on labelled calibration cells.

    z1 = the proxy of highest Spearman with accuracy; candidates = the others within
    `margin` of it; z2 = the candidate of minimum information gain IG given z1;
    z3 = the remaining candidate whose bias (rank correlation with #params) is closest to
    the accuracy's. NaN rows (any proxy failed) are left out.

    Args:
      scores: f64[C, M] proxy scores of the calibration cells (higher is better).
      accuracy: f64[C] their accuracies.
      params: f64[C] their parameter counts.
      names: M proxy names.
      margin: width of the candidate band below the best Spearman.
      num_bins: equal-frequency bins per variable for the entropy estimates.
    """
    scores = np.asarray(scores, np.float64)
    accuracy = np.asarray(accuracy, np.float64)
    params = np.asarray(params, np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(names):
        raise errors.ShapeError(
            f"libra_select takes f64[C, M] with M = len(names) = {len(names)}, got {scores.shape}"
        )
    if scores.shape[1] < 3:
        raise errors.ConfigError(f"LIBRA chooses 3 proxies; got only {scores.shape[1]}")
    if accuracy.shape != (scores.shape[0],) or params.shape != accuracy.shape:
        raise errors.ShapeError(
            f"accuracy and params must be f64[{scores.shape[0]}], "
            f"got {accuracy.shape} and {params.shape}"
        )
    keep = ~np.isnan(scores).any(axis=1) & ~np.isnan(accuracy) & ~np.isnan(params)
    scores, accuracy, params = scores[keep], accuracy[keep], params[keep]
    if scores.shape[0] < 3:
        raise errors.ConfigError(
            f"LIBRA needs at least 3 calibration cells without NaN, got {scores.shape[0]}"
        )
    names = tuple(names)
    rho = {n: float(stats.spearmanr(scores[:, m], accuracy)[0]) for m, n in enumerate(names)}
    rho_values = np.nan_to_num(np.asarray([rho[n] for n in names]), nan=-np.inf)
    order = np.argsort(-rho_values, kind="stable")
    z1 = int(order[0])
    pool = [int(m) for m in order[1:] if rho_values[m] > rho_values[z1] - margin]
    widened = len(pool) < 2
    if widened:
        pool = [int(m) for m in order[1:3]]
    ig = {names[m]: information_gain(accuracy, scores[:, z1], scores[:, m], num_bins) for m in pool}
    z2 = min(pool, key=lambda m: ig[names[m]])
    size_bias = {n: bias(scores[:, m], params) for m, n in enumerate(names)}
    acc_bias = bias(accuracy, params)
    rest = [m for m in pool if m != z2]
    z3 = min(rest, key=lambda m: abs(size_bias[names[m]] - acc_bias))
    columns = (z1, z2, z3)
    return LibraSelection(
        columns=columns,
        names=tuple(names[m] for m in columns),
        spearman=rho,
        info_gain=ig,
        bias=size_bias,
        accuracy_bias=acc_bias,
        candidates=tuple(names[m] for m in pool),
        widened=widened,
        num_calibration=int(scores.shape[0]),
        margin=margin,
        num_bins=num_bins,
    )


# ------------------------------------------------------------------ few-shot predictor


def signed_log(values) -> jax.Array:
    """sign(x) * log1p(|x|) of f32[...]: proxy scores span many decades."""
    values = jnp.asarray(values, jnp.float32)
    return jnp.sign(values) * jnp.log1p(jnp.abs(values))


def one_hot_codes(codes) -> np.ndarray:
    """One-hot of every position of a categorical encoding i64[P, L]: f32[P, D].

    Each position gets one column per value seen in it (over the P rows given), so the
    same rows must be encoded together (calibration and evaluation cells alike).
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise errors.ShapeError(f"one_hot_codes takes i64[P, L], got shape {codes.shape}")
    blocks = [(codes[:, [j]] == np.unique(codes[:, j])[None, :]) for j in range(codes.shape[1])]
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _labelled(x, y, fitter: str):
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] < 3:
        raise errors.ShapeError(
            f"{fitter} takes f32[K, D] and f32[K] with K >= 3, got {x.shape} and {y.shape}"
        )
    if not (bool(jnp.all(jnp.isfinite(x))) and bool(jnp.all(jnp.isfinite(y)))):
        raise errors.DataError(f"{fitter}: features or targets contain NaN or inf")
    return x, y


def _rescaled(x, mean, scale):
    return (jnp.asarray(x, jnp.float32) - mean[None, :]) / scale[None, :]


def _standardise(x):
    mean = jnp.mean(x, axis=0)
    std = jnp.std(x, axis=0)
    # A column constant over the training cells carries no fitted information: an infinite
    # scale maps it to 0 for every later cell too, where an untrained MLP weight would
    # otherwise turn an unseen value (e.g. an op no training cell had) into noise.
    scale = jnp.where(std > 0, std, jnp.inf)
    return _rescaled(x, mean, scale), mean, scale


RIDGE_LAMBDAS = tuple(10.0**e for e in range(-3, 4))


@dataclasses.dataclass(frozen=True)
class Ridge:
    """A fitted ridge regressor: predict(x f32[P, D]) -> f32[P]."""

    mean: jax.Array
    scale: jax.Array
    weights: jax.Array
    intercept: jax.Array
    lam: jax.Array
    loo_errors: jax.Array  # f32[L]: leave-one-out mean squared error of each lambda

    def predict(self, x) -> jax.Array:
        return _rescaled(x, self.mean, self.scale) @ self.weights + self.intercept


@jax.jit
def _ridge(x, y, lambdas):
    xs, mean, scale = _standardise(x)
    intercept = jnp.mean(y)
    yc = y - intercept
    # Dual form in the (K-1)-dim space of vectors summing to zero, where the centred data
    # live: K <= a few hundred cells, D may be larger. One eigh gives every lambda's fit
    # and hat matrix (with the intercept's leverage 1/K), hence the closed-form
    # leave-one-out error, written without the cancellation of 1 - h near 0 in float32.
    k = x.shape[0]
    basis, _ = jnp.linalg.qr((jnp.eye(k) - 1.0 / k)[:, : k - 1])
    evals, evecs = jnp.linalg.eigh(basis.T @ (xs @ xs.T) @ basis)
    evals = jnp.maximum(evals, 0.0)
    u = basis @ evecs
    uty = u.T @ yc

    def loo_error(lam):
        keep = lam / (evals + lam)
        residual = u @ (keep * uty)
        one_minus_hat = jnp.sum(u**2 * keep[None, :], axis=1)
        return jnp.mean((residual / one_minus_hat) ** 2)

    errors_ = jnp.nan_to_num(jax.vmap(loo_error)(lambdas), nan=jnp.inf)
    lam = lambdas[jnp.argmin(errors_)]
    alpha = u @ (uty / (evals + lam))
    return mean, scale, xs.T @ alpha, intercept, lam, errors_


def fit_ridge(x, y, lambdas: Sequence[float] = RIDGE_LAMBDAS) -> Ridge:
    """Ridge regression on standardised features, lambda by leave-one-out on (x, y) only.

    Args:
      x: f32[K, D] features of the K labelled cells.
      y: f32[K] their accuracies.
      lambdas: the penalties tried; the one of least closed-form leave-one-out squared
        error on these K cells is kept (no other cell is looked at).
    """
    x, y = _labelled(x, y, "fit_ridge")
    return Ridge(*_ridge(x, y, jnp.asarray(lambdas, jnp.float32)))


class _Perceptron(nn.Module):
    hidden: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(1)(x)[..., 0]


@dataclasses.dataclass(frozen=True)
class MLPSettings:
    """The few-shot MLP's hyper-parameters, fixed in advance (never tuned on the cells
    a predictor is evaluated on): `members` networks from independent initialisations,
    each trained full-batch with AdamW on the mean squared error of standardised
    accuracies; the prediction is the members' mean."""

    hidden: tuple[int, ...] = (64, 64)
    members: int = 8
    steps: int = 500
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2


@dataclasses.dataclass(frozen=True)
class MLP:
    """A fitted MLP ensemble: predict(x f32[P, D]) -> f32[P] (in accuracy units)."""

    mean: jax.Array
    scale: jax.Array
    y_mean: jax.Array
    y_scale: jax.Array
    params: dict  # each leaf stacked over the members
    settings: MLPSettings
    final_loss: jax.Array  # f32[members]: training MSE (standardised) after the last step

    def predict(self, x) -> jax.Array:
        x = _rescaled(x, self.mean, self.scale)
        module = _Perceptron(self.settings.hidden)
        out = jax.vmap(lambda p: module.apply(p, x))(self.params)
        return jnp.mean(out, axis=0) * self.y_scale + self.y_mean


@functools.partial(jax.jit, static_argnums=(3,))
def _mlp(x, y, key, settings: MLPSettings):
    xs, mean, scale = _standardise(x)
    y_mean, y_std = jnp.mean(y), jnp.std(y)
    y_scale = jnp.where(y_std > 0, y_std, 1.0)
    ys = (y - y_mean) / y_scale
    module = _Perceptron(settings.hidden)
    optimiser = optax.adamw(settings.learning_rate, weight_decay=settings.weight_decay)

    def loss(params):
        return jnp.mean((module.apply(params, xs) - ys) ** 2)

    def train(member_key):
        params = module.init(member_key, xs[:1])

        def step(carry, _):
            params, state = carry
            value, grads = jax.value_and_grad(loss)(params)
            # optax's Adam bias correction raises a Python float to its int32 step count,
            # which a caller's strict dtype promotion would reject.
            with jax.numpy_dtype_promotion("standard"):
                updates, state = optimiser.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), value

        (params, _), _ = jax.lax.scan(
            step, (params, optimiser.init(params)), None, length=settings.steps
        )
        return params, loss(params)

    params, final = jax.vmap(train)(jax.random.split(key, settings.members))
    return mean, scale, y_mean, y_scale, params, final


def fit_mlp(x, y, key: jax.Array, settings: MLPSettings = MLPSettings()) -> MLP:
    """A small MLP ensemble (Flax, trained with optax) on standardised features.

    The members train in one program (vmapped over their initialisation keys). A
    feature constant over the K cells is ignored (it is 0 after standardisation, for
    these and for every later cell).

    Args:
      x: f32[K, D] features of the K labelled cells.
      y: f32[K] their accuracies.
      key: the members' initialisation keys are split from it.
      settings: hyper-parameters (`MLPSettings`; defaults fixed in advance).
    """
    x, y = _labelled(x, y, "fit_mlp")
    if settings.members < 1 or settings.steps < 1 or any(w < 1 for w in settings.hidden):
        raise errors.ConfigError(
            f"fit_mlp needs members, steps and hidden widths >= 1, got {settings}"
        )
    *fitted, final = _mlp(x, y, key, settings)
    return MLP(*fitted, settings=settings, final_loss=final)


# ----------------------------------------------------------------------- protocol


def disjoint_split(num_cells: int, num_eval: int, num_calibration: int, seed: int):
    """Seeded disjoint row sets: (evaluation i64[num_eval], calibration i64[num_calibration]).

    One permutation of range(num_cells): the first num_eval rows evaluate, the next
    num_calibration calibrate, so no cell is in both.
    """
    if num_eval < 1 or num_calibration < 1:
        raise errors.ConfigError(
            f"split sizes must be >= 1, got eval {num_eval}, calibration {num_calibration}"
        )
    if num_eval + num_calibration > num_cells:
        raise errors.ConfigError(
            f"cannot draw {num_eval} evaluation + {num_calibration} calibration cells "
            f"from {num_cells}"
        )
    order = np.random.default_rng(seed).permutation(num_cells)
    return order[:num_eval], order[num_eval : num_eval + num_calibration]


def make_combiner(
    name: str, selection: LibraSelection | None = None, fusion: str = "rank_sum"
) -> Callable[[jax.Array], jax.Array]:
    """A jittable `f32[P, M] -> f32[P]` by name (for a search fitness over a score matrix).

    `libra` needs the `LibraSelection` made on calibration cells with the same columns.
    """
    if name == "libra":
        if selection is None:
            raise errors.ConfigError("the libra combiner needs a selection (libra_select)")
        return lambda scores: libra(scores, selection.columns, fusion)
    table = {"rank_sum": rank_sum, "vote": vote, "log_rank": log_rank}
    if name not in table:
        raise errors.ConfigError(f"unknown combiner {name!r}; available: {list(COMBINERS)}")
    return table[name]
