"""L-SWAG: layer-wise gradient-variance trainability times layer-wise SWAP expressivity.

Casarin, Escalera, Lanz, "L-SWAG: Layer-Sample Wise Activation with Gradients
information for Zero-Shot NAS on Vision Transformers", CVPR 2025 (arXiv 2505.07300).
No code is public; this follows the paper's Eq. 1 (reference.md §A.5):

  L-SWAG = Lambda * Psi,
  Lambda = sum over weight layers l in the window of log( sum_w 1 / sqrt(Var_i |g_w,i|) ),
  Psi    = SWAP restricted to the activation layers up to the window's end: the number
           of distinct binary activation vectors (over the batch) of their units.

Choices where the paper leaves room, each an option:
  * g_w,i is the cross-entropy gradient of weight w (Conv / Linear `kernel`s) on
    mini-batch i: the batch is split into `num_batches` parts, each its own forward pass
    (ZiCo's protocol, on which the paper builds; Var over 2 batches is (|g1|-|g2|)^2/4).
    Weights with zero variance are skipped, as ZiCo skips zero std.
  * Layers are binned by relative depth into `num_bins` percentile bins (the paper's
    PERC_BINS = 10): a layer at position l of the L layers of the architecture (in
    forward order) is in bin floor(100 l / L // (100 / num_bins)); `layers=(lo, hi)`
    keeps bins lo..hi for Lambda and bins 0..hi for Psi. The paper calibrates the window
    per benchmark from gradient statistics of 1000 random networks; the default keeps
    every layer.
  * Psi uses the units of the taps (ReLU / GeLU inputs, binarised > 0), as `swap`.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors, types
from jaxnas.proxies import base, gradients, layerwise, patterns, protocols

# The benchmark network on 64 images (2 mini-batches of 32).
PROTOCOL = protocols.Protocol(batch_size=64, reference="reference.md §A.5")


def _bins(present: jax.Array, num_bins: int) -> jax.Array:
    """Depth bin of each layer among the present ones (bool[L], in depth order): i32[L]."""
    flags = present.astype(jnp.int32)
    position = jnp.cumsum(flags) - 1
    total = jnp.maximum(jnp.sum(flags), 1)
    percent = (100 * position) // total
    return percent // (100 // num_bins)


def lswag(
    *, num_batches: int = 2, layers: tuple[int, int] = (0, 9), num_bins: int = 10
) -> types.ProxyFn:
    """Returns the L-SWAG proxy (see the module docstring).

    Args:
      num_batches: mini-batches the batch is split into for the gradient variance.
      layers: (first, last) depth bins of the window, inclusive.
      num_bins: number of relative-depth bins (100 must be divisible by it).
    """
    lo, hi = layers
    if 100 % num_bins or not 0 <= lo <= hi < num_bins:
        raise errors.ConfigError(
            f"lswag: layers={layers} must satisfy 0 <= first <= last < num_bins={num_bins}, "
            f"and 100 must be divisible by num_bins"
        )

    def lswag_fn(network, params, batch, key):
        del key
        sel, grads = gradients.split_gradients(
            network, params, batch, gradients.is_kernel, num_batches
        )
        order = gradients.first_use_order(lambda p: network.apply(p, batch["x"][:1]), params)
        rank = {leaf: r for r, leaf in enumerate(order)}
        depth = np.asarray(sorted(range(len(grads)), key=lambda n: rank[sel.indices[n]]))
        present = sel.present()
        # One vector op per step, not one per layer: a supernet has hundreds of layers.
        bins = _bins(present[depth], num_bins)[np.argsort(depth)]

        def inverse_std_sum(g):
            var = jnp.var(jnp.abs(g), axis=0)
            return jnp.sum(jnp.where(var > 0, 1.0 / jnp.sqrt(jnp.where(var > 0, var, 1.0)), 0.0))

        used = present & (bins >= lo) & (bins <= hi)
        lam, finite = layerwise.sum_of_logs(inverse_std_sum, grads, used)

        logits, taps = layerwise.forward_taps(network, params, batch)
        distinct = patterns.distinct_taps(taps)
        tap_bins = _bins(jnp.stack([jnp.any(t.weight > 0) for t in distinct]), num_bins)
        codes, units = patterns.unit_codes(distinct)
        in_window = jnp.concatenate(
            [jnp.broadcast_to(b <= hi, (t.value[0].size,)) for t, b in zip(distinct, tap_bins)]
        )
        psi = patterns.count_distinct_rows(codes, units & in_window).astype(jnp.float32)
        finite = finite & jnp.all(jnp.isfinite(logits))
        return jnp.where(finite, lam * psi, jnp.nan)

    return base.with_shared_requests(lswag_fn, layerwise.FORWARD_TAPS)
