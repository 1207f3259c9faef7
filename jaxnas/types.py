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


class InitFn(Protocol):
    def __call__(self, key: PRNGKey, x: jax.Array) -> Params:
        """Returns fresh random variables for inputs shaped like `x` (f32[B, H, W, C])."""


class ApplyFn(Protocol):
    def __call__(self, params: Params, x: jax.Array, *, taps: bool = False) -> Any:
        """Returns logits f32[B, num_classes], or `(logits, taps)` when `taps` is True.

        BatchNorm layers normalise with the statistics of `x` (train mode), as every
        zero-cost proxy reference does; running statistics are never updated.
        """


class ProxyFn(Protocol):
    def __call__(self, network: Any, params: Params, batch: Batch, key: PRNGKey) -> Score:
        """Scores one initialised network: f32[], higher is better, NaN = failed."""
