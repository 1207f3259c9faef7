"""fisher: channel saliency from activations times their gradients.

Theis et al., "Faster gaze prediction with dense networks and Fisher pruning", 2018;
Turner et al., "BlockSwap", ICLR 2020; as a zero-cost proxy in Abdelfattah et al.,
ICLR 2021 (zero-cost-nas `measures/fisher.py`, copied by NASLib). For every conv /
linear layer with output a (before BatchNorm):

  g_nk = sum over spatial positions of a * dL/da   (image n, channel k)
  Delta_k = 0.5 * mean_n g_nk^2

and the reference broadcasts Delta_k over the channel's weights before summing, so
score = sum_layers sum_k Delta_k * fan_in (k_h k_w C_in for a conv, in_features for a
linear layer). L is the mean cross-entropy of one batch, BatchNorm in train mode.

g_nk comes straight from the network's layer probes (`Probes.layers`): every layer
output is multiplied by 1 + gate with a zero-valued gate f32[B, C], and dL/d(gate_nk) is
sum over positions of a * dL/da, in one backward pass, with no hooks and no stored
activations. Only layers of the architecture count (probe weight 1).
"""

import jax
import jax.numpy as jnp
from flax import traverse_util

from jaxnas import errors, losses, types
from jaxnas.network import GATES
from jaxnas.proxies import gradients, layerwise


def layer_fisher(probe: types.LayerProbe, gate_grad: jax.Array) -> jax.Array:
    """sum_k 0.5 * mean_n g_nk^2 * fan_in of one layer, g = dL/d(gate) f32[B, C]: f32[]."""
    delta = 0.5 * jnp.mean(jnp.square(gate_grad), axis=0)
    return probe.weight * probe.fan_in * jnp.sum(delta)


def fisher() -> types.ProxyFn:
    """Returns the fisher proxy (higher is better; NaN if not finite).

    Raises:
      errors.ConfigError: the network records no layer probes, or some of its conv /
        linear layers record none (a space not instrumented through `jaxnas.spaces.op_layers`).
    """

    def fisher_fn(network, params, batch, key):
        del key
        if "y" not in batch:
            raise errors.ShapeError("fisher needs labels: batch['y'] int32[B]")
        x, y = batch["x"], batch["y"]
        shapes = jax.eval_shape(lambda p: network.apply(p, x, probes=True)[1].layers, params)
        if not shapes:
            raise errors.ConfigError(
                "fisher: the network records no conv/linear layer probes; build it from "
                "jaxnas.spaces.op_layers (Conv, ConvBN, Dense)"
            )
        layerwise.require_probes("fisher", params, shapes, layerwise.WEIGHT_LEAF, "out")
        zeros = {name: jnp.zeros(s.gate.shape, s.gate.dtype) for name, s in shapes.items()}

        def loss(flat_gates):
            variables = {**params, GATES: traverse_util.unflatten_dict(flat_gates, sep="/")}
            logits, probes = network.apply(variables, x, probes=True)
            return losses.cross_entropy(logits, y), probes.layers

        grads, layers = jax.grad(loss, has_aux=True)(zeros)
        names = sorted(layers)

        def term(gate_grad, weight, fan_in):
            return layer_fisher(types.LayerProbe(None, weight, fan_in), gate_grad)

        # Layers of one gate shape are reduced together (`gradients.leaf_values`).
        score = jnp.sum(
            gradients.leaf_values(
                term,
                [grads[name] for name in names],
                *(
                    [jnp.asarray(getattr(layers[name], f), jnp.float32) for name in names]
                    for f in ("weight", "fan_in")
                ),
            )
        )
        return layerwise.finite_or_nan(score)

    return fisher_fn
