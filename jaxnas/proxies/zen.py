"""zen: Zen-score, the log expected output change under a small input perturbation.

Lin et al., "Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition", ICCV
2021 (idstcv/ZenNAS `ZeroShotProxy/compute_zen_score.py`), in the NAS-Bench-Suite-Zero
version (NASLib `measures/zen.py`), which this follows:

  * re-initialise: conv and linear weights N(0, 1), linear biases 0, BatchNorm
    gamma = 1, beta = 0 (`gaussian_init`, drawn from the proxy's key);
  * x, e ~ N(0, I) shaped like the batch (the images themselves are not used);
  * f = the feature map entering the final global average pooling (`Probes.features
    ["pre_gap"]`), for x and for x + 0.01 e, BatchNorm in train mode;
  * Delta = mean over images of sum_{c,h,w} |f(x) - f(x + 0.01 e)|;
  * score = log Delta + sum over BatchNorm layers of log sqrt(mean_c running_var_c).

NASLib reads `running_var` after the two forward passes of a fresh network in train
mode: running_var = 0.9^2 * 1 + 0.9 * 0.1 * v_1 + 0.1 * v_2 with v the unbiased batch
variance of each pass (momentum 0.1, PyTorch's update). The ZenNAS original instead
relies on its own BN setup; this is the Suite-Zero variant. Delta = 0 (the output does
not depend on the input) gives -inf, the worst valid score.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors, types
from jaxnas.proxies import gradients, layerwise

MIXUP_GAMMA = 1e-2
BN_MOMENTUM = 0.1


def gaussian_init(key: types.PRNGKey, params: types.Params) -> types.Params:
    """Zen's re-initialisation of a (nested dict) parameter tree, from one RNG call.

    Leaves named `kernel` ~ N(0, 1); `bias` next to a `kernel` = 0; BatchNorm `scale` = 1
    and `bias` = 0. Other collections (e.g. running statistics) are kept.
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    names = [tuple(getattr(k, "key", str(k)) for k in path) for path, _ in flat]
    sizes = [int(np.prod(v.shape)) if n[-1] == "kernel" else 0 for n, (_, v) in zip(names, flat)]
    noise = jax.random.normal(key, (max(sum(sizes), 1),), jnp.float32)
    offsets = np.cumsum([0] + sizes)
    leaves = []
    for i, (name, (_, value)) in enumerate(zip(names, flat)):
        if name[-1] == "kernel":
            leaves.append(noise[offsets[i] : offsets[i + 1]].reshape(value.shape))
        elif name[-1] == "scale":
            leaves.append(jnp.ones_like(value))
        elif name[-1] == "bias":
            leaves.append(jnp.zeros_like(value))
        else:
            leaves.append(value)
    return jax.tree.unflatten(treedef, leaves)


def running_variance(probe_1: types.NormProbe, probe_2: types.NormProbe) -> jax.Array:
    """PyTorch's running_var after two train-mode passes from the initial 1: f32[C]."""
    m = BN_MOMENTUM

    def unbiased(p):
        return p.variance * p.count / jnp.maximum(p.count - 1.0, 1.0)

    return (1 - m) ** 2 + (1 - m) * m * unbiased(probe_1) + m * unbiased(probe_2)


def zen_score(network, params: types.Params, x: jax.Array, x_mixed: jax.Array) -> jax.Array:
    """Zen-score of already re-initialised params for inputs x and x + gamma * e: f32[]."""
    _, first = network.apply(params, x, probes=True)
    _, second = network.apply(params, x_mixed, probes=True)
    if "pre_gap" not in first.features:
        raise errors.ConfigError(
            "zen: the network records no 'pre_gap' feature map (the input of its final "
            "global pooling); build it with jaxnas.spaces.op_layers.global_pool_features"
        )
    layerwise.require_probes("zen", params, first.norms, "scale", "stats")
    diff = jnp.abs(first.features["pre_gap"] - second.features["pre_gap"])
    delta = jnp.mean(jnp.sum(diff.reshape(diff.shape[0], -1), axis=1))
    names = sorted(first.norms)
    if not names:
        return jnp.log(delta)

    def bn_term(variance_1, count_1, variance_2, count_2, weight):
        probe_1 = types.NormProbe(variance_1, count_1, weight)
        probe_2 = types.NormProbe(variance_2, count_2, weight)
        return _log_std(running_variance(probe_1, probe_2), weight)

    def fields(probes):
        norms = [probes.norms[name] for name in names]
        return [jnp.asarray(p.variance, jnp.float32) for p in norms], [
            jnp.asarray(p.count, jnp.float32) for p in norms
        ]

    first_fields = fields(first)
    # `_log_std` broadcasts a layer's weight per channel; doing it here lets the
    # BatchNorm layers of one width be reduced together (`gradients.leaf_values`): a
    # DARTS network has hundreds, each its own small kernel otherwise.
    weights = [
        jnp.broadcast_to(jnp.asarray(first.norms[name].weight, jnp.float32), v.shape)
        for name, v in zip(names, first_fields[0])
    ]
    bn_terms = gradients.leaf_values(bn_term, *first_fields, *fields(second), weights)
    return jnp.log(delta) + jnp.sum(bn_terms)


def _log_std(variance: jax.Array, weight: jax.Array) -> jax.Array:
    """log sqrt(mean running variance) of one BatchNorm, over its weighted channels: f32[].

    `weight` is 0/1 for the whole layer (in or out of the architecture) or per channel
    f32[C] (the valid channels of a masked data-driven layer); 0 for an absent layer.
    """
    w = jnp.broadcast_to(weight, variance.shape)
    present = jnp.max(w) > 0
    mean = jnp.sum(w * variance) / jnp.maximum(jnp.sum(w), 1.0)
    return jnp.where(present, jnp.log(jnp.sqrt(jnp.where(present, mean, 1.0))), 0.0)


def zen(*, mixup_gamma: float = MIXUP_GAMMA) -> types.ProxyFn:
    """Returns the zen proxy (higher is better; -inf for a constant output; NaN if failed).

    Args:
      mixup_gamma: scale of the input perturbation.
    """

    def zen_fn(network, params, batch, key):
        key_init, key_x, key_e = jax.random.split(key, 3)
        shape = batch["x"].shape
        x = jax.random.normal(key_x, shape, jnp.float32)
        x_mixed = x + mixup_gamma * jax.random.normal(key_e, shape, jnp.float32)
        score = zen_score(network, gaussian_init(key_init, params), x, x_mixed)
        return jnp.where(jnp.isnan(score) | (score == math.inf), jnp.nan, score)

    return zen_fn
