"""synflow: synaptic flow of the linearised network, computed in log space.

Tanaka, Kunin, Yamins, Ganguli, "Pruning neural networks without any data by
iteratively conserving synaptic flow", NeurIPS 2020, as a zero-cost proxy in Abdelfattah
et al., ICLR 2021 (zero-cost-nas `measures/synflow.py`); NAS-Bench-Suite-Zero (NASLib)
returns log(score). The reference replaces every parameter by its absolute value,
makes every BatchNorm the identity, feeds one all-ones image in float64 and returns
S = sum |theta * dR/dtheta| over the conv / linear weights, R = sum of the outputs.

S reaches 1e50 on NB201 (zero-cost-nas issue #23), beyond float32. This version never
forms S. With BatchNorm off, |theta| and a non-negative input the network is positively
homogeneous in (input, biases): scaling the image and every linear / conv bias by s
scales every activation, R and S by s. And S is the directional derivative of R along
the weights themselves (theta >= 0 and dR/dtheta >= 0, so |theta * dR/dtheta| =
theta * dR/dtheta), one forward-mode product. So:

  1. R_1 = R at scale s_1 = 2**-100 gives log2 R (a cheap, overflow-safe estimate);
  2. at s = 2**-k, k = round(log2(R) / 2), activations run from about 2**-k (input) to
     2**k (output), centred in float32's range; `jax.jvp` gives S_s = s * S;
  3. log S = log S_s + k log 2, exact up to float32 rounding (s is a power of two).

This covers R up to about 2**250 (log R ~ 170; NB201 needs < 115). Beyond that, or if
anything overflows, the score is NaN (failed), never inf. S = 0 (no weight influences
the output, e.g. an all-`none` cell) gives -inf, the worst valid score; NASLib returns 0
there instead.

The rescaling is exact for conv / linear / ReLU / pooling networks only. A network
with an op that is not positively homogeneous (LayerNorm, GELU, an unscaled class token:
AutoFormer) is detected by its outputs, R(s_1) / s_1 != R(s) / s, and scored by the
definition itself, at scale 1 (S from one `jax.jvp`; NaN if it overflows float32): the
rescaled value there was wrong by orders of magnitude (NNI's AutoFormer oracle,
`tests/test_nni_autoformer_oracle.py`).

The network must be built without BatchNorm: the registry declares the override
`batch_norm=False` (`proxies.PROXIES["synflow"].network`), which `get_proxy` attaches
and `score_population` applies (callers of `synflow()` itself build
`space.network(genotype, batch_norm=False)` themselves).
"""

import jax
import jax.numpy as jnp

from jaxnas import types
from jaxnas.proxies import layerwise

PROBE_LOG2_SCALE = 100.0  # step 1 input scale 2**-100: no overflow below R ~ 2**227
MAX_LOG2_R = 250.0
# |log2 R(s_1) / s_1 - log2 R(s) / s| above which the network is taken as not positively
# homogeneous: float32 rounding through a deep ReLU network moves it by ~1e-5.
HOMOGENEITY_LOG2_TOL = 1e-3


def _bias_scaler(params):
    """`(tree, s) -> tree` scaling the biases of conv / linear layers by s."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    names = [tuple(getattr(k, "key", getattr(k, "name", str(k))) for k in path) for path, _ in flat]
    layers = {n[:-1] for n in names if n[-1] == layerwise.WEIGHT_LEAF}
    is_bias = [n[-1] == "bias" and n[:-1] in layers for n in names]

    def scale(tree, s):
        leaves = jax.tree.leaves(tree)
        return jax.tree.unflatten(
            treedef, [v * s if bias else v for v, bias in zip(leaves, is_bias)]
        )

    return scale


def synflow() -> types.ProxyFn:
    """Returns the synflow proxy: log S (higher is better; NaN if it overflows)."""

    def synflow_fn(network, params, batch, key):
        del key
        positive = jax.tree.map(jnp.abs, params)
        mask = layerwise.weight_mask(network, params)
        direction = jax.tree.map(layerwise.masked, positive, mask)
        ones = jnp.ones((1, *batch["x"].shape[1:]), jnp.float32)
        scale_biases = _bias_scaler(params)

        def total_output(p, log2_scale):
            s = jnp.exp2(-log2_scale)
            return jnp.sum(network.apply(scale_biases(p, s), ones * s))

        log2_r = jnp.log2(total_output(positive, PROBE_LOG2_SCALE)) + PROBE_LOG2_SCALE
        k = jnp.round(jnp.clip(log2_r, 0.0, MAX_LOG2_R) / 2.0)
        r_s, s_s = jax.jvp(lambda p: total_output(p, k), (positive,), (direction,))
        # R = 0 (log2_r = -inf) is valid: then S = 0 and the score is -inf.
        ok = ~jnp.isnan(log2_r) & (log2_r <= MAX_LOG2_R) & jnp.isfinite(r_s)
        ok = ok & jnp.isfinite(s_s)
        log_s = jnp.log(s_s) + k * jnp.log(2.0)
        both_zero = (r_s == 0) & jnp.isneginf(log2_r)
        homogeneous = both_zero | (jnp.abs(jnp.log2(r_s) + k - log2_r) <= HOMOGENEITY_LOG2_TOL)
        r_1, s_1 = jax.jvp(lambda p: total_output(p, 0.0), (positive,), (direction,))
        direct = jnp.where(jnp.isfinite(r_1) & jnp.isfinite(s_1), jnp.log(s_1), jnp.nan)
        log_s = jnp.where(homogeneous, jnp.where(ok, log_s, jnp.nan), direct)
        return log_s.astype(jnp.float32)

    return synflow_fn
