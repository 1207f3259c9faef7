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

from jaxnas import types
from jaxnas.proxies import base, gradients, layerwise


def layer_fisher(probe: types.LayerProbe, gate_grad: jax.Array) -> jax.Array:
    """sum_k 0.5 * mean_n g_nk^2 * fan_in of one layer, g = dL/d(gate) f32[B, C]: f32[]."""
    delta = 0.5 * jnp.mean(jnp.square(gate_grad), axis=0)
    return probe.weight * probe.fan_in * jnp.sum(delta)


def fisher() -> types.ProxyFn:
    """Returns the fisher proxy (higher is better; NaN if not finite).

    In a `stack` with a loss-gradient proxy (snip, grad_norm, ...) the gate gradients
    come from the stack's one loss pass (`layerwise.gate_gradients`).

    Raises:
      errors.ConfigError: the network records no layer probes, or some of its conv /
        linear layers record none (a space not instrumented through `jaxnas.spaces.op_layers`).
    """

    def fisher_fn(network, params, batch, key):
        del key
        grads, layers = layerwise.gate_gradients("fisher", network, params, batch)
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

    return base.with_shared_requests(fisher_fn, layerwise.GATE_GRADIENTS)
