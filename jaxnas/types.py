"""Type aliases and protocols shared by the whole library.

Shapes are written as `f32[P, K]`: P architectures, K random initialisations, B images,
D genotype positions, H, W, C image height, width and channels (NHWC).
"""

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

import jax

PyTree = Any
Params = PyTree  # The variables of a network (a Linen variable dict, an NNX state, ...).
PRNGKey = jax.Array
Genotype = jax.Array  # int32[D]: choice genotype[d] at position d.
Population = jax.Array  # int32[P, D]
Batch = Mapping[str, jax.Array]  # {"x": f32[B, H, W, C], "y": int32[B]}
Score = jax.Array  # f32[]: higher is better; NaN means the evaluation failed.


class Tap(NamedTuple):
    """An activation captured inside a network, at the input of a nonlinearity.

    Attributes:
      value: f32[B, ...] the pre-activation (the input of a ReLU or GeLU).
      weight: f32[] or f32[...] broadcastable to `value.shape[1:]`: how many units of the
        network read each element of `value`. 0 marks units that do not exist in the
        architecture (an unselected branch, a masked channel); 2 marks a tensor that feeds
        two ReLUs. Kernel proxies weight every unit by it, so absent units never count.
    """

    value: jax.Array
    weight: jax.Array


Taps = Mapping[str, Tap]


class LayerProbe(NamedTuple):
    """A convolution or linear layer of the network, and the shape of its channel gate.

    Sown by the shared ops (`jaxnas.spaces.op_layers`) when a caller asks for probes; proxies
    that need a per-image, per-channel gradient at every layer output (fisher) read
    these and pass gates of zeros (`Probes.layers`).

    Attributes:
      gate: f32[B, C_out] zeros shaped like the layer's gate: one entry per image and
        output channel.
      weight: f32[] 1 where the layer belongs to the architecture, 0 where it does not
        (an unselected op of a data-driven network).
      fan_in: f32[] inputs read per output unit: k_h * k_w * C_in / groups for a
        convolution, in_features for a linear layer (the valid inputs only, where a
        data-driven network masks channels).
    """

    gate: jax.Array
    weight: jax.Array
    fan_in: jax.Array


class NormProbe(NamedTuple):
    """The batch statistics of a BatchNorm layer (train mode).

    Attributes:
      variance: f32[C] the biased per-channel variance used to normalise.
      count: f32[] elements averaged per channel (B * H * W), so that the unbiased
        variance PyTorch puts into running statistics is `variance * count / (count - 1)`.
      weight: f32[] 1 where the layer belongs to the architecture, else 0; or f32[C],
        1 for the valid channels of a layer whose width a data-driven network masks.
    """

    variance: jax.Array
    count: jax.Array
    weight: jax.Array


class Probes(NamedTuple):
    """Everything a network records on request (`apply(..., probes=True)`), by name.

    Names are module paths such as `"stage0_cell0/edge_1/nor_conv_3x3/conv/out"`; the
    data-driven and the materialised network of an architecture record the same names
    for the layers the architecture has.

    Attributes:
      layers: conv / linear layers (`LayerProbe`). Passing a collection `"gates"` of
        zeros shaped like their `gate` fields, with the same names (nested by module
        path, e.g. from `flax.traverse_util.unflatten_dict(..., sep="/")`), inside
        `params` multiplies each layer output a by `1 + gate`, so the gradient of a loss
        L with respect to a gate is sum over positions of a * dL/da, per image and
        channel (the channel saliency of Fisher pruning).
      norms: BatchNorm batch statistics (`NormProbe`).
      features: named feature maps, e.g. `"pre_gap"`: f32[B, H, W, C], the input of the
        final global average pooling.
      costs: f32[] FLOPs per image of each op, counted with the conventions of
        `jaxnas.spaces.flop_rules` (those of tensorwatch, as NAS-Bench-Suite-Zero used);
        0 for ops outside the architecture.
    """

    layers: Mapping[str, LayerProbe]
    norms: Mapping[str, NormProbe]
    features: Mapping[str, jax.Array]
    costs: Mapping[str, jax.Array]


class InitFn(Protocol):
    def __call__(self, key: PRNGKey, x: jax.Array) -> Params:
        """Returns fresh random variables for inputs shaped like `x` (f32[B, H, W, C])."""


class ApplyFn(Protocol):
    def __call__(
        self, params: Params, x: jax.Array, *, taps: bool = False, probes: bool = False
    ) -> Any:
        """Returns logits f32[B, num_classes], or `(logits, taps)` when `taps` is True,
        `(logits, probes)` when `probes` is True, `(logits, taps, probes)` with both.

        Recording probes is optional: a network that cannot (e.g. `from_nnx`) raises
        when asked, and only the proxies that need them (fisher, zen, flops) ask.

        BatchNorm layers normalise with the statistics of `x` (train mode), as every
        zero-cost proxy reference does; running statistics are never updated.
        """


class ProxyFn(Protocol):
    def __call__(self, network: Any, params: Params, batch: Batch, key: PRNGKey) -> Score:
        """Scores one initialised network: f32[], higher is better, NaN = failed."""
