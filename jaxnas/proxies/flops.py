"""flops: FLOPs of one forward pass of one image, in millions.

A baseline of NAS-Bench-Suite-Zero (NASLib `get_model_stats(...).Flops / 1e6`, through
tensorwatch, with a batch of one image of the dataset's size, 32x32 for CIFAR). Counted
with tensorwatch's per-op conventions, implemented by the shared ops
(`jaxnas.spaces.flop_rules`): conv / linear multiply-accumulates (no biases), BatchNorm 2 per
element, ReLU 1 per element, k x k pooling k^2 per output element, global average
pooling (H + 1)(W + 1) per channel, branch additions 0. Ops outside the architecture
count 0. The images' content does not matter, only their shape.
"""

import jax
import jax.numpy as jnp

from jaxnas import errors, types
from jaxnas.proxies import layerwise


def count_flops(network, params: types.Params, x: jax.Array) -> jax.Array:
    """FLOPs per image of the architecture on inputs shaped like `x`: f32[]."""
    _, probes = network.apply(params, x[:1], probes=True)
    if not probes.costs:
        raise errors.ConfigError(
            "flops: the network records no op costs; build it from jaxnas.spaces.op_layers"
        )
    # Conv / linear layers and BatchNorms must all count (a partly instrumented space).
    for leaf in (layerwise.WEIGHT_LEAF, "scale"):
        layerwise.require_probes("flops", params, probes.costs, leaf, "flops")
    return jnp.sum(jnp.stack([probes.costs[name] for name in sorted(probes.costs)]))


def flops() -> types.ProxyFn:
    """Returns the flops proxy: MFLOPs per image (higher is better)."""

    def flops_fn(network, params, batch, key):
        del key
        return count_flops(network, params, batch["x"]) / 1e6

    return flops_fn
