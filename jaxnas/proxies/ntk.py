"""TE-NAS's NTK condition number, with the empirical NTK from `jax.vjp` / `jax.jvp`.

Chen, Gong, Wang, "Neural Architecture Search on ImageNet in Four GPU Hours: A
Theoretically Inspired Perspective" (TE-NAS), ICLR 2021; reference code
VITA-Group/TENAS `lib/procedures/ntk.py`.

The empirical NTK of a batch is Theta = J J^T (f32[B, B]), where row i of J is the
gradient of the sum of sample i's logits with respect to every "weight" of the network
(conv and linear kernels and BatchNorm gains; no biases), and kappa = lambda_max /
lambda_min. TE-NAS prefers a small kappa; the proxy returns -log(kappa) so that higher
is better (kappa = exp(-score)).

Faithfulness notes (reference.md §A.2, §F.1-2):
  * BatchNorm uses batch statistics and the NTK differentiates the *batched* forward
    (`per_example=False`, the default), exactly like TE-NAS's `logit[i].backward()` on a
    train-mode network: sample i's gradient flows through the batch statistics.
  * TE-NAS scores a small proxy network, not the benchmark network: for NB201 use
    `space.network(genotype, **TENAS_NTK_NETWORK)` (C=3, one cell per stage), a batch of
    72 real training images, and PyTorch's default init (the released code's Kaiming
    re-initialisation never runs; reference.md §F.1).
  * TE-NAS maps a NaN kappa to 100000; here a kernel whose smallest eigenvalue is below
    the float32 resolution of `eigvalsh` (B * eps * lambda_max, e.g. duplicated inputs,
    or a cell whose output is constant) has kappa capped at 1 / (B * eps): the worst
    finite score, -log(1 / (B * eps)) (-13.8 for B = 8, -15.9 for B = 72). A network
    with non-finite gradients scores NaN (failed).
"""

import enum
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors, types
from jaxnas.proxies import gradients, protocols

# TE-NAS's NB201 NTK network (`prune_tenas.py`): `space.network(g, **TENAS_NTK_NETWORK)`.
TENAS_NTK_NETWORK = dict(channels=3, cells_per_stage=1)
# TE-NAS's protocol: that network, 72 real training images, K=3 initialisations.
TENAS_PROTOCOL = protocols.Protocol(
    network=TENAS_NTK_NETWORK, batch_size=72, num_inits=3, reference="reference.md §A.2"
)


class NtkImpl(enum.IntEnum):
    """How Theta = J J^T is computed (after neural-tangents' `NtkImplementation`).

    Both give the same kernel (tested against `jax.jacrev`); they trade memory for time.

    JACOBIAN_CONTRACTION: materialise J (B rows, one per sample, of every selected
      parameter) with one forward pass and B vectorised VJPs, then contract J J^T leaf by
      leaf. Memory O(B * P). The fastest choice whenever J fits in memory, which is the
      case for TE-NAS's proxy networks (P ~ 10^4).
    VECTOR_PRODUCTS: never materialise J. Column j of Theta is J (J^T e_j): `jax.vjp`
      gives J^T e_j (a parameter-shaped vector) and `jax.jvp` along it gives J v.
      Vectorised over j. Memory O(P) per column plus activations; about twice the
      arithmetic. Use it when B * P does not fit.
    """

    JACOBIAN_CONTRACTION = 1
    VECTOR_PRODUCTS = 2


OutputFn = Callable[[types.Params, jax.Array], jax.Array]  # (params, x[B, ...]) -> f32[B]


def ntk_fn(
    f: OutputFn,
    *,
    impl: NtkImpl = NtkImpl.JACOBIAN_CONTRACTION,
    per_example: bool = False,
    rows_per_chunk: int | None = None,
) -> Callable[[types.Params, jax.Array], jax.Array]:
    """Returns `ntk(params, x) -> f32[B, B]`, the empirical NTK of a scalar-per-sample f.

    Args:
      f: `(params, x) -> f32[B]`, one scalar output per sample (TE-NAS: the sum of each
        sample's logits). `params` may be any pytree; the NTK sums over all its leaves.
      impl: the algorithm (see `NtkImpl`).
      per_example: False differentiates the batched forward, so batch statistics
        (train-mode BatchNorm) take part in every sample's gradient, as in TE-NAS.
        True evaluates every sample on its own (`vmap` over single-sample batches): fast,
        but it equals the batched NTK only for networks without interaction between
        batch elements (no batch-statistics normalisation); with BatchNorm it silently
        computes a different quantity (each image normalised by its own statistics).
      rows_per_chunk: how many of the B vector products (Jacobian rows, or kernel
        columns) run vmapped together, chunks one after another (`lax.map`); None =
        all B at once. The Jacobian contraction's per-example mode (B single-image
        gradients, vmapped) ignores it. The kernel does not depend on it. On a CPU small chunks pay
        where the network's activations are large: TE-NAS's NB201 supernet NTK at 72
        images runs 2x faster in chunks of 2 and in a fifth of the memory, while one
        cell of the C=3 network runs 4 % slower (WORKSPACE_NOTES.md, Session 28).

    Returns:
      The NTK function; both implementations and both modes give f32[B, B].

    Raises:
      ConfigError: `rows_per_chunk` below 1.
    """
    impl = NtkImpl(impl)
    _check_chunk(rows_per_chunk)

    def over_rows(fn, batch_size):
        eye = jnp.eye(batch_size, dtype=jnp.float32)
        if rows_per_chunk is None or rows_per_chunk >= batch_size:
            return jax.vmap(fn)(eye)
        return jax.lax.map(fn, eye, batch_size=rows_per_chunk)

    def outputs(params, x):
        if per_example:
            return jax.vmap(lambda xi: f(params, xi[None])[0])(x)
        return f(params, x)

    def contraction(params, x):
        if per_example:
            jac = jax.vmap(jax.grad(lambda p, xi: f(p, xi[None])[0]), in_axes=(None, 0))(params, x)
        else:
            _, vjp = jax.vjp(lambda p: outputs(p, x), params)
            jac = over_rows(lambda e: vjp(e)[0], x.shape[0])
        b = x.shape[0]
        kernel = jnp.zeros((b, b), jnp.float32)
        for leaf in jax.tree.leaves(jac):
            rows = leaf.reshape(b, -1)
            kernel = kernel + rows @ rows.T
        return kernel

    def vector_products(params, x):
        _, vjp = jax.vjp(lambda p: outputs(p, x), params)

        def column(e):
            # Theta e = J (J^T e): a VJP, then a JVP along the resulting parameter vector.
            return jax.jvp(lambda p: outputs(p, x), (params,), vjp(e))[1]

        return over_rows(column, x.shape[0])

    return contraction if impl == NtkImpl.JACOBIAN_CONTRACTION else vector_products


def _check_chunk(rows_per_chunk: int | None):
    if rows_per_chunk is not None and rows_per_chunk < 1:
        raise errors.ConfigError(f"rows_per_chunk must be None or >= 1, got {rows_per_chunk}")


def log_condition_number(kernel: jax.Array) -> jax.Array:
    """log(lambda_max / lambda_min) of a symmetric PSD kernel f32[B, B]: f32[].

    Eigenvalues below the float32 resolution of `eigvalsh` (B * eps * lambda_max) are
    not distinguishable from 0; such a kernel (rank-deficient, or all zero) gets the
    capped value log(1 / (B * eps)). Non-finite kernels give NaN.
    """
    b = kernel.shape[0]
    eps = float(jnp.finfo(jnp.float32).eps)
    cap = float(np.log(1.0 / (b * eps)))
    finite = jnp.all(jnp.isfinite(kernel))
    safe = jnp.where(finite, kernel, 0.0)
    eig = jnp.linalg.eigvalsh(0.5 * (safe + safe.T))
    lam_min, lam_max = eig[0], eig[-1]
    resolved = lam_min > lam_max * (b * eps)
    value = jnp.where(resolved, jnp.log(lam_max) - jnp.log(jnp.where(resolved, lam_min, 1.0)), cap)
    return jnp.where(finite, value, jnp.nan)


def logit_sum(network) -> OutputFn:
    """TE-NAS's per-sample output: the sum over classes of each sample's logits."""
    return lambda params, x: jnp.sum(network.apply(params, x), axis=-1)


def ntk_cond(
    *,
    impl: int = NtkImpl.JACOBIAN_CONTRACTION,
    per_example: bool = False,
    rows_per_chunk: int | None = None,
) -> types.ProxyFn:
    """Returns the NTK condition-number proxy: -log(kappa), higher is better.

    Args:
      impl: `NtkImpl` value (1 = Jacobian contraction, 2 = NTK-vector products).
      per_example: see `ntk_fn`; keep False for networks with BatchNorm.
      rows_per_chunk: see `ntk_fn` (None = all rows at once).

    The gradient is taken with respect to TE-NAS's "weight" parameters (conv / linear
    kernels, BatchNorm gains) of the architecture (`network.param_mask`).
    """
    impl = NtkImpl(impl)
    _check_chunk(rows_per_chunk)

    def ntk_cond_fn(network, params, batch, key):
        del key
        sel = gradients.Selection(network, params, gradients.is_weight)
        out = logit_sum(network)

        def f(leaves, x):
            return out(sel.merge(sel.masked(leaves)), x)

        kernel = ntk_fn(f, impl=impl, per_example=per_example, rows_per_chunk=rows_per_chunk)(
            sel.leaves, batch["x"]
        )
        return -log_condition_number(kernel)

    return ntk_cond_fn
