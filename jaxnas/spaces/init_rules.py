"""Initialisation rules of the spaces' parameters, each drawn from one RNG call.

PyTorch's default initialisation (kaiming-uniform with a=sqrt(5), i.e.
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), for conv and linear weights and linear biases;
BatchNorm gamma=1, beta=0) and NB101's fan-out normal rule, drawn at a supernet's
maximum widths, and their rescalings to the widths one architecture selects.
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int):
    """PyTorch's default bias init for a layer with `fan_in` inputs per output."""
    bound = 1.0 / np.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def torch_init(key: jax.Array, shapes) -> dict:
    """PyTorch's default initialisation of a parameter tree, from a single RNG call.

    Equivalent in distribution to initialising the Linen modules of this file, but the
    random numbers come from one `jax.random.uniform` draw that is sliced per leaf.
    Linen's own `init` derives a key and draws numbers per leaf: for a supernet with
    hundreds of leaves that costs tens of seconds of XLA compile time (WORKSPACE_NOTES).

    Rules by leaf name: `kernel` ~ U(+-1/sqrt(fan_in)) with fan_in the product of all
    but the last axis (HWIO conv, [in, out] linear); `bias` next to a `kernel` (a
    linear layer) ~ U(+-1/sqrt(fan_in)) of that kernel; BatchNorm `scale` = 1 and `bias`
    = 0.

    Args:
      key: PRNG key.
      shapes: nested dict of `jax.ShapeDtypeStruct` (e.g. from `jax.eval_shape`).

    Returns:
      A nested dict of f32 arrays with the structure of `shapes`.
    """
    bounds = {}  # path -> bound of a uniform leaf

    def collect(tree, path):
        for name, leaf in tree.items():
            if isinstance(leaf, dict):
                collect(leaf, path + (name,))
            elif name == "kernel":
                bounds[path + (name,)] = 1.0 / math.sqrt(math.prod(leaf.shape[:-1]))
            elif name == "bias" and "kernel" in tree:
                bounds[path + (name,)] = 1.0 / math.sqrt(math.prod(tree["kernel"].shape[:-1]))
            elif name not in ("scale", "bias"):
                raise ValueError(f"torch_init: no init rule for parameter {'/'.join(path)}/{name}")

    collect(shapes, ())
    uniform = functools.partial(jax.random.uniform, dtype=jnp.float32, minval=-1.0, maxval=1.0)
    return _draw_scaled(key, shapes, bounds, uniform)


def fan_out_normal_init(key: jax.Array, shapes) -> dict:
    """Kaiming-normal (fan-out) convolutions and N(0, 0.01^2) linear layers, one RNG call.

    The initialisation of the NB101 PyTorch models (`Network._initialize_weights` in
    NASWOT's `nas_101_api/model.py` and NASLib's `nasbench101/model.py`, which NAS-Bench-
    Suite-Zero scored): conv kernels
    [k_h, k_w, C_in, C_out] ~ N(0, 2 / (k_h k_w C_out)), linear kernels ~ N(0, 0.01^2),
    every bias 0, BatchNorm `scale` 1.

    Args:
      key: PRNG key.
      shapes: nested dict of `jax.ShapeDtypeStruct` (e.g. from `jax.eval_shape`).

    Returns:
      A nested dict of f32 arrays with the structure of `shapes`.
    """
    stds = {}

    def collect(tree, path):
        for name, leaf in tree.items():
            if isinstance(leaf, dict):
                collect(leaf, path + (name,))
            elif name == "kernel" and len(leaf.shape) == 4:
                stds[path + (name,)] = math.sqrt(2.0 / math.prod((*leaf.shape[:2], leaf.shape[3])))
            elif name == "kernel" and len(leaf.shape) == 2:
                stds[path + (name,)] = 0.01
            elif name not in ("scale", "bias"):
                raise ValueError(
                    f"fan_out_normal_init: no init rule for parameter {'/'.join(path)}/{name}"
                )

    collect(shapes, ())
    return _draw_scaled(key, shapes, stds, functools.partial(jax.random.normal, dtype=jnp.float32))


def _draw_scaled(key: jax.Array, shapes, scales: dict, sample) -> dict:
    """`fill_params` with each leaf of `scales` (path -> scale) drawn by one `sample(key,
    (n,))` call for all of them, sliced per leaf and multiplied by its scale."""
    sizes = [math.prod(_leaf(shapes, path).shape) for path in scales]
    flat = sample(key, (sum(sizes),))
    offsets = np.cumsum([0] + sizes)
    drawn = {
        path: flat[offsets[i] : offsets[i + 1]].reshape(_leaf(shapes, path).shape) * scale
        for i, (path, scale) in enumerate(scales.items())
    }
    return fill_params(shapes, drawn)


def _mask_count(mask: jax.Array, shape: tuple[int, ...], axes) -> jax.Array:
    """Sum over `axes` (kept) of a 0/1 mask broadcastable to `shape`, not materialised."""
    m = jnp.asarray(mask, jnp.float32)
    m = m.reshape((1,) * (len(shape) - m.ndim) + m.shape)
    for a in axes:
        m = m.sum(a, keepdims=True) if m.shape[a] > 1 else m * shape[a]
    return m


def _width_factor(mask, shape, axes) -> jax.Array:
    """sqrt(full fan / selected fan) per unit; 1 where nothing is selected."""
    selected = _mask_count(mask, shape, axes)
    full = math.prod(shape[a] for a in axes)
    return jnp.where(selected > 0, jnp.sqrt(full / jnp.maximum(selected, 1.0)), 1.0)


def _rescale_kernels(params, mask, rule, scale_bias: bool):
    """Multiplies every `kernel` by `rule(kernel, its mask)` (None: unchanged), and with
    `scale_bias` the `bias` beside it by the same per-output factor."""
    out = {
        name: _rescale_kernels(leaf, mask[name], rule, scale_bias)
        if isinstance(leaf, dict)
        else leaf
        for name, leaf in params.items()
    }
    factor = None
    # A whole-layer mask (one entry) selects all of the layer's fan or none: factor 1.
    if "kernel" in params and jnp.size(mask["kernel"]) > 1:
        factor = rule(params["kernel"], mask["kernel"])
    if factor is not None:
        out["kernel"] = params["kernel"] * factor
        if scale_bias and "bias" in params:
            out["bias"] = params["bias"] * factor.reshape(-1)
    return out


def rescale_fan_in(params, mask):
    """Rescales a `torch_init` draw at maximum widths to the selected fan-ins.

    `torch_init` draws a kernel and the bias beside it from U(+-1/sqrt(fan_in)), fan_in
    the product of all but the last kernel axis at the space's maximum widths. The
    materialised network's layer reads only the selected inputs, so its bound is
    1/sqrt(selected fan_in): each output unit's kernel column and bias are multiplied by
    sqrt(fan_in / selected fan_in), which makes the selected slice exactly its
    distribution. Units that read no selected input are left as drawn.

    Args:
      params: `{"params": ...}` drawn by `torch_init`.
      mask: `param_mask(params)` (leaves broadcastable to the parameters).

    Returns:
      `params` with the rescaled kernels and biases.
    """

    def rule(kernel, kernel_mask):
        return _width_factor(kernel_mask, kernel.shape, tuple(range(kernel.ndim - 1)))

    return _rescale_kernels(params, mask, rule, scale_bias=True)


def rescale_fan_out(params, mask):
    """Rescales a `fan_out_normal_init` draw at maximum widths to the selected fan-outs.

    A conv kernel's std sqrt(2 / (k_h k_w C_out)) depends on its output width: each
    input row of a kernel is multiplied by sqrt(k_h k_w C_out / selected k_h k_w C_out).
    Linear layers (fixed std) and biases (0) are unchanged.

    Args:
      params: `{"params": ...}` drawn by `fan_out_normal_init`.
      mask: `param_mask(params)`.

    Returns:
      `params` with the rescaled conv kernels.
    """

    def rule(kernel, kernel_mask):
        if kernel.ndim != 4:
            return None
        return _width_factor(kernel_mask, kernel.shape, (0, 1, 3))

    return _rescale_kernels(params, mask, rule, scale_bias=False)


def fill_params(shapes, drawn: dict) -> dict:
    """Parameters shaped like `shapes`: the `drawn[path]` arrays where given, else the
    PyTorch defaults of the remaining leaves (BatchNorm / LayerNorm `scale` 1, others 0)."""

    def build(tree, path):
        out = {}
        for name, leaf in tree.items():
            p = path + (name,)
            if isinstance(leaf, dict):
                out[name] = build(leaf, p)
            elif p in drawn:
                out[name] = drawn[p]
            elif name == "scale":
                out[name] = jnp.ones(leaf.shape, jnp.float32)
            else:
                out[name] = jnp.zeros(leaf.shape, jnp.float32)
        return out

    return build(shapes, ())


def _leaf(tree, path):
    for name in path:
        tree = tree[name]
    return tree
