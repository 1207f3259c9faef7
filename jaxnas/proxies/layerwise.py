"""Per-layer building blocks of the gradient-based proxies (zero-cost-nas / NASLib family).

Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021 (reference code:
SamsungLabs/zero-cost-nas, `foresight/pruners`); Krishnakumar et al., "NAS-Bench-Suite-
Zero", NeurIPS 2022 Datasets and Benchmarks (NASLib `zerocost` branch).

The reference measures are sums over the weights of every `nn.Conv2d` and `nn.Linear`
layer (`get_layer_metric_array`): not their biases, not BatchNorm parameters. Here those
weights are the parameter leaves named `kernel` (the name Flax and the shared ops give
conv and linear weights), restricted to the architecture by `Network.param_mask`, so the
unselected ops of a data-driven network never count.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import traverse_util

from jaxnas import errors, losses, types
from jaxnas.network import GATES, Network
from jaxnas.proxies import base, gradients

WEIGHT_LEAF = "kernel"


def is_weight(path) -> bool:
    """True for a conv / linear weight leaf (its last key is `kernel`)."""
    last = path[-1]
    return getattr(last, "key", getattr(last, "name", None)) == WEIGHT_LEAF


def weight_mask(network: Network, params: types.Params) -> types.PyTree:
    """f32 pytree like `params`: the architecture's mask on weight leaves, 0 elsewhere.

    Leaves are f32 arrays broadcastable to their parameter (scalars for whole layers).
    """
    if not any(is_weight(path) for path, _ in jax.tree_util.tree_leaves_with_path(params)):
        raise errors.ConfigError(gradients.no_weights_message(params, "is_weight"))
    arch = network.param_mask(params) if network.param_mask is not None else None

    def leaf(path, p, m=None):
        if not is_weight(path):
            return jnp.zeros((), jnp.float32)
        return jnp.ones((), jnp.float32) if m is None else jnp.asarray(m, jnp.float32)

    if arch is None:
        return jax.tree_util.tree_map_with_path(leaf, params)
    return jax.tree_util.tree_map_with_path(leaf, params, arch)


def masked(leaf: jax.Array, mask: jax.Array) -> jax.Array:
    """`leaf * mask` with the mask broadcast explicitly (per-layer or per-channel)."""
    return leaf * jnp.broadcast_to(mask, leaf.shape).astype(leaf.dtype)


def layer_sum(fn: Callable[..., jax.Array], mask: types.PyTree, *trees) -> jax.Array:
    """Sum over weight layers of `fn(leaf, ...)` applied to the masked leaves: f32[].

    `fn` maps the (masked) leaves of `trees` at one weight layer to a scalar, e.g.
    `lambda g: jnp.linalg.norm(g)` for a per-layer norm. Leaves with mask 0 everywhere
    contribute `fn` of zeros (0 for every measure here).
    """
    masks = jax.tree.leaves(mask)
    masked_leaves = [[masked(leaf, m) for leaf, m in zip(jax.tree.leaves(t), masks)] for t in trees]
    return jnp.sum(gradients.leaf_values(fn, *masked_leaves))


def sum_of_logs(
    total_fn: Callable[[jax.Array], jax.Array], grads: list[jax.Array], used: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """ZiCo's and L-SWAG's per-layer sum: `sum_l log(total_fn(g_l))` over the layers that
    are `used` (bool[L]) and have a positive total, and whether every gradient is
    finite: `(f32[], bool[])`. Layers of one shape are reduced together
    (`gradients.leaf_values`).
    """

    def layer(g, use):
        total = total_fn(g)
        use = use & (total > 0)
        term = jnp.where(use, jnp.log(jnp.where(use, total, 1.0)), 0.0)
        return jnp.stack([term, jnp.all(jnp.isfinite(g)).astype(term.dtype)])

    terms = gradients.leaf_values(layer, grads, used)
    return jnp.sum(terms[:, 0]), jnp.all(terms[:, 1] > 0)


def frobenius(x: jax.Array) -> jax.Array:
    """‖x‖₂ over all elements (PyTorch's `Tensor.norm()`), with a zero gradient at 0."""
    squared = jnp.sum(jnp.square(x))
    safe = jnp.where(squared > 0, squared, 1.0)
    return jnp.where(squared > 0, jnp.sqrt(safe), 0.0)


def loss_fn(network: Network, batch: types.Batch) -> Callable[[types.Params], jax.Array]:
    """`params -> cross-entropy of the network on the batch` (BatchNorm in train mode)."""
    if "y" not in batch:
        raise errors.ShapeError("this proxy needs labels: batch['y'] int32[B]")

    def loss(params):
        return losses.cross_entropy(network.apply(params, batch["x"]), batch["y"])

    return loss


LOSS_GRADIENTS = "loss_gradients"
INPUT_JACOBIAN = "input_jacobian"
GATE_GRADIENTS = "gate_gradients"
FORWARD_TAPS = "forward_taps"


def loss_gradients(network: Network, params: types.Params, batch: types.Batch) -> types.Params:
    """dL/dparams of the batch's mean cross-entropy, a pytree like `params`.

    Shared (`base.shared`) between the proxies of one `stack`; computed in one pass with
    `input_jacobian`, `gate_gradients` and `forward_taps` when a proxy of the stack
    declared those too (`loss_pass`).
    """
    if _pass_shared(batch):
        return base.shared("loss_pass", loss_pass, network, params, batch)["params"]
    return base.shared(LOSS_GRADIENTS, _loss_gradients, network, params, batch)


def _loss_gradients(network, params, batch):
    return jax.grad(loss_fn(network, batch))(params)


def input_jacobian(network: Network, params: types.Params, batch: types.Batch) -> jax.Array:
    """d(sum of all logits)/dx per image of `batch["x"]` (the reference's
    `y.backward(ones)`): f32[B, D].

    BatchNorm uses batch statistics, so the images are coupled exactly as in the
    reference; the rows are not per-image Jacobians of independent networks. Shared
    (`base.shared`) between the proxies of one `stack`; computed in one pass with
    `loss_gradients` when a proxy of the stack declared that too (`loss_pass`).
    """
    if _pass_shared(batch) and base.requested(INPUT_JACOBIAN):
        return base.shared("loss_pass", loss_pass, network, params, batch)["input"]
    return base.shared(INPUT_JACOBIAN, _input_jacobian, network, params, batch["x"])


def _input_jacobian(network, params, x):
    grad = jax.grad(lambda inputs: jnp.sum(network.apply(params, inputs)))(x)
    return grad.reshape(x.shape[0], -1)


def gate_gradients(
    proxy: str, network: Network, params: types.Params, batch: types.Batch
) -> tuple[dict[str, jax.Array], dict[str, types.LayerProbe]]:
    """dL/d(gate) of every layer probe (f32[B, C] by probe name) and the layer probes.

    The gates are zeros that scale each conv / linear output by (1 + gate), so
    dL/d(gate_nk) is the sum over positions of a * dL/da (fisher). Computed in the
    stack's one loss pass (`loss_pass`) when a proxy of the stack declared
    `LOSS_GRADIENTS` too; otherwise a backward pass to the gates alone.

    Raises:
      errors.ConfigError: the network records no layer probes, or some of its conv /
        linear layers record none; the message names `proxy`.
      errors.ShapeError: the batch has no labels.
    """
    if _pass_shared(batch) and base.requested(GATE_GRADIENTS):
        out = base.shared("loss_pass", loss_pass, network, params, batch)
        return out["gates"], out["layers"]
    if "y" not in batch:
        raise errors.ShapeError(f"{proxy} needs labels: batch['y'] int32[B]")
    return _gate_gradients(proxy, network, params, batch)


def forward_taps(
    network: Network, params: types.Params, batch: types.Batch
) -> tuple[jax.Array, dict[str, types.Tap]]:
    """`network.apply(params, batch["x"], taps=True)`: the logits f32[B, classes] and
    the taps by name.

    Shared (`base.shared`) between the proxies of one `stack`. Taken from the stack's
    one loss pass (`loss_pass`) when the stack's proxies declared `FORWARD_TAPS` and
    `LOSS_GRADIENTS` and the batch has labels: that pass's forward is the same network
    on the same batch (BatchNorm with batch statistics, zero gates where fisher adds
    them), so the taps and logits are the same values, the taps in forward order.
    """
    if _pass_shared(batch) and base.requested(FORWARD_TAPS):
        out = base.shared("loss_pass", loss_pass, network, params, batch)
        return out["logits"], out["taps"]
    return base.shared(FORWARD_TAPS, _forward_taps, network, params, batch["x"])


def _forward_taps(network, params, x):
    return network.apply(params, x, taps=True)


def _gate_gradients(proxy, network, params, batch):
    gates = zero_gates(proxy, network, params, batch["x"])

    def loss(gates):
        logits, layers = _gated_apply(network, params, gates, batch["x"])
        return losses.cross_entropy(logits, batch["y"]), layers

    return jax.grad(loss, has_aux=True)(gates)


def zero_gates(proxy: str, network: Network, params: types.Params, x: jax.Array) -> dict:
    """Zero gates f32[B, C] for every layer probe of the network, by probe name.

    Raises:
      errors.ConfigError: as `gate_gradients`.
    """
    shapes = jax.eval_shape(lambda p: network.apply(p, x, probes=True)[1].layers, params)
    if not shapes:
        raise errors.ConfigError(
            f"{proxy}: the network records no conv/linear layer probes; build it from "
            "jaxnas.spaces.op_layers (Conv, ConvBN, Dense)"
        )
    require_probes(proxy, params, shapes, WEIGHT_LEAF, "out")
    return {name: jnp.zeros(s.gate.shape, s.gate.dtype) for name, s in shapes.items()}


def _gated_apply(network, params, gates, x):
    logits, probes = network.apply(_with_gates(params, gates), x, probes=True)
    return logits, probes.layers


def _with_gates(params, gates):
    """The network's variables with `gates` (by probe name) as its gate collection."""
    return {**params, GATES: traverse_util.unflatten_dict(gates, sep="/")}


def _pass_shared(batch: types.Batch) -> bool:
    # The loss gradient and another declared result of the same forward pass (input
    # Jacobian, gate gradients, taps), and labels for the loss: a proxy that asks for a
    # result without declaring it takes it on its own, never the whole pass plus a copy.
    others = any(base.requested(name) for name in (INPUT_JACOBIAN, GATE_GRADIENTS, FORWARD_TAPS))
    return base.requested(LOSS_GRADIENTS) and others and "y" in batch


def loss_pass(network: Network, params: types.Params, batch: types.Batch) -> dict:
    """The stack's declared gradients from one forward pass, a dict of:

    params: `loss_gradients`;
    input: `input_jacobian`, when declared (a second backward pass, all-ones
      cotangent, sharing the forward pass);
    gates, layers: `gate_gradients`, when declared (the forward pass then runs with
      zero gates and probes; its values, and so the other gradients, are unchanged);
    logits, taps: `forward_taps`, when declared (the forward pass's own).
    """
    x = batch["x"]
    with_gates, with_taps = base.requested(GATE_GRADIENTS), base.requested(FORWARD_TAPS)
    # fisher is the proxy that declares GATE_GRADIENTS: errors name it.
    gates = zero_gates("fisher", network, params, x) if with_gates else {}
    tap_names = []

    def forward(p, g, inputs):
        variables = _with_gates(p, g) if with_gates else p
        out = network.apply(variables, inputs, taps=with_taps, probes=with_gates)
        logits, *extra = out if with_taps or with_gates else (out,)
        aux = {"taps": extra.pop(0)} if with_taps else {}
        tap_names.extend(aux.get("taps", ()))
        if with_gates:
            aux["layers"] = extra.pop(0).layers
        return logits, aux

    logits, backward, aux = jax.vjp(forward, params, gates, x, has_aux=True)
    if with_taps:
        # `vjp` returns its aux dicts with sorted keys; taps keep the forward order
        # (L-SWAG's depth bins read it).
        aux["taps"] = {name: aux["taps"][name] for name in tap_names}
    loss_cotangent = jax.grad(lambda z: losses.cross_entropy(z, gradients.labels(batch)))(logits)
    param_grads, gate_grads, _ = backward(loss_cotangent)
    out = {"params": param_grads, "gates": gate_grads, "logits": logits, **aux}
    if base.requested(INPUT_JACOBIAN):
        out["input"] = backward(jnp.ones_like(logits))[2].reshape(x.shape[0], -1)
    return out


def finite_or_nan(score: jax.Array) -> jax.Array:
    """`score` as f32[], with any non-finite value (overflow, NaN) marked failed (NaN)."""
    score = jnp.asarray(score, jnp.float32)
    return jnp.where(jnp.isfinite(score), score, jnp.nan)


def require_probes(proxy: str, params: types.Params, recorded: dict, leaf: str, probe: str) -> None:
    """Raises unless every module holding a `leaf` parameter recorded the probe `probe`.

    A space that calls the pure op functions (`ops.conv2d`, `ops.conv_bn`, ...) without
    the modules' `record` methods records probes for only some of its layers; a proxy
    summing over probes would then silently score a part of the network.

    Args:
      proxy: the proxy's name, for the message.
      params: `{"params": ...}` of the network.
      recorded: one collection of `Probes` (`{"a/b/out": ...}`), or its shapes.
      leaf: parameter name marking the modules that must record, e.g. `"kernel"`.
      probe: the name each such module records, e.g. `"out"`.

    Raises:
      errors.ConfigError: naming the first uninstrumented module and the count.
    """
    paths = traverse_util.flatten_dict(params.get("params", params), sep="/")
    modules = sorted(p[: -len(leaf) - 1] for p in paths if p.split("/")[-1] == leaf)
    missing = [m for m in modules if f"{m}/{probe}" not in recorded]
    if missing:
        raise errors.ConfigError(
            f"{proxy}: {len(missing)} of {len(modules)} modules with a {leaf!r} parameter "
            f"record no {probe!r} probe (first: {missing[0]}); this space is not "
            "instrumented for it (its ops must record through jaxnas.spaces.op_layers modules)"
        )
