"""epe_nas: per-class correlations of input Jacobians.

Lopes, Alirezazadeh, Alexandre, "EPE-NAS: Efficient Performance Estimation Without
Training for Neural Architecture Search", ICANN 2021; the NAS-Bench-Suite-Zero version
(NASLib `measures/epe_nas.py`). J = d(sum of all logits)/dx for one batch (BatchNorm in
train mode, as `jacob_cov`); for each class c among the batch labels, with C the
correlation matrix of the Jacobians of the images labelled c,
s_c = sum_ij log(|C_ij| + 1e-5) (a class with one image has C = 1). Then

  * num_classes <= 100: score = sum_c |s_c|;
  * num_classes > 100 (ImageNet16-120): s_c is divided by the class's image count,
    classes with a single image are skipped (NumPy raises on them inside the reference's
    `try`), and score = sum_{c, c'} |s_c - s_c'| / (number of classes kept).

num_classes is the network's output width. Correlations within a class equal those of
the whole batch restricted to it, so one B x B matrix serves every class. A constant
Jacobian row makes its correlations undefined: NaN (failed), as in the reference.
"""

import jax
import jax.numpy as jnp

from jaxnas import errors, types
from jaxnas.proxies import base, jacob_cov, layerwise

K = 1e-5
MANY_CLASSES = 100


def class_scores(
    jacobian: jax.Array, labels: jax.Array, num_classes: int, k: float = K
) -> tuple[jax.Array, jax.Array]:
    """(s_c f32[num_classes], images per class f32[num_classes]); absent classes s_c = 0."""
    z = jacob_cov.standardized_rows(jacobian)
    log_corr = jnp.log(jnp.abs(z @ z.T) + k)
    member = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    return jnp.einsum("ic,ij,jc->c", member, log_corr, member), jnp.sum(member, axis=0)


def epe_score(jacobian: jax.Array, labels: jax.Array, num_classes: int, k: float = K):
    """The NASLib score from Jacobians f32[B, D] and labels int32[B]: f32[]."""
    s, count = class_scores(jacobian, labels, num_classes, k)
    if num_classes <= MANY_CLASSES:
        return jnp.sum(jnp.abs(s))
    kept = count >= 2
    s = s / jnp.maximum(count, 1.0)
    pairs = (kept[:, None] & kept[None, :]).astype(jnp.float32)
    total = jnp.sum(pairs * jnp.abs(s[:, None] - s[None, :]))
    return total / jnp.maximum(jnp.sum(kept.astype(jnp.float32)), 1.0)


def epe_nas(*, k: float = K) -> types.ProxyFn:
    """Returns the epe_nas proxy (higher is better; NaN if undefined).

    Args:
      k: the reference's offset inside the logarithm.
    """

    def epe_nas_fn(network, params, batch, key):
        del key
        if "y" not in batch:
            raise errors.ShapeError("epe_nas needs labels: batch['y'] int32[B]")
        x = batch["x"]
        num_classes = jax.eval_shape(network.apply, params, x).shape[-1]
        jacobian = layerwise.input_jacobian(network, params, batch)
        score = epe_score(jacobian, batch["y"], num_classes, k)
        score = jnp.asarray(score, jnp.float32)
        return jnp.where(jnp.isfinite(score), score, jnp.nan)

    return base.with_shared_requests(epe_nas_fn, layerwise.INPUT_JACOBIAN)
