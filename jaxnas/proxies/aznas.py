"""AZ-NAS: expressivity, progressivity and trainability, and their rank aggregation.

Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search",
CVPR 2024; reference code cvlab-yonsei/AZ-NAS `NB201/ZeroShotProxy/
compute_az_nas_score.py` and `NB201/tss_general.ipynb` (reference.md §A.16).

On the outputs f_0..f_{L-1} of the network's blocks (NB201: stem, cells, reduction
blocks; NB101 and DARTS: stem and cells; `blocks.SPACE_BLOCKS`):

  * expressivity = sum_l H(lambda_l / sum lambda_l), the entropy of the normalised
    eigenvalues of the channel covariance of f_l over all B*H*W positions (eigenvalues
    below 0, float32 rounding of a rank-deficient map's zeros, are taken as 0; the
    reference's NaN for them made every NB101 network we tried -inf);
  * progressivity = min_l (H_l - H_{l-1});
  * trainability = mean over l >= 1 of (-s - 1/(s + 1e-6) + 2), s the largest singular
    value of E[g_in^T g_out] over positions, with g_out Rademacher noise on f_l and g_in
    its gradient at block l's input (pixel-unshuffled when the resolution halves); a
    block whose g_in equals g_out (an identity) scores -inf. A DARTS cell reads the
    outputs of the two blocks before it: g_in joins the gradients at both along
    channels (the Jacobian with respect to everything the block reads; NB201's rule
    where a block has one input);
  * complexity = FLOPs: use the `flops` proxy (registered with the NAS-Bench-Suite-Zero
    proxies).

Each component is a proxy (higher is better; NaN is mapped to -inf, as in the
reference). AZ-NAS ranks a population by each component and sums log(rank / N)
(`rank_aggregate`). Reference protocol: Kaiming-normal fan-in initialisation
(`init="kaiming_normal"`), a Gaussian input batch of 64 (`gaussian_input=True`), the
benchmark network (C=16, N=5).
"""

import jax
import jax.numpy as jnp

from jaxnas import errors, types
from jaxnas.proxies import base, blocks, gradients

COMPONENTS = ("expressivity", "progressivity", "trainability")
INITS = ("kaiming_normal", "network")


def expressivity_per_block(features: jax.Array) -> jax.Array:
    """Entropy of the normalised channel-covariance spectrum of f32[B, H, W, C]: f32[]."""
    flat = features.reshape(-1, features.shape[-1])
    centred = flat - jnp.mean(flat, axis=0, keepdims=True)
    sigma = centred.T @ centred / float(flat.shape[0])
    # A covariance has no negative eigenvalue: negative ones are float32 rounding of the
    # zero eigenvalues of a rank-deficient map (NB101's 128-channel stem sees 27-dim
    # patches), for which the reference's log(p + 1e-8) gives NaN, i.e. -inf.
    eig = jnp.maximum(jnp.linalg.eigvalsh(sigma), 0.0)
    prob = eig / jnp.sum(eig)
    return jnp.sum(-prob * jnp.log(prob + 1e-8))


def pixel_unshuffle(x: jax.Array, factor: int) -> jax.Array:
    """f32[B, H, W, C] -> f32[B, H/r, W/r, C r^2], channel c r^2 + i r + j (PyTorch order)."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // factor, factor, w // factor, factor, c)
    return x.transpose(0, 1, 3, 5, 2, 4).reshape(b, h // factor, w // factor, c * factor**2)


def trainability_per_block(g_in, g_out: jax.Array) -> jax.Array:
    """-s - 1/(s + 1e-6) + 2 for one block (or -inf for an identity block): f32[].

    `g_in` is the gradient at the block's input, or a sequence of the gradients at its
    inputs (DARTS cells read two earlier outputs): each is pixel-unshuffled to the
    output's resolution and they are joined along channels, so s is the top singular
    value of the block's Jacobian with respect to all its inputs.
    """
    parts = [g_in] if isinstance(g_in, jax.Array) else list(g_in)
    identity = None
    if len(parts) == 1 and parts[0].shape == g_out.shape:
        identity = jnp.all(parts[0] == g_out)
    parts = [
        g if g.shape[1:3] == g_out.shape[1:3] else pixel_unshuffle(g, g.shape[1] // g_out.shape[1])
        for g in parts
    ]
    g_in = jnp.concatenate(parts, axis=-1)
    positions = g_out.shape[0] * g_out.shape[1] * g_out.shape[2]
    mat = g_in.reshape(-1, g_in.shape[-1]).T @ g_out.reshape(-1, g_out.shape[-1])
    s = jnp.linalg.norm(mat / float(positions), ord=2)
    score = -s - 1.0 / (s + 1e-6) + 2.0
    if identity is not None:
        score = jnp.where(identity, -jnp.inf, score)
    return score


def components(
    network, params, x: jax.Array, key: types.PRNGKey, pattern: str = blocks.BLOCKS
) -> jax.Array:
    """f32[3]: expressivity, progressivity, trainability of a network on a batch x.

    The Rademacher cotangents are drawn from `key`, one draw per block. A network whose
    output is not finite gives NaN (failed).
    """

    def rademacher(outputs):
        keys = jax.random.split(key, len(outputs) - 1)
        return [jax.random.rademacher(k, f.shape, jnp.float32) for k, f in zip(keys, outputs[1:])]

    logits, outputs, g_outs, g_ins = blocks.input_gradients(network, params, x, rademacher, pattern)
    values = components_from(outputs, g_outs, g_ins)
    return jnp.where(jnp.all(jnp.isfinite(logits)), values, jnp.nan)


def components_from(outputs, g_outs, g_ins) -> jax.Array:
    """f32[3] from block outputs and the gradients of `blocks.input_gradients`.

    NaN values (a degenerate spectrum, e.g. an all-zero feature map) become -inf, the
    reference's worst score.
    """
    entropies = jnp.stack([expressivity_per_block(f) for f in outputs])
    expressivity = jnp.sum(entropies)
    if entropies.shape[0] > 1:
        progressivity = jnp.min(entropies[1:] - entropies[:-1])
        trainability = jnp.mean(
            jnp.stack([trainability_per_block(gi, go) for gi, go in zip(g_ins, g_outs)])
        )
    else:
        progressivity = trainability = jnp.asarray(jnp.nan, jnp.float32)
    out = jnp.stack([expressivity, progressivity, trainability])
    return jnp.where(jnp.isnan(out), -jnp.inf, out)


def _component_proxy(index: int):
    name = COMPONENTS[index]

    def factory(
        *,
        init: str = "kaiming_normal",
        gaussian_input: bool = True,
        blocks_pattern: str = blocks.BLOCKS,
    ) -> types.ProxyFn:
        if init not in INITS:
            raise errors.ConfigError(f"unknown AZ-NAS init {init!r}; expected one of {INITS}")

        def all_components(network, params, batch, key):
            key_init, key_x, key_g = jax.random.split(key, 3)
            if init == "kaiming_normal":
                params = gradients.reinitialize(params, key_init, "kaiming_normal")
            x = batch["x"]
            if gaussian_input:
                x = jax.random.normal(key_x, x.shape, jnp.float32)
            return components(network, params, x, key_g, blocks_pattern)

        def proxy_fn(network, params, batch, key):
            # Stacked (`base.stack`), the three components of one setting are one
            # computation: the forward and backward passes dominate, not the statistics.
            setting = f"az_components({init}, {gaussian_input}, {blocks_pattern})"
            values = base.shared(setting, all_components, network, params, batch, key)
            return values[index]

        proxy_fn.__name__ = f"az_{name}_fn"
        return proxy_fn

    factory.__name__ = f"az_{name}"
    factory.__doc__ = f"""Returns the AZ-NAS {name} proxy (see the module docstring).

    Args:
      init: "kaiming_normal" re-draws the parameters from the proxy key (the reference);
        "network" scores them as given.
      gaussian_input: replace the batch by N(0, 1) images of its shape (the reference's
        NB201 notebook); False uses the batch's images.
      blocks_pattern: regular expression naming the blocks (`blocks.block_outputs`).
    """
    return factory


az_expressivity = _component_proxy(0)
az_progressivity = _component_proxy(1)
az_trainability = _component_proxy(2)


def rank_aggregate(scores) -> jax.Array:
    """AZ-NAS's combination: sum_k log(rank_k / N) over the columns of f32[P, M].

    Ranks are 1 (worst) .. N (best) per column (ties get their average rank, -inf is the
    worst, NaN rows stay NaN), so the best architecture in every component scores 0.

    Args:
      scores: f32[P, M], one column per component (e.g. expressivity, progressivity,
        trainability, FLOPs), higher is better in each.

    Returns:
      f32[P], higher is better.
    """
    scores = jnp.asarray(scores, jnp.float32)
    if scores.ndim != 2:
        raise errors.ShapeError(f"rank_aggregate takes f32[P, M], got shape {scores.shape}")
    failed = jnp.any(jnp.isnan(scores), axis=1)
    n = scores.shape[0]

    def average_ranks(column):
        ordered = jnp.sort(column)
        below = jnp.searchsorted(ordered, column, side="left")
        upto = jnp.searchsorted(ordered, column, side="right")
        return (below + upto + 1).astype(jnp.float32) / 2.0

    ranks = jax.vmap(average_ranks, in_axes=1, out_axes=1)(
        jnp.where(jnp.isnan(scores), -jnp.inf, scores)
    )
    total = jnp.sum(jnp.log(ranks / float(n)), axis=1)
    return jnp.where(failed, jnp.nan, total)
