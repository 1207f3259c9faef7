"""AutoFormer: the vision-transformer search spaces of AutoFormer-Tiny/Small/Base.

Chen, Peng, Fu, Ling, "AutoFormer: Searching Transformers for Visual Recognition", ICCV
2021 (code: microsoft/Cream `AutoFormer/`, supernet `Vision_TransformerSuper`, search
spaces `experiments/supernet/supernet-{T,S,B}.yaml`). L-SWAG / LIBRA-NAS (CVPR 2025)
and AZ-NAS score subnets of these spaces training-free.

Network (pre-norm ViT as AutoFormer trains it, `--gp --change_qkv --relative_position`):
patch embedding (PxP conv with stride P and bias, embed dim e); a class token and an
absolute position embedding; d encoder layers, layer l with h_l heads of dimension 64
(q/k/v width 64 h_l, AutoFormer's `change_qkv`) and an MLP of int(e * r_l) hidden GeLU
units: x += proj(MHSA(LN(x))); x += fc2(GeLU(fc1(LN(x)))); attention adds 2-D relative
position embeddings to keys and values (tables of 2 * 14 + 2 rows per layer, row 0 for
the class token); final LN; the mean of the patch tokens (`--gp`); linear classifier.
LayerNorm eps is 1e-5 (PyTorch's), GeLU the exact erf form.

Search spaces (choices; supernet maxima):

  tiny   e in 192 216 240, d in 12 13 14, h_l in 3 4, r_l in 3.5 4.0; supernet e 256, h 4
  small  e in 320 384 448, d in 12 13 14, h_l in 5 6 7, r_l in 3 3.5 4; supernet e 448, h 7
  base   e in 528 576 624, d in 14 15 16, h_l in 8 9 10, r_l in 3 3.5 4; supernet e 640, h 10

(base heads follow the paper's Table 1 and `experiments/subnet/AutoFormer-B.yaml`;
`experiments/supernet/supernet-B.yaml` lists only 9 and 10). The MLP supernet width is
int(supernet e * 4). The published AutoFormer-T/S/B (`SEARCHED`) have 5,867,944 /
22,891,432 / 53,691,688 parameters at 224x224 with 1000 classes (README: 5.8M / 22.9M /
53.7M; without the relative-position tables 5.77M / 22.79M / 53.58M). AutoFormer-T uses
MLP ratio 3.0 in four layers, which the tiny search space (3.5, 4) does not contain.

Genotype: `int32[2 + 2 L]` with L the largest depth: [embed index, depth index, heads
index of layers 0..L-1, mlp-ratio index of layers 0..L-1]. Layers at or beyond the
depth are absent; `sample` and `mutate` keep their entries 0 (canonical form), other
values there are accepted and ignored. Notation (AutoFormer's config keys):
`"embed_dim=192|depth=13|num_heads=3,3,...|mlp_ratio=3.5,4,..."` with one head count
and one ratio per present layer.

The data-driven network is AutoFormer's weight-sharing supernet: every parameter has the
supernet's shape and an architecture uses its leading corner (embed channels [:e], heads
[:h_l], hidden units [:int(e r_l)], layers [:d]). Activations are masked to the
architecture (channels beyond e are zero; absent heads and hidden units are zeroed;
LayerNorm statistics run over the e present channels), absent layers are skipped with
`lax.cond` inside a `lax.scan` (a select under `vmap`). Taps are the GeLU inputs, weight
per hidden unit (0 beyond int(e r_l) and for absent layers). There is no BatchNorm: the
`batch_norm=False` override is accepted and changes nothing.

Initialisation follows AutoFormer: linear weights, class token, position embeddings and
relative-position tables N(0, 0.02^2) (timm's `trunc_normal_` cuts at +-2, i.e. never),
linear biases 0, LayerNorm 1 / 0, patch-embedding conv PyTorch's default
U(+-1/sqrt(P^2 C)) for weight and bias; drawn from one normal and one uniform RNG call.
AutoFormer stores q/k/v rows interleaved in one `qkv` matrix (row 3j+i); here q, k and v
are separate matrices, which changes nothing in distribution.
"""

import dataclasses
import itertools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors
from jaxnas.network import sow_tap
from jaxnas.spaces import base, functional, init_rules, masking, supernet

LN_EPS = 1e-5
INIT_STD = 0.02
FIELDS = ("embed_dim", "depth", "num_heads", "mlp_ratio")


@dataclasses.dataclass(frozen=True)
class ViTSpace:
    """The choices of an AutoFormer space and the supernet's maxima.

    Attributes:
      name: registry name.
      embed_dims: embedding widths e (shared by all layers).
      depths: numbers of layers d.
      num_heads: heads per layer h_l.
      mlp_ratios: MLP ratios per layer r_l (hidden units int(e * r_l)).
      head_dim: width of one head (AutoFormer: 64).
      supernet_embed_dim: parameter width of the embedding (>= max(embed_dims)).
      supernet_num_heads: parameter heads (>= max(num_heads)).
      supernet_mlp_ratio: the MLP parameter width is int(supernet_embed_dim * this).
    """

    name: str
    embed_dims: tuple[int, ...]
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    mlp_ratios: tuple[float, ...]
    head_dim: int = 64
    supernet_embed_dim: int = 0
    supernet_num_heads: int = 0
    supernet_mlp_ratio: float = 0.0

    def __post_init__(self):
        for field in ("embed_dims", "depths", "num_heads", "mlp_ratios"):
            values = getattr(self, field)
            if not values or min(values) <= 0:
                raise errors.ConfigError(f"{self.name}: {field} needs positive choices")
        if self.max_embed_dim < max(self.embed_dims) or self.max_heads < max(self.num_heads):
            raise errors.ConfigError(f"{self.name}: the supernet is smaller than its choices")
        if self.max_hidden < max(
            self.hidden(e, r) for e in self.embed_dims for r in self.mlp_ratios
        ):
            raise errors.ConfigError(f"{self.name}: the supernet MLP is smaller than its choices")

    @property
    def max_embed_dim(self) -> int:
        return self.supernet_embed_dim or max(self.embed_dims)

    @property
    def max_heads(self) -> int:
        return self.supernet_num_heads or max(self.num_heads)

    @property
    def max_hidden(self) -> int:
        return int(self.max_embed_dim * (self.supernet_mlp_ratio or max(self.mlp_ratios)))

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    @staticmethod
    def hidden(embed_dim: int, ratio: float) -> int:
        """AutoFormer's `int(embed_dim * mlp_ratio)`."""
        return int(embed_dim * ratio)


VARIANTS = {
    "tiny": ViTSpace(
        "autoformer-tiny",
        (192, 216, 240),
        (12, 13, 14),
        (3, 4),
        (3.5, 4.0),
        supernet_embed_dim=256,
        supernet_num_heads=4,
        supernet_mlp_ratio=4.0,
    ),
    "small": ViTSpace(
        "autoformer-small",
        (320, 384, 448),
        (12, 13, 14),
        (5, 6, 7),
        (3.0, 3.5, 4.0),
        supernet_embed_dim=448,
        supernet_num_heads=7,
        supernet_mlp_ratio=4.0,
    ),
    "base": ViTSpace(
        "autoformer-base",
        (528, 576, 624),
        (14, 15, 16),
        (8, 9, 10),
        (3.0, 3.5, 4.0),
        supernet_embed_dim=640,
        supernet_num_heads=10,
        supernet_mlp_ratio=4.0,
    ),
}

# The searched AutoFormer-T/S/B (experiments/subnet/AutoFormer-{T,S,B}.yaml).
SEARCHED = {
    "tiny": "embed_dim=192|depth=13|num_heads=3,3,3,3,3,3,3,3,3,3,4,3,3|"
    "mlp_ratio=3.5,3.5,3,3.5,3,3,4,4,3.5,4,3.5,4,3.5",
    "small": "embed_dim=384|depth=13|num_heads=6,6,5,7,5,5,5,6,6,7,7,6,7|"
    "mlp_ratio=3,3.5,3,3.5,4,4,4,4,4,4,4,3.5,4",
    "base": "embed_dim=576|depth=14|num_heads=9,9,9,9,9,10,9,9,10,9,10,9,9,10|"
    "mlp_ratio=3.5,3.5,4,3.5,4,3.5,3.5,3,4,4,3,4,3,3.5",
}


# ------------------------------------------------------------------------- architectures


@dataclasses.dataclass(frozen=True)
class Arch:
    """A concrete architecture: embed dim, and heads / hidden units of each present layer."""

    embed_dim: int
    num_heads: tuple[int, ...]
    mlp_ratios: tuple[float, ...]

    @property
    def depth(self) -> int:
        return len(self.num_heads)


def decode(vit: ViTSpace, genotype) -> Arch:
    g = [int(v) for v in np.asarray(genotype).reshape(-1)]
    length = vit.max_depth
    depth = vit.depths[g[1]]
    return Arch(
        vit.embed_dims[g[0]],
        tuple(vit.num_heads[i] for i in g[2 : 2 + depth]),
        tuple(vit.mlp_ratios[i] for i in g[2 + length : 2 + length + depth]),
    )


def num_params(
    vit: ViTSpace,
    genotype,
    image_size: int = 224,
    patch_size: int = 16,
    num_classes: int = 1000,
    in_channels: int = 3,
    relative_position: bool = True,
    max_relative_position: int = 14,
) -> int:
    """Closed-form parameter count of an architecture (AutoFormer's
    `get_sampled_params_numel`: weights, biases, LayerNorms, tokens, tables)."""
    arch = decode(vit, genotype)
    e, n = arch.embed_dim, (image_size // patch_size) ** 2
    total = patch_size**2 * in_channels * e + e + e * (n + 2)
    for h, r in zip(arch.num_heads, arch.mlp_ratios):
        q, m = h * vit.head_dim, vit.hidden(e, r)
        total += 2 * e + 3 * (e * q + q) + q * e + e + 2 * e + e * m + m + m * e + e
        if relative_position:
            total += 4 * (2 * max_relative_position + 2) * vit.head_dim
    return total + 2 * e + e * num_classes + num_classes


# ---------------------------------------------------------------------- Linen declarations


class Linear(nn.Module):
    """A linear layer's parameters: kernel `[in, out]` N(0, 0.02^2), bias 0."""

    in_features: int
    features: int

    def setup(self):
        self.kernel = self.param(
            "kernel", nn.initializers.normal(INIT_STD), (self.in_features, self.features)
        )
        self.bias = self.param("bias", nn.initializers.zeros, (self.features,))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.kernel + jnp.reshape(self.bias, (1,) * (x.ndim - 1) + (-1,))


class LayerNorm(nn.Module):
    features: int

    def setup(self):
        self.scale = self.param("scale", nn.initializers.ones, (self.features,))
        self.bias = self.param("bias", nn.initializers.zeros, (self.features,))


class RelativePosition(nn.Module):
    """AutoFormer's 2-D relative position tables (vertical and horizontal distance)."""

    head_dim: int
    max_relative_position: int

    def setup(self):
        rows = 2 * self.max_relative_position + 2
        init = nn.initializers.normal(INIT_STD)
        self.table_v = self.param("table_v", init, (rows, self.head_dim))
        self.table_h = self.param("table_h", init, (rows, self.head_dim))


class PatchEmbed(nn.Module):
    in_channels: int
    features: int
    patch_size: int

    def setup(self):
        p, c = self.patch_size, self.in_channels
        fan_in = p * p * c
        self.kernel = self.param("kernel", init_rules.torch_kernel_init, (p, p, c, self.features))
        self.bias = self.param("bias", init_rules.torch_bias_init(fan_in), (self.features,))


class EncoderLayer(nn.Module):
    """The parameters of one encoder layer (names follow AutoFormer's state dict)."""

    embed_dim: int
    num_heads: int
    hidden: int
    head_dim: int
    relative_position: bool
    max_relative_position: int

    def setup(self):
        e, q = self.embed_dim, self.num_heads * self.head_dim
        self.attn_layer_norm = LayerNorm(e)
        self.q, self.k, self.v = Linear(e, q), Linear(e, q), Linear(e, q)
        self.proj = Linear(q, e)
        if self.relative_position:
            self.rel_pos_k = RelativePosition(self.head_dim, self.max_relative_position)
            self.rel_pos_v = RelativePosition(self.head_dim, self.max_relative_position)
        self.ffn_layer_norm = LayerNorm(e)
        self.fc1 = Linear(e, self.hidden)
        self.fc2 = Linear(self.hidden, e)

    def weights(self) -> dict:
        w = {
            "ln1": (self.attn_layer_norm.scale, self.attn_layer_norm.bias),
            "q": (self.q.kernel, self.q.bias),
            "k": (self.k.kernel, self.k.bias),
            "v": (self.v.kernel, self.v.bias),
            "proj": (self.proj.kernel, self.proj.bias),
            "ln2": (self.ffn_layer_norm.scale, self.ffn_layer_norm.bias),
            "fc1": (self.fc1.kernel, self.fc1.bias),
            "fc2": (self.fc2.kernel, self.fc2.bias),
        }
        if self.relative_position:
            w["rel_k"] = (self.rel_pos_k.table_v, self.rel_pos_k.table_h)
            w["rel_v"] = (self.rel_pos_v.table_v, self.rel_pos_v.table_h)
        return w


def autoformer_init(key: jax.Array, shapes) -> dict:
    """AutoFormer's initialisation of a parameter tree from one normal and one uniform draw.

    Rules by name: `patch_embed/{kernel,bias}` ~ U(+-1/sqrt(P^2 C)); other `kernel`s,
    `cls_token`, `pos_embed` and relative-position `table_*` ~ N(0, 0.02^2); LayerNorm
    `scale` = 1; every other `bias` = 0.
    """
    normal, uniform = {}, {}

    def collect(tree, path):
        for name, leaf in tree.items():
            p = path + (name,)
            if isinstance(leaf, dict):
                collect(leaf, p)
            elif "patch_embed" in path:
                uniform[p] = (leaf.shape, 1.0 / math.sqrt(math.prod(tree["kernel"].shape[:-1])))
            elif name in ("kernel", "cls_token", "pos_embed", "table_v", "table_h"):
                normal[p] = leaf.shape
            elif name not in ("scale", "bias"):
                raise ValueError(f"autoformer_init: no rule for parameter {'/'.join(p)}")

    collect(shapes, ())
    key_normal, key_uniform = jax.random.split(key)
    drawn = {}
    sizes = [math.prod(s) for s in normal.values()]
    flat = jax.random.normal(key_normal, (sum(sizes),), jnp.float32) * INIT_STD
    for (path, shape), start in zip(normal.items(), np.cumsum([0] + sizes)):
        drawn[path] = flat[start : start + math.prod(shape)].reshape(shape)
    sizes = [math.prod(s) for s, _ in uniform.values()]
    flat = jax.random.uniform(key_uniform, (sum(sizes),), jnp.float32, -1.0, 1.0)
    for (path, (shape, bound)), start in zip(uniform.items(), np.cumsum([0] + sizes)):
        drawn[path] = flat[start : start + math.prod(shape)].reshape(shape) * bound

    return init_rules.fill_params(shapes, drawn)


# ----------------------------------------------------------------------- pure computation


def layer_norm(x, scale, bias, mask=None, count=None):
    """LayerNorm over the last axis; with `mask` f32[E] over the `count` present channels
    only (absent channels stay 0)."""
    scale, bias = (jnp.reshape(v, (1,) * (x.ndim - 1) + (-1,)) for v in (scale, bias))
    if mask is None:
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + LN_EPS) * scale + bias
    m = jnp.reshape(mask, (1,) * (x.ndim - 1) + (-1,))
    n = count.astype(x.dtype)
    mean = jnp.sum(x * m, axis=-1, keepdims=True) / n
    var = jnp.sum(jnp.square((x - mean) * m), axis=-1, keepdims=True) / n
    return ((x - mean) * jax.lax.rsqrt(var + LN_EPS) * scale + bias) * m


def relative_indices(tokens: int, max_relative_position: int) -> tuple[np.ndarray, np.ndarray]:
    """AutoFormer's table rows (vertical, horizontal) for every (query, key) pair: int[T, T].

    Patch tokens sit on a sqrt(T-1)-wide grid; distances are clipped to +-max and shifted
    to 1..2 max + 1; row 0 serves every pair involving the class token.
    """
    n = tokens - 1
    side = int(math.isqrt(n))
    r = np.arange(n)
    clip = max_relative_position
    vert = np.clip(r[None, :] // side - r[:, None] // side, -clip, clip) + clip + 1
    horz = np.clip(r[None, :] % side - r[:, None] % side, -clip, clip) + clip + 1
    return np.pad(vert, ((1, 0), (1, 0))), np.pad(horz, ((1, 0), (1, 0)))


def _encoder_layer(w, x, *, head_dim, heads_mask, hidden_mask, embed_mask, embed_dim, rel):
    """One pre-norm encoder layer; returns (x', GeLU input f32[B, T, M])."""
    b, t, _ = x.shape
    h = layer_norm(x, *w["ln1"], embed_mask, embed_dim)
    heads = w["q"][0].shape[1] // head_dim

    def project(name):
        kernel, bias = w[name]
        return (h @ kernel + bias[None, None, :]).reshape(b, t, heads, head_dim)

    q, k, v = project("q"), project("k"), project("v")
    scale = head_dim**-0.5
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) * scale
    if rel is not None:
        rows_v, rows_h = rel
        table_k = w["rel_k"][0][rows_v] + w["rel_k"][1][rows_h]
        scores = scores + jnp.einsum("bqhd,qkd->bhqk", q, table_k) * scale
    attn = jax.nn.softmax(scores, axis=-1)
    out = jnp.einsum("bhqk,bkhd->bqhd", attn, v)
    if rel is not None:
        table_v = w["rel_v"][0][rows_v] + w["rel_v"][1][rows_h]
        out = out + jnp.einsum("bhqk,qkd->bqhd", attn, table_v)
    if heads_mask is not None:
        out = out * heads_mask[None, None, :, None]
    kernel, bias = w["proj"]
    out = out.reshape(b, t, heads * head_dim) @ kernel + bias[None, None, :]
    x = x + _mask(out, embed_mask)
    h = layer_norm(x, *w["ln2"], embed_mask, embed_dim)
    kernel, bias = w["fc1"]
    pre = h @ kernel + bias[None, None, :]
    act = _mask(jax.nn.gelu(pre, approximate=False), hidden_mask)
    kernel, bias = w["fc2"]
    return x + _mask(act @ kernel + bias[None, None, :], embed_mask), pre


def _mask(x, mask):
    return x if mask is None else x * jnp.reshape(mask, (1,) * (x.ndim - 1) + (-1,))


class _Body(nn.Module):
    """Settings shared by the data-driven and the materialised network."""

    vit: ViTSpace
    patch_size: int = 16
    num_classes: int = 1000
    in_channels: int = 3
    global_pool: bool = True
    relative_position: bool = True
    max_relative_position: int = 14
    batch_norm: bool = True  # Accepted for the common override; there is no BatchNorm.

    def embed(self, x, embed_dim, embed_mask):
        """Patch embedding + class token + position embedding: f32[B, T, embed_dim]."""
        base.check_images(
            x, "AutoFormer", self.in_channels, self.patch_size, " (the patch size)", square=True
        )
        p = self.patch_size
        patch = PatchEmbed(self.in_channels, embed_dim, p, name="patch_embed")
        y = functional.conv2d(x, patch.kernel, p, 0) + patch.bias[None, None, None, :]
        b, n = x.shape[0], (x.shape[1] // p) ** 2
        y = y.reshape(b, n, embed_dim)
        init = nn.initializers.normal(INIT_STD)
        cls = self.param("cls_token", init, (embed_dim,))
        pos = self.param("pos_embed", init, (n + 1, embed_dim))
        tokens = jnp.concatenate([jnp.broadcast_to(cls[None, None, :], (b, 1, embed_dim)), y], 1)
        return _mask(tokens + pos[None], embed_mask)

    def head(self, x, embed_dim, embed_mask, count):
        norm = LayerNorm(embed_dim, name="norm")
        x = layer_norm(x, norm.scale, norm.bias, embed_mask, count)
        pooled = jnp.mean(x[:, 1:], axis=1) if self.global_pool else x[:, 0]
        return Linear(embed_dim, self.num_classes, name="head")(pooled)

    def rel(self, tokens):
        if not self.relative_position:
            return None
        return tuple(jnp.asarray(r) for r in relative_indices(tokens, self.max_relative_position))


class AutoFormerNetwork(_Body):
    """The data-driven AutoFormer supernet; call as `module(x, genotype)`.

    x is f32[B, H, W, in_channels] (square, side a multiple of the patch size); genotype
    int32[2 + 2L]. Returns f32[B, num_classes]. Taps `blocks_l/gelu` (f32[B, T, M_max],
    weight per hidden unit) for every supernet layer.
    """

    @nn.compact
    def __call__(self, x: jax.Array, genotype: jax.Array) -> jax.Array:
        vit = self.vit
        arch = _traced_arch(vit, genotype)
        e_max = vit.max_embed_dim
        embed_mask = masking.prefix_mask(e_max, arch["embed_dim"])
        x = self.embed(x, e_max, embed_mask)
        layers = [
            EncoderLayer(
                e_max,
                vit.max_heads,
                vit.max_hidden,
                vit.head_dim,
                self.relative_position,
                self.max_relative_position,
                name=f"blocks_{i}",
            )
            for i in range(vit.max_depth)
        ]
        stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *[m.weights() for m in layers])
        rel = self.rel(x.shape[1])
        heads_mask = (jnp.arange(vit.max_heads)[None, :] < arch["num_heads"][:, None]).astype(
            jnp.float32
        )
        hidden_mask = (jnp.arange(vit.max_hidden)[None, :] < arch["hidden"][:, None]).astype(
            jnp.float32
        )
        want_taps = self.is_mutable_collection("taps")

        def run(w, h, hm, mm):
            return _encoder_layer(
                w,
                h,
                head_dim=vit.head_dim,
                heads_mask=hm,
                hidden_mask=mm,
                embed_mask=embed_mask,
                embed_dim=arch["embed_dim"],
                rel=rel,
            )

        def skip(w, h, hm, mm):
            del w, hm, mm
            return h, jnp.zeros(h.shape[:2] + (vit.max_hidden,), h.dtype)

        def body(h, inputs):
            index, w, hm, mm = inputs
            y, pre = jax.lax.cond(index < arch["depth"], run, skip, w, h, hm, mm)
            return y, (pre if want_taps else None)

        indices = jnp.arange(vit.max_depth)
        x, pre = jax.lax.scan(body, x, (indices, stacked, heads_mask, hidden_mask))
        if want_taps:
            active = (indices < arch["depth"]).astype(jnp.float32)
            for i, layer in enumerate(layers):
                sow_tap(layer, "gelu", pre[i], hidden_mask[i] * active[i])
        return self.head(x, e_max, embed_mask, arch["embed_dim"])


class AutoFormerModel(_Body):
    """A materialised AutoFormer subnet; call as `module(x, train)` (`train` is unused:
    there is no dropout or BatchNorm). Parameters are the leading corners of the
    supernet's (same names; `base.restrict_params`)."""

    genotype: tuple[int, ...] = ()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        del train
        vit, arch = self.vit, decode(self.vit, self.genotype)
        e = arch.embed_dim
        x = self.embed(x, e, None)
        rel = self.rel(x.shape[1])
        for i, (h, r) in enumerate(zip(arch.num_heads, arch.mlp_ratios)):
            layer = EncoderLayer(
                e,
                h,
                vit.hidden(e, r),
                vit.head_dim,
                self.relative_position,
                self.max_relative_position,
                name=f"blocks_{i}",
            )
            x, pre = _encoder_layer(
                layer.weights(),
                x,
                head_dim=vit.head_dim,
                heads_mask=None,
                hidden_mask=None,
                embed_mask=None,
                embed_dim=None,
                rel=rel,
            )
            sow_tap(layer, "gelu", pre)
        return self.head(x, e, None, None)


def _traced_arch(vit: ViTSpace, genotype: jax.Array) -> dict[str, jax.Array]:
    genotype = jnp.asarray(genotype)
    l_max = vit.max_depth
    hidden = masking.choice_table(
        [[vit.hidden(e, r) for r in vit.mlp_ratios] for e in vit.embed_dims]
    )
    return {
        "embed_dim": masking.choice_table(vit.embed_dims)[genotype[0]],
        "depth": masking.choice_table(vit.depths)[genotype[1]],
        "num_heads": masking.choice_table(vit.num_heads)[genotype[2 : 2 + l_max]],
        "hidden": hidden[genotype[0], genotype[2 + l_max :]],
    }


# --------------------------------------------------------------------------- param mask


def param_mask(params, vit: ViTSpace, genotype: jax.Array):
    """Which supernet parameters an architecture uses (f32 masks broadcastable per leaf).

    Corners: embed channels [:e] everywhere, q/k/v columns and proj rows [:64 h_l], fc1
    columns and fc2 rows [:int(e r_l)]; every parameter of layers >= d is 0.
    """
    arch = _traced_arch(vit, genotype)
    em = masking.prefix_mask(vit.max_embed_dim, arch["embed_dim"])
    units = jnp.arange(vit.max_heads * vit.head_dim) // vit.head_dim

    def leaf_mask(path, leaf):
        names = [getattr(k, "key", str(k)) for k in path]
        names = names[1:] if names[0] == "params" else names
        top, name = names[0], names[-1]
        if top in ("patch_embed", "cls_token", "pos_embed", "norm"):
            return em if name in ("bias", "scale", "cls_token") else _last(em, leaf.ndim)
        if top == "head":
            return em[:, None] if name == "kernel" else jnp.ones((), jnp.float32)
        i = int(top[len("blocks_") :])
        used = (i < arch["depth"]).astype(jnp.float32)
        qm = (units < arch["num_heads"][i]).astype(jnp.float32)
        mm = masking.prefix_mask(vit.max_hidden, arch["hidden"][i])
        sub = names[1]
        io = {
            "attn_layer_norm": (None, em),
            "ffn_layer_norm": (None, em),
            "q": (em, qm),
            "k": (em, qm),
            "v": (em, qm),
            "proj": (qm, em),
            "fc1": (em, mm),
            "fc2": (mm, em),
        }
        if sub.startswith("rel_pos"):
            return used
        m_in, m_out = io[sub]
        if name == "kernel":
            return m_in[:, None] * m_out[None, :] * used
        return m_out * used

    return jax.tree_util.tree_map_with_path(leaf_mask, params)


def _last(mask, ndim):
    return jnp.reshape(mask, (1,) * (ndim - 1) + (-1,))


# ------------------------------------------------------------------------------ notation


def to_string(vit: ViTSpace, genotype) -> str:
    arch = decode(vit, genotype)
    fmt = masking.format_number
    return (
        f"embed_dim={arch.embed_dim}|depth={arch.depth}|"
        f"num_heads={','.join(str(h) for h in arch.num_heads)}|"
        f"mlp_ratio={','.join(fmt(float(r)) for r in arch.mlp_ratios)}"
    )


def from_string(vit: ViTSpace, arch: str) -> np.ndarray:
    """Parses `to_string`'s notation into a canonical int32[2 + 2L] genotype."""
    parsed = masking.parse_fields(vit.name, arch, FIELDS)
    for field in ("embed_dim", "depth"):
        if len(parsed[field]) != 1:
            raise errors.ArchitectureError(
                f"malformed {vit.name} string {arch!r}: field {field!r} takes one value"
            )
    genotype = np.zeros(2 + 2 * vit.max_depth, np.int32)
    embed = masking.parse_number(vit.name, "embed_dim", parsed["embed_dim"][0], int)
    genotype[0] = masking.choice_index(vit.name, "embed_dim", embed, vit.embed_dims)
    depth = masking.parse_number(vit.name, "depth", parsed["depth"][0], int)
    genotype[1] = masking.choice_index(vit.name, "depth", depth, vit.depths)
    for f, field in enumerate(("num_heads", "mlp_ratio")):
        values = parsed[field]
        if len(values) != depth:
            raise errors.ArchitectureError(
                f"malformed {vit.name} string {arch!r}: field {field!r} needs {depth} values "
                f"(one per layer), got {len(values)}"
            )
        choices = vit.num_heads if field == "num_heads" else vit.mlp_ratios
        kind = int if field == "num_heads" else float
        for i, text in enumerate(values):
            value = masking.parse_number(vit.name, field, text, kind)
            genotype[2 + f * vit.max_depth + i] = masking.choice_index(
                vit.name, f"{field} of layer {i}", value, choices
            )
    return genotype


def canonical(vit: ViTSpace, genotype: jax.Array) -> jax.Array:
    """`genotype` with the entries of absent layers set to 0 (works on traced arrays)."""
    genotype = jnp.asarray(genotype)
    depth = masking.choice_table(vit.depths)[genotype[..., 1]]
    layer = jnp.arange(vit.max_depth)
    present = layer[None, :] < depth.reshape(-1, 1)
    keep = jnp.concatenate([jnp.ones((present.shape[0], 2), bool), present, present], axis=1)
    return jnp.where(keep, genotype.reshape(keep.shape), 0).reshape(genotype.shape)


# --------------------------------------------------------------------------------- space


def space(
    variant: str = "tiny",
    *,
    vit: ViTSpace | None = None,
    patch_size: int = 16,
    num_classes: int = 1000,
    in_channels: int = 3,
    global_pool: bool = True,
    relative_position: bool = True,
    max_relative_position: int = 14,
    batch_norm: bool = True,
) -> base.SearchSpace:
    """An AutoFormer space; the keyword arguments are the defaults of `network`/`materialize`.

    Args:
      variant: "tiny", "small" or "base".
      vit: a custom `ViTSpace` instead of the variant (e.g. tiny dims for tests).
      patch_size: patch side P (AutoFormer: 16); images must be square with side k P.
      num_classes: classifier outputs (AutoFormer: 1000, ImageNet).
      in_channels: image channels.
      global_pool: classify the mean of the patch tokens (AutoFormer's `--gp`); False
        uses the class token.
      relative_position: AutoFormer's relative position embeddings (`--relative_position`).
      max_relative_position: clipping distance of those embeddings (14).
      batch_norm: accepted for the common override; no effect (there is no BatchNorm).
    """
    if vit is None:
        if variant not in VARIANTS:
            raise errors.ConfigError(
                f"unknown AutoFormer variant {variant!r}; expected one of {sorted(VARIANTS)}"
            )
        vit = VARIANTS[variant]
    defaults = dict(
        patch_size=patch_size,
        num_classes=num_classes,
        in_channels=in_channels,
        global_pool=global_pool,
        relative_position=relative_position,
        max_relative_position=max_relative_position,
        batch_norm=batch_norm,
    )
    length = vit.max_depth
    num_choices = (
        (len(vit.embed_dims), len(vit.depths))
        + (len(vit.num_heads),) * length
        + (len(vit.mlp_ratios),) * length
    )
    per_layer = len(vit.num_heads) * len(vit.mlp_ratios)
    size = len(vit.embed_dims) * sum(per_layer**d for d in vit.depths)

    def network(genotype, settings):
        module = AutoFormerNetwork(vit, **settings)
        # AutoFormer's stds do not depend on layer widths: nothing to rescale.
        return supernet.network(
            module,
            genotype,
            lambda params: param_mask(params, vit, genotype),
            autoformer_init,
            rescale_fn=None,
        )

    def materialize(genotype, settings):
        return AutoFormerModel(vit, **settings, genotype=genotype)

    uniform = base.uniform_sampler(num_choices)

    def sample(key, n):
        return canonical(vit, uniform(key, n))

    choices = jnp.asarray(num_choices, jnp.int32)

    def mutate(key, genotype):
        """Changes one present position (embed, depth, or a present layer's choice) to
        another value; layers added by a deeper depth get uniform choices."""
        key_pos, key_val, key_new = jax.random.split(key, 3)
        depth = masking.choice_table(vit.depths)[genotype[1]]
        layer = jnp.arange(length)
        present = jnp.concatenate([jnp.ones(2, bool), layer < depth, layer < depth])
        candidates = present & (choices > 1)
        logits = jnp.where(candidates, 0.0, -jnp.inf)
        pos = jax.random.categorical(key_pos, logits)
        n = choices[pos]
        shift = jax.random.randint(key_val, (), 1, jnp.maximum(n, 2))
        new = jnp.where(jnp.any(candidates), (genotype[pos] + shift) % n, genotype[pos])
        child = genotype.at[pos].set(new.astype(genotype.dtype))
        fresh = uniform(key_new, 1)[0].astype(genotype.dtype)
        new_depth = masking.choice_table(vit.depths)[child[1]]
        added = (layer >= depth) & (layer < new_depth)
        added = jnp.concatenate([jnp.zeros(2, bool), added, added])
        return canonical(vit, jnp.where(added, fresh, child))

    def enumerate_all():
        rows = []
        per = list(itertools.product(range(len(vit.num_heads)), range(len(vit.mlp_ratios))))
        for e, (di, d) in itertools.product(range(len(vit.embed_dims)), enumerate(vit.depths)):
            for layers in itertools.product(per, repeat=d):
                row = np.zeros(2 + 2 * length, np.int32)
                row[0], row[1] = e, di
                for i, (h, r) in enumerate(layers):
                    row[2 + i], row[2 + length + i] = h, r
                rows.append(row)
        return np.stack(rows)

    return base.build(
        vit.name,
        num_choices,
        defaults,
        network,
        materialize,
        lambda g: to_string(vit, g),
        lambda s: from_string(vit, s),
        sample=sample,
        mutate=mutate,
        enumerate_all=enumerate_all,
        size=size,
    )
