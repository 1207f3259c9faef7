"""jacob_cov: eigenvalues of the correlation matrix of input Jacobians.

Mellor et al., "Neural Architecture Search without Training", arXiv v1 (2020) (tag
`v1.0` of BayesWatch/nas-without-training); the `jacob_cov` of zero-cost-nas and the
`jacov` of NAS-Bench-Suite-Zero (NASLib `measures/jacov.py`): J = d(sum of all logits)/dx
for one batch (BatchNorm in train mode), row i flattened for image i;
C = corrcoef(J) (B x B); score = -sum_i [log(lambda_i + k) + 1/(lambda_i + k)],
k = 1e-5, over the B eigenvalues lambda_i of C.

The eigenvalues are the squared singular values of the standardised rows (C = Z Z^T),
so small eigenvalues keep float32 absolute accuracy (eigvalsh of C in float32 would
lose them, and 1/(lambda + 1e-5) amplifies that). Rank deficiency (fewer pixels than
images, duplicate images) gives zero eigenvalues and a finite score of about -1e5 per
missing dimension. An image whose Jacobian is constant has no correlation (0/0): the
reference then fails inside NumPy (NaN); so does this proxy.
"""

import jax.numpy as jnp

from jaxnas import types
from jaxnas.proxies import base, layerwise

K = 1e-5


def standardized_rows(jacobian: jnp.ndarray) -> jnp.ndarray:
    """Rows centred and scaled to unit norm, so that corrcoef = Z Z^T: f32[B, D].

    A row with zero variance becomes NaN (its correlations are undefined).
    """
    centred = jacobian - jnp.mean(jacobian, axis=1, keepdims=True)
    norms = jnp.sqrt(jnp.sum(jnp.square(centred), axis=1, keepdims=True))
    return centred / norms


def correlation_eigenvalues(jacobian: jnp.ndarray) -> jnp.ndarray:
    """The B eigenvalues of corrcoef(jacobian) (ascending order not guaranteed): f32[B]."""
    b = jacobian.shape[0]
    z = standardized_rows(jacobian)
    undefined = jnp.any(jnp.isnan(z))
    singular = jnp.linalg.svd(jnp.where(undefined, 0.0, z), compute_uv=False)
    eig = jnp.zeros((b,), jnp.float32).at[: singular.shape[0]].set(jnp.square(singular))
    return jnp.where(undefined, jnp.nan, eig)


def eigen_score(eigenvalues: jnp.ndarray, k: float = K) -> jnp.ndarray:
    """-sum[log(lambda + k) + 1/(lambda + k)]: f32[]."""
    shifted = eigenvalues + k
    return -jnp.sum(jnp.log(shifted) + 1.0 / shifted)


def jacob_cov(*, k: float = K) -> types.ProxyFn:
    """Returns the jacob_cov proxy (higher is better; NaN if undefined).

    Args:
      k: the reference's eigenvalue offset.
    """

    def jacob_cov_fn(network, params, batch, key):
        del key
        jacobian = layerwise.input_jacobian(network, params, batch)
        return layerwise.finite_or_nan(eigen_score(correlation_eigenvalues(jacobian), k))

    return base.with_shared_requests(jacob_cov_fn, layerwise.INPUT_JACOBIAN)
