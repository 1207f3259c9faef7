"""The `Network(init, apply)` contract and adapters from Flax Linen and NNX models.

A `Network` is a pair of pure functions in the stax / neural-tangents convention:

  params = initial_params(network, key, x)       # x: f32[B, H, W, C]
  logits = network.apply(params, x)               # f32[B, num_classes]
  logits, taps = network.apply(params, x, taps=True)
  logits, probes = network.apply(params, x, probes=True)

Proxies only ever see this pair, so any model can be scored: a built-in search space, a
Linen module (`from_linen`) or an NNX model factory (`from_nnx`). Activations for kernel
proxies come from `sow`-ed `Tap`s in the collection `"taps"`, never from hooks.

Probes (`types.Probes`) are the second, optional instrumentation: conv / linear layers
(with zero-valued channel gate inputs that give their gradients), BatchNorm statistics,
named feature maps and per-op FLOPs, sown by the shared ops of `jaxnas.spaces.op_layers` into
the collections `PROBE_COLLECTIONS`. Like taps they cost nothing unless requested.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnas import errors, types

TAPS = "taps"
LAYERS = "layers"
NORMS = "norms"
FEATURES = "features"
COSTS = "costs"
PROBE_COLLECTIONS = (LAYERS, NORMS, FEATURES, COSTS)
GATES = "gates"  # an input collection: zeros that scale probed layer outputs by (1 + gate)


class Network(NamedTuple):
    """A network as a pair of pure functions; see the module docstring.

    Attributes:
      init: `(key, x) -> params`.
      apply: `(params, x, *, taps=False, probes=False) -> logits | (logits, taps) |
        (logits, probes) | (logits, taps, probes)`.
      param_mask: optional `(params) -> mask`, a pytree with the structure of `params`
        whose leaves are f32 arrays broadcastable to the parameter: 1 where the
        parameter belongs to the architecture, 0 where it does not (an unselected op of a
        supernet, a masked channel). None means every parameter belongs. Parameter-based
        proxies (parameter counts, norms) multiply by it, so unused branches of a
        data-driven network never count.
      rescale_init: optional `(params) -> params`, mapping a draw of `init` to this
        architecture's initial parameters. A data-driven network draws every layer at
        the space's maximum width and its `init` does not depend on the genotype, so one
        draw serves a whole population (`score_population`); where the initialisation's
        scale depends on a layer's fan-in or fan-out (PyTorch's default, Kaiming), this
        rescales the selected slices to the architecture's actual widths, so that they
        have the materialised network's initial distribution. None: the draw needs no
        rescaling. `initial_params` applies both.
    """

    init: types.InitFn
    apply: types.ApplyFn
    param_mask: Callable[[Any], Any] | None = None
    rescale_init: Callable[[Any], Any] | None = None


def initial_params(network: Network, key: jax.Array, x: jax.Array) -> Any:
    """The architecture's initial parameters: `network.init(key, x)`, then `rescale_init`."""
    return rescaled_init(network, network.init(key, x))


def rescaled_init(network: Network, params: Any) -> Any:
    """A draw of `network.init` mapped to the architecture's own initial parameters."""
    if network.rescale_init is None:
        return params
    return network.rescale_init(params)


def masked_params(network: Network, params: Any) -> Any:
    """`params` with every parameter outside the architecture set to zero."""
    if network.param_mask is None:
        return params
    return jax.tree.map(lambda p, m: p * m, params, network.param_mask(params))


def flatten_sown(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens a nested sown collection into `{"a/b/name": value}` (values kept as is)."""
    out = {}
    for name, value in tree.items():
        path = f"{prefix}{name}"
        if isinstance(value, Mapping):
            out.update(flatten_sown(value, f"{path}/"))
        else:
            out[path] = value
    return out


def collect_probes(state: Mapping[str, Any]) -> types.Probes:
    """The `Probes` in the sown collections `state` (missing collections are empty)."""
    return types.Probes(
        *(flatten_sown(state.get(collection, {})) for collection in PROBE_COLLECTIONS)
    )


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


def _sow(module, collection: str, name: str, value) -> None:
    module.sow(collection, name, value, init_fn=lambda: None, reduce_fn=lambda _, new: new)


def gate(module, name: str = "out") -> jax.Array | None:
    """The zero-valued channel gate `name` of a Linen module, if the caller passed one.

    A caller that wants dL/d(gate) of a probed layer, sum over positions of a * dL/da per
    image and output channel, passes a `"gates"` collection of zeros f32[B, C_out] in
    `params`; the layer multiplies its output by `1 + gate`. Otherwise None.
    """
    if module.has_variable(GATES, name):
        return module.get_variable(GATES, name)
    return None


def apply_gate(value: jax.Array, gate_value: jax.Array | None) -> jax.Array:
    """`value * (1 + gate)`, the gate f32[B, C] broadcast over positions; `value` if None."""
    if gate_value is None:
        return value
    shape = (value.shape[0],) + (1,) * (value.ndim - 2) + (value.shape[-1],)
    return value + value * jnp.reshape(gate_value, shape)


def probing(module, *gates) -> bool:
    """Whether a Linen module's caller asked for probes or passed gates (then ops computed
    inside `lax.switch` branches must take the gates and return what probes record)."""
    return module.is_mutable_collection(LAYERS) or any(g is not None for g in gates)


def probe_layer(
    module,
    value: jax.Array,
    fan_in: jax.Array | float,
    weight: jax.Array | float = 1.0,
    name: str = "out",
    add_gate: bool = True,
) -> jax.Array:
    """Marks `value` as the output of a conv / linear layer held by a Linen module.

    Applies the module's gate (if passed; see `gate`) and, when probes are requested,
    sows a `LayerProbe`. A no-op otherwise.

    Args:
      module: the Linen module that owns the layer's weights.
      value: f32[B, ..., C_out] the layer output, before any normalisation.
      fan_in: inputs read per output unit (k_h * k_w * C_in / groups, or in_features).
      weight: 1 if the layer belongs to the architecture, 0 if not.
      name: probe name inside the module's scope.
      add_gate: False when the caller already applied it (inside a `lax.switch` branch,
        where the module cannot be called).

    Returns:
      `value` times `1 + gate`, or `value`.
    """
    if add_gate:
        value = apply_gate(value, gate(module, name))
    record_layer(module, value.shape, fan_in, weight, name)
    return value


def record_layer(
    module,
    out_shape,
    fan_in: jax.Array | float,
    weight: jax.Array | float = 1.0,
    name: str = "out",
) -> None:
    """Sows the `LayerProbe` of a conv / linear layer whose output has shape `out_shape`
    (computed inside a `lax.switch` branch that applied the gate); see `probe_layer`."""
    probe = types.LayerProbe(
        jnp.zeros((out_shape[0], out_shape[-1]), jnp.float32),
        jnp.asarray(weight, jnp.float32),
        jnp.asarray(fan_in, jnp.float32),
    )
    _sow(module, LAYERS, name, probe)


def probe_norm(
    module,
    variance: jax.Array,
    count: jax.Array | float,
    weight: jax.Array | float = 1.0,
    name: str = "stats",
) -> None:
    """Sows a BatchNorm layer's batch statistics (`NormProbe`) when probes are requested."""
    probe = types.NormProbe(
        variance, jnp.asarray(count, jnp.float32), jnp.asarray(weight, jnp.float32)
    )
    _sow(module, NORMS, name, probe)


def sow_feature(module, name: str, value: jax.Array) -> None:
    """Sows a named feature map (e.g. `"pre_gap"`) when probes are requested."""
    _sow(module, FEATURES, name, value)


def sow_cost(module, name: str, flops: jax.Array | float) -> None:
    """Sows the FLOPs per image of an op (f32[]) when probes are requested."""
    _sow(module, COSTS, name, jnp.asarray(flops, jnp.float32))


def from_linen(
    module,
    *args,
    mutable: tuple[str, ...] = ("batch_stats",),
    stacks=None,
    **kwargs,
) -> Network:
    """Wraps a Linen module called as `module(x, *args, **kwargs)`.

    Args:
      module: a `flax.linen.Module`. Its BatchNorm layers should use batch statistics
        (e.g. pass `train=True` in `kwargs`), as the proxy references do.
      *args: extra positional call arguments after `x` (e.g. a traced genotype).
      mutable: collections the module may write during `apply` (running BatchNorm
        statistics); their new values are discarded.
      stacks: optional `jaxnas.spaces.stacking.Stacks` of a module that scans its
        repeated cells: params, gates, taps and probes are then seen per cell.
      **kwargs: extra keyword call arguments.

    Returns:
      A `Network`; `init` returns every variable collection except the sown taps and
      probes.
    """

    sown = (TAPS, *PROBE_COLLECTIONS)

    def init(key, x):
        variables = module.init(key, x, *args, **kwargs)
        if stacks is not None:
            variables = stacks.unstack(variables)
        return {name: value for name, value in variables.items() if name not in sown}

    def apply(params, x, *, taps=False, probes=False):
        collections = [name for name in mutable if name in params]
        if taps:
            collections.append(TAPS)
        if probes:
            collections.extend(PROBE_COLLECTIONS)
        if stacks is not None:
            params = stacks.stack(params)
        if not collections:
            return module.apply(params, x, *args, **kwargs)
        out, state = module.apply(params, x, *args, mutable=collections, **kwargs)
        if stacks is not None:
            state = stacks.unstack(state, keep_order=True)
        extra = []
        if taps:
            extra.append(collect_taps(state.get(TAPS, {})))
        if probes:
            extra.append(collect_probes(state))
        return (out, *extra) if extra else out

    return Network(init, apply)


NNX_COLLECTIONS = ("params", "batch_stats", "state")  # nnx.Param, nnx.BatchStat, others


def from_nnx(factory: Callable[[Any], Any]) -> Network:
    """Wraps an NNX model factory `factory(rngs) -> nnx.Module`.

    The params are the model's state as plain nested dicts, split into Linen's
    collections: `{"params": nnx.Param leaves, "batch_stats": nnx.BatchStat leaves,
    "state": any other variables}` (empty collections omitted). Every proxy then sees
    the same tree as for the model written in Linen: leaves named `kernel`, `scale`,
    `bias` under `"params"`. (An `nnx.State` itself would not do: its leaves sit under
    each Variable's `.value`, so a path ends in `value`, never `kernel`, and the
    proxies that select weights by name found none.) Taps are read from values sown
    with `self.sow(nnx.Intermediate, name, jaxnas.Tap(...) or array)`. In-place updates
    that the model makes during the call (BatchNorm running statistics) are discarded.

    Args:
      factory: builds the model from an `nnx.Rngs`; it must build the same structure for
        every key.

    Returns:
      A `Network` whose params are `{collection: nested dict of arrays}`.
    """
    from flax import nnx

    filters = (nnx.Param, nnx.BatchStat, ...)
    graphdef, *templates = nnx.split(nnx.eval_shape(lambda: factory(nnx.Rngs(0))), *filters)

    def init(key, x):
        del x
        _, *states = nnx.split(factory(nnx.Rngs(key)), *filters)
        return {
            name: nnx.to_pure_dict(state)
            for name, state in zip(NNX_COLLECTIONS, states)
            if jax.tree.leaves(state)
        }

    def apply(params, x, *, taps=False, probes=False):
        if probes:
            raise errors.ConfigError(
                "NNX networks do not record probes (conv/linear outputs, BatchNorm "
                "statistics, FLOPs); proxies that need them (fisher, zen, flops) take "
                "networks built from jaxnas.spaces.op_layers"
            )
        states = []
        for name, template in zip(NNX_COLLECTIONS, templates):
            state = jax.tree.map(lambda v: v, template)  # a fresh copy to fill in
            if name in params:
                nnx.replace_by_pure_dict(state, params[name])
            states.append(state)
        model = nnx.merge(graphdef, *states)
        # Run under `capture` either way: NNX deprecates `sow` outside of it.
        out, sown = nnx.capture(model, nnx.Intermediate)(x)
        if not taps:
            return out
        return out, collect_taps(nnx.to_pure_dict(sown))

    return Network(init, apply)
