"""Parameter selection, re-initialisation and per-split gradients shared by the proxies.

Parameters are addressed by the names on their pytree path. The built-in spaces (and
Linen / NNX layers in general) call a convolution or linear weight `kernel`, a
normalisation gain `scale` and every additive parameter `bias`, so the PyTorch
references' selections translate as:

  * "weights" (TE-NAS: every parameter whose name contains `weight`): `kernel`, `scale`;
  * Conv2d / Linear weights (ZiCo, L-SWAG): `kernel`.
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core

from jaxnas import errors, losses, types
from jaxnas.network import Network

Predicate = Callable[[tuple[str, ...]], bool]

# The most bytes `leaf_values` copies into one stack of a list's leaves.
MAX_STACK_BYTES = 64 * 2**20


def path_names(path) -> tuple[str, ...]:
    """A pytree key path as plain names: `("params", "stem", "conv", "kernel")`."""
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def is_weight(names: tuple[str, ...]) -> bool:
    """TE-NAS's "weight" parameters: conv / linear kernels and normalisation gains."""
    return names[-1] in ("kernel", "scale")


def is_kernel(names: tuple[str, ...]) -> bool:
    """Conv2d / Linear weights (no gains, no biases)."""
    return names[-1] == "kernel"


def no_weights_message(params: types.Params, what: str) -> str:
    """The error for a parameter tree in which a proxy finds none of its weights."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    names = sorted({path_names(path)[-1] for path, _ in leaves})
    return (
        f"the proxy finds no weights ({what or 'selected leaves'}: conv / linear weights "
        f"named 'kernel', gains 'scale') among the parameter names {names[:8]}; params "
        "must be a tree of arrays as Linen, jaxnas.from_nnx or the spaces give"
    )


def leaf_values(fn: Callable[..., jax.Array], *leaf_lists) -> jax.Array:
    """`fn` of the i-th leaf of every list, for each i in order: f[L] (`fn`'s dtype).

    A list may also be one array whose leading axis runs over the leaves (e.g. bool[L]).

    Leaves of one shape and dtype go through one vmapped call of `fn` on their stack, so
    the compiled program holds one reduction per distinct shape instead of one per leaf
    (DARTS' 855 parameter arrays have 23 shapes: l2_norm's reduction compiled in 39 s
    per leaf, 4.4 s by shape; WORKSPACE_NOTES.md, Session 25). A stack is a copy, so a
    stack of the first list's leaves holds at most `MAX_STACK_BYTES` (a larger leaf goes
    alone): stacking NB101's per-example gradients whole doubled KNAS's XLA temporary
    memory (12.5 -> 24.4 GB).
    """
    first = leaf_lists[0]
    groups: dict[tuple, list[list[int]]] = {}
    for i, leaf in enumerate(first):
        chunks = groups.setdefault((leaf.shape, leaf.dtype), [])
        if not chunks or (len(chunks[-1]) + 1) * leaf.size * leaf.dtype.itemsize > MAX_STACK_BYTES:
            chunks.append([])
        chunks[-1].append(i)
    values, order = [], []
    for indices in (c for chunks in groups.values() for c in chunks):
        stacked = [
            leaves[np.asarray(indices)]
            if isinstance(leaves, jax.Array)  # one gather, not a slice per leaf
            else jnp.stack([leaves[i] for i in indices])
            for leaves in leaf_lists
        ]
        values.append(jax.vmap(fn)(*stacked))
        order += indices
    return jnp.concatenate(values)[np.argsort(order)]


class Selection:
    """The leaves of a parameter tree that satisfy a predicate, and how to put them back.

    Attributes:
      indices: positions of the selected leaves in `jax.tree.leaves(params)`.
      names: the path names of the selected leaves, in `jax.tree.leaves` order.
      leaves: the selected arrays.
      masks: f32 arrays broadcastable to each selected leaf: 1 where the parameter
        belongs to the architecture (`network.param_mask`), else 0.
    """

    def __init__(self, network: Network, params: types.Params, predicate: Predicate):
        flat, self._treedef = jax.tree_util.tree_flatten_with_path(params)
        self._all = [leaf for _, leaf in flat]
        self.indices = [i for i, (path, _) in enumerate(flat) if predicate(path_names(path))]
        if not self.indices:
            what = getattr(predicate, "__name__", "")
            raise errors.ConfigError(no_weights_message(params, what))
        self.names = [path_names(flat[i][0]) for i in self.indices]
        self.leaves = [self._all[i] for i in self.indices]
        if network.param_mask is None:
            self.masks = [jnp.ones((), jnp.float32) for _ in self.indices]
        else:
            mask_leaves = jax.tree.leaves(network.param_mask(params))
            self.masks = [jnp.asarray(mask_leaves[i], jnp.float32) for i in self.indices]

    def merge(self, leaves: Sequence[jax.Array]) -> types.Params:
        """The full parameter tree with the selected leaves replaced by `leaves`."""
        out = list(self._all)
        for i, leaf in zip(self.indices, leaves):
            out[i] = leaf
        return jax.tree.unflatten(self._treedef, out)

    def masked(self, leaves: Sequence[jax.Array]) -> list[jax.Array]:
        """`leaves` times their architecture masks (derivatives then vanish off-architecture)."""
        return [leaf * mask for leaf, mask in zip(leaves, self.masks)]

    def present(self) -> jax.Array:
        """bool[L], per selected leaf: whether any of its entries belongs to the architecture."""
        return leaf_values(lambda mask: jnp.any(mask != 0), self.masks)


def reinitialize(params: types.Params, key: types.PRNGKey, scheme: str) -> types.Params:
    """Re-draws a parameter tree as a reference implementation initialises it.

    Schemes (by leaf name; other leaves are kept):
      * "normal": `kernel` ~ N(0, 1), `bias` = 0, `scale` = 1 (SWAP's
        `network_weight_gaussian_init`, Zen-NAS).
      * "kaiming_normal": `kernel` ~ N(0, 2 / fan_in) with fan_in the product of all but
        the last axis (HWIO, [in, out]), `bias` = 0, `scale` = 1 (AZ-NAS's
        `kaiming_norm_fanin`).

    All normal draws come from one RNG call (see `init_rules.torch_init` for why).
    """
    if scheme not in ("normal", "kaiming_normal"):
        raise errors.ConfigError(
            f"unknown initialisation {scheme!r}; expected 'normal' or 'kaiming_normal'"
        )
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    kernels = [i for i, (path, _) in enumerate(flat) if path_names(path)[-1] == "kernel"]
    if not kernels:
        raise errors.ConfigError(no_weights_message(params, "kernels to re-draw"))
    sizes = [flat[i][1].size for i in kernels]
    draws = jax.random.normal(key, (sum(sizes),), jnp.float32)
    offsets = np.cumsum([0] + sizes)
    out = [leaf for _, leaf in flat]
    for n, i in enumerate(kernels):
        shape = flat[i][1].shape
        std = 1.0 if scheme == "normal" else float(np.sqrt(2.0 / np.prod(shape[:-1])))
        out[i] = draws[offsets[n] : offsets[n + 1]].reshape(shape) * std
    for i, (path, leaf) in enumerate(flat):
        name = path_names(path)[-1]
        if name == "bias":
            out[i] = jnp.zeros_like(leaf)
        elif name == "scale":
            out[i] = jnp.ones_like(leaf)
    return jax.tree.unflatten(treedef, out)


def labels(batch: types.Batch) -> jax.Array:
    """`batch["y"]`, or a ShapeError naming the problem."""
    if "y" not in batch:
        raise errors.ShapeError("this proxy needs labels: batch['y'] of int32[B]")
    return batch["y"]


def split_gradients(
    network: Network,
    params: types.Params,
    batch: types.Batch,
    predicate: Predicate,
    num_splits: int,
) -> tuple[Selection, list[jax.Array]]:
    """Cross-entropy gradients of the selected leaves, one per split of the batch.

    The batch is cut into `num_splits` consecutive equal parts and each part is an
    independent forward pass (BatchNorm statistics of that part), vmapped: the
    reference codes' loop over mini-batches (ZiCo) or over single images (KNAS, batch
    size 1) without a Python loop.

    Returns:
      The selection and, per selected leaf, f32[num_splits, *leaf.shape] gradients
      (zero off the architecture).
    """
    x, y = batch["x"], labels(batch)
    b = x.shape[0]
    if num_splits < 1 or b % num_splits:
        raise errors.ShapeError(f"cannot split a batch of {b} into {num_splits} equal parts")
    sel = Selection(network, params, predicate)
    xs = x.reshape(num_splits, b // num_splits, *x.shape[1:])
    ys = y.reshape(num_splits, b // num_splits)

    def loss(leaves, x, y):
        return losses.cross_entropy(network.apply(sel.merge(sel.masked(leaves)), x), y)

    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(sel.leaves, xs, ys)
    return sel, list(grads)


def first_use_order(fn: Callable[[Any], Any], params: types.Params) -> list[int]:
    """Leaf indices of `params` (in `jax.tree.leaves` order) by when `fn` first reads them.

    For a network's forward pass this is the order in which a PyTorch module registers
    its parameters (stem first, classifier last; within a layer weight before bias),
    which some reference codes depend on (KNAS keeps "the first 11 parameter tensors").
    The order is read from the traced program, including the branches of `lax.switch`
    and nested calls; leaves the program never reads come last.
    """
    leaves, treedef = jax.tree.flatten(params)
    specs = [jax.ShapeDtypeStruct(leaf.shape, leaf.dtype) for leaf in leaves]
    closed = jax.make_jaxpr(lambda *ls: fn(jax.tree.unflatten(treedef, ls)))(*specs)
    position: dict[int, tuple] = {}

    def walk(jaxpr, env, prefix):
        for n, eqn in enumerate(jaxpr.eqns):
            subs = [
                sub.jaxpr if isinstance(sub, core.ClosedJaxpr) else sub
                for sub in core.jaxprs_in_params(eqn.params)
            ]
            if subs:
                for sub in subs:
                    outer = eqn.invars[len(eqn.invars) - len(sub.invars) :]
                    inner = {
                        v: env[o]
                        for v, o in zip(sub.invars, outer)
                        if isinstance(o, core.Var) and o in env
                    }
                    walk(sub, inner, prefix + (n,))
                continue
            for v in eqn.invars:
                if isinstance(v, core.Var) and v in env:
                    here = prefix + (n,)
                    position[env[v]] = min(position.get(env[v], here), here)

    walk(closed.jaxpr, {v: i for i, v in enumerate(closed.jaxpr.invars)}, ())
    never = (float("inf"),)
    return sorted(range(len(leaves)), key=lambda i: (position.get(i, never), i))
