"""The `Network(init, apply)` contract and adapters from Flax Linen and NNX models.

A `Network` is a pair of pure functions in the stax / neural-tangents convention:

  params = network.init(key, x)                  # x: f32[B, H, W, C]
  logits = network.apply(params, x)               # f32[B, num_classes]
  logits, taps = network.apply(params, x, taps=True)

Proxies only ever see this pair, so any model can be scored: a built-in search space, a
Linen module (`from_linen`) or an NNX model factory (`from_nnx`). Activations for kernel
proxies come from `sow`-ed `Tap`s in the collection `"taps"`, never from hooks.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnas import types

TAPS = "taps"


class Network(NamedTuple):
    """A network as a pair of pure functions; see the module docstring.

    Attributes:
      init: `(key, x) -> params`.
      apply: `(params, x, *, taps=False) -> logits | (logits, taps)`.
      param_mask: optional `(params) -> mask`, a pytree with the structure of `params`
        whose leaves are f32 arrays broadcastable to the parameter: 1 where the
        parameter belongs to the architecture, 0 where it does not (an unselected op of a
        supernet, a masked channel). None means every parameter belongs. Parameter-based
        proxies (parameter counts, norms) multiply by it, so unused branches of a
        data-driven network never count.
    """

    init: types.InitFn
    apply: types.ApplyFn
    param_mask: Callable[[Any], Any] | None = None


def masked_params(network: Network, params: Any) -> Any:
    """`params` with every parameter outside the architecture set to zero."""
    if network.param_mask is None:
        return params
    return jax.tree.map(lambda p, m: p * m, params, network.param_mask(params))


def collect_taps(tree: Mapping[str, Any], prefix: str = "") -> dict[str, types.Tap]:
    """Flattens a (nested) sown tap collection into `{"a/b/name": Tap}`.

    Values sown as plain arrays become taps of weight 1; Linen's default `sow` tuples
    are unpacked (`name/0`, `name/1`, ... when a name was sown several times).
    """
    taps = {}
    for name, value in tree.items():
        path = f"{prefix}{name}"
        if isinstance(value, types.Tap):
            taps[path] = value
        elif isinstance(value, Mapping):
            taps.update(collect_taps(value, f"{path}/"))
        elif isinstance(value, tuple):
            if len(value) == 1:
                taps[path] = _as_tap(value[0])
            else:
                for i, v in enumerate(value):
                    taps[f"{path}/{i}"] = _as_tap(v)
        else:
            taps[path] = _as_tap(value)
    return taps


def _as_tap(value) -> types.Tap:
    if isinstance(value, types.Tap):
        return value
    return types.Tap(value, jnp.ones((), jnp.float32))


def sow_tap(module, name: str, value: jax.Array, weight: jax.Array | float = 1.0) -> None:
    """Records `value` (a pre-activation) as a tap of a Linen module.

    A no-op unless the caller asked for taps (`apply(..., taps=True)`).
    """
    tap = types.Tap(value, jnp.asarray(weight, jnp.float32))
    module.sow(TAPS, name, tap, init_fn=lambda: None, reduce_fn=lambda _, new: new)


def from_linen(
    module,
    *args,
    mutable: tuple[str, ...] = ("batch_stats",),
    **kwargs,
) -> Network:
    """Wraps a Linen module called as `module(x, *args, **kwargs)`.

    Args:
      module: a `flax.linen.Module`. Its BatchNorm layers should use batch statistics
        (e.g. pass `train=True` in `kwargs`), as the proxy references do.
      *args: extra positional call arguments after `x` (e.g. a traced genotype).
      mutable: collections the module may write during `apply` (running BatchNorm
        statistics); their new values are discarded.
      **kwargs: extra keyword call arguments.

    Returns:
      A `Network`; `init` returns every variable collection except the taps.
    """

    def init(key, x):
        variables = module.init(key, x, *args, **kwargs)
        return {name: value for name, value in variables.items() if name != TAPS}

    def apply(params, x, *, taps=False):
        collections = [name for name in mutable if name in params]
        if taps:
            collections.append(TAPS)
        if not collections:
            return module.apply(params, x, *args, **kwargs)
        out, state = module.apply(params, x, *args, mutable=collections, **kwargs)
        if taps:
            return out, collect_taps(state.get(TAPS, {}))
        return out

    return Network(init, apply)


def from_nnx(factory: Callable[[Any], Any]) -> Network:
    """Wraps an NNX model factory `factory(rngs) -> nnx.Module`.

    Only `nnx.split` / `nnx.merge` are used, so the params are a plain pytree (an
    `nnx.State`) that vmaps and jits like any other. Taps are read from values sown with
    `self.sow(nnx.Intermediate, name, jaxnas.Tap(...) or array)`. In-place updates that
    the model makes during the call (BatchNorm running statistics) are discarded.

    Args:
      factory: builds the model from an `nnx.Rngs`; it must build the same structure for
        every key.

    Returns:
      A `Network` whose params are the model's `nnx.State`.
    """
    from flax import nnx

    graphdef, _ = nnx.split(nnx.eval_shape(lambda: factory(nnx.Rngs(0))))

    def init(key, x):
        del x
        _, state = nnx.split(factory(nnx.Rngs(key)))
        return state

    def apply(params, x, *, taps=False):
        model = nnx.merge(graphdef, params)
        # Run under `capture` either way: NNX deprecates `sow` outside of it.
        out, sown = nnx.capture(model, nnx.Intermediate)(x)
        if not taps:
            return out
        return out, collect_taps(nnx.to_pure_dict(sown))

    return Network(init, apply)
