"""NDS ResNet / ResNeXt-A / ResNeXt-B: macro search spaces of residual CIFAR networks.

Radosavovic, Johnson, Xie, Lo, Dollár, "On Network Design Spaces for Visual Recognition",
ICCV 2019 (models: facebookresearch/pycls `AnyNet`; trained populations:
facebookresearch/nds). NASWOT (Mellor et al., ICML 2021) scores these three spaces.

Network (pycls `AnyNet` with the CIFAR stem): 3x3 conv (16 channels) -> BN -> ReLU;
three stages with strides 1, 2, 2, stage i being d_i residual blocks of width w_i (the
first block takes the previous width and the stride, and has a 1x1 conv + BN projection
shortcut when the width or the resolution changes, the identity otherwise); global
average pooling; linear classifier. Blocks, out = ReLU(shortcut + f(x)):

  * `res_basic_block`: f = 3x3 conv (stride) -> BN -> ReLU -> 3x3 conv -> BN.
  * `res_bottleneck_block`: w_b = round(w * bot_mul); f = 1x1 conv -> BN -> ReLU ->
    3x3 conv with g groups (stride) -> BN -> ReLU -> 1x1 conv -> BN.

Each stage chooses independently from (NDS Table 1 read with the CIFAR widths of the
released NDS data, as aw_nas' `germ_nds.py` decodes them; `bot_mul` = 1/b for the
paper's bottleneck ratio b):

  nds_resnet     basic blocks       d_i in 1 2 3 4 6 8 12 16 24
                                    w_i in 16 24 32 40 48 64 80 96 128 160 192 256
                                    (9 x 12)^3 = 1,259,712 architectures
  nds_resnext_a  bottleneck blocks  d_i in 1 2 4 8 16, w_i in 16 32 64 128 256,
                                    bot_mul_i in 0.25 0.5 1, g_i in 1 2 4
                                    (5 x 5 x 3 x 3)^3 = 11,390,625 architectures
  nds_resnext_b  bottleneck blocks  d_i in 1 2 4 8 16, w_i in 64 128 256 512 1024,
                                    bot_mul_i in 0.25 0.5 1, g_i in 1 2 4 8 16
                                    (5 x 5 x 3 x 5)^3 = 52,734,375 architectures

Every (w, bot_mul, g) combination is valid: the smallest w_b equals the largest g. The
NDS populations were trained on a sample of each space (with a complexity cap in the
paper's analysis); `sample` here is uniform over the whole grid.

Genotype: `int32[3 * F]`, stage-major, F = 2 fields (depth, width) for ResNet and F = 4
(depth, width, bot_mul, groups) for ResNeXt, each an index into the choice tuple.
Notation: `"depths=1,2,4|widths=16,32,64"` (+ `"|bot_muls=0.25,0.5,1|groups=1,2,4"`).

Architecture-dependent shapes are masked to the maxima of the space: the parameters are
those of the largest network (every stage at max width and depth); an architecture uses
the leading corner of each parameter (`base.restrict_params`), blocks beyond d_i are the
identity, channels beyond w_i are zero, and taps carry per-channel weights (0 for masked
channels and skipped blocks). A grouped 3x3 conv uses the corner `[:, :, :w_b/g, :w_b]`
of its kernel and is evaluated as the equivalent dense conv with a block-diagonal kernel
(on XLA:CPU a grouped conv runs slower than the dense one). One compiled program serves
the whole space. Dispatch modes:

  * "switch" (default): every stage runs at its exact width inside a `lax.switch` over
    the stage's (width, bot_mul) choices and skips inactive blocks with `lax.cond` inside
    a `lax.scan`; compute close to the architecture's own cost. Map over a population
    with `lax.map`.
  * "mask": every stage runs at the maximum width and depth, multiplying activations by
    channel masks and selecting the identity for inactive blocks; vmappable.

Memory scales with the maxima of the space in both modes: taps (and "mask" activations)
are stored at the maximum width and depth, e.g. about 50 MB per image of ResNet stage-1
taps at 32x32.

Differences from the reference code, documented rather than reproduced: parameters are
initialised with `init_rules.torch_init` on the supernet shapes, rescaled to each
architecture's own fan-ins (`init_rules.rescale_fan_in`) (pycls draws conv weights from
N(0, 2/fan_out) per network; with BatchNorm in train mode the scale of a conv does not
change any activation); NASWOT's released `nasspace.py` builds these CIFAR networks with
the ImageNet stem (7x7 stride-2 conv + max pool, 12 channels), 1 class, and passes the
NDS `num_gs` (number of groups) as pycls' group *width* (g = w_b // num_gs).
"""

import dataclasses
import functools
import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import errors
from jaxnas.network import sow_tap
from jaxnas.spaces import base, functional, masking, op_layers, supernet

BLOCKS = ("res_basic_block", "res_bottleneck_block")
DISPATCH_MODES = ("switch", "mask")
NUM_STAGES = 3
STRIDES = (1, 2, 2)


def bottleneck_width(width: int, bot_mul: float) -> int:
    """pycls' `int(round(w * bot_mul))`."""
    return int(round(width * bot_mul))


@dataclasses.dataclass(frozen=True)
class DesignSpace:
    """The choices of one NDS design space; every stage chooses from the same sets.

    Attributes:
      name: registry name.
      block: "res_basic_block" or "res_bottleneck_block".
      depths: blocks per stage.
      widths: output channels per stage.
      bot_muls: bottleneck multipliers w_b / w (bottleneck blocks only).
      groups: groups of the 3x3 conv (bottleneck blocks only).
    """

    name: str
    block: str
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    bot_muls: tuple[float, ...] = ()
    groups: tuple[int, ...] = ()

    def __post_init__(self):
        if self.block not in BLOCKS:
            raise errors.ConfigError(
                f"unknown NDS block type {self.block!r}; expected one of {BLOCKS}"
            )
        if not self.depths or not self.widths or min(self.depths) < 1:
            raise errors.ConfigError(f"{self.name}: depths and widths need positive choices")
        if self.bottleneck:
            if not self.bot_muls or not self.groups:
                raise errors.ConfigError(
                    f"{self.name}: a bottleneck space needs bot_muls and groups"
                )
            for w, m, g in itertools.product(self.widths, self.bot_muls, self.groups):
                wb = bottleneck_width(w, m)
                if wb < 1 or wb % g:
                    raise errors.ConfigError(
                        f"{self.name}: width {w} x bot_mul {m:g} = {wb} channels cannot be "
                        f"split into {g} groups"
                    )
        elif self.bot_muls or self.groups:
            raise errors.ConfigError(f"{self.name}: basic blocks take no bot_muls or groups")

    @property
    def bottleneck(self) -> bool:
        return self.block == "res_bottleneck_block"

    @property
    def fields(self) -> tuple[str, ...]:
        """Genotype fields per stage (also the names used in the string notation)."""
        if self.bottleneck:
            return ("depths", "widths", "bot_muls", "groups")
        return ("depths", "widths")

    def choices(self, field: str) -> tuple:
        return getattr(self, field)


DESIGN_SPACES = {
    "nds_resnet": DesignSpace(
        "nds_resnet",
        "res_basic_block",
        depths=(1, 2, 3, 4, 6, 8, 12, 16, 24),
        widths=(16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256),
    ),
    "nds_resnext_a": DesignSpace(
        "nds_resnext_a",
        "res_bottleneck_block",
        depths=(1, 2, 4, 8, 16),
        widths=(16, 32, 64, 128, 256),
        bot_muls=(0.25, 0.5, 1.0),
        groups=(1, 2, 4),
    ),
    "nds_resnext_b": DesignSpace(
        "nds_resnext_b",
        "res_bottleneck_block",
        depths=(1, 2, 4, 8, 16),
        widths=(64, 128, 256, 512, 1024),
        bot_muls=(0.25, 0.5, 1.0),
        groups=(1, 2, 4, 8, 16),
    ),
}


# ------------------------------------------------------------------------- architectures


@dataclasses.dataclass(frozen=True)
class StageArch:
    """One stage of a concrete architecture."""

    depth: int
    width: int
    bottleneck_width: int = 0
    groups: int = 1


def decode(design: DesignSpace, genotype) -> tuple[StageArch, ...]:
    """A concrete (host) genotype -> one `StageArch` per stage."""
    g = [int(v) for v in np.asarray(genotype).reshape(-1)]
    per = len(design.fields)
    stages = []
    for s in range(NUM_STAGES):
        row = g[s * per : (s + 1) * per]
        depth, width = design.depths[row[0]], design.widths[row[1]]
        if design.bottleneck:
            wb = bottleneck_width(width, design.bot_muls[row[2]])
            stages.append(StageArch(depth, width, wb, design.groups[row[3]]))
        else:
            stages.append(StageArch(depth, width))
    return tuple(stages)


def num_params(design: DesignSpace, genotype, stem_width=16, num_classes=10, in_channels=3):
    """Closed-form parameter count of an architecture (conv kernels, BN scale and bias,
    classifier weight and bias; BN running statistics are buffers, not parameters)."""
    total = 9 * in_channels * stem_width + 2 * stem_width
    w_in = stem_width
    for s, stage in enumerate(decode(design, genotype)):
        for i in range(stage.depth):
            c_in, stride = (w_in, STRIDES[s]) if i == 0 else (stage.width, 1)
            w = stage.width
            if design.bottleneck:
                wb, g = stage.bottleneck_width, stage.groups
                total += c_in * wb + 2 * wb + 9 * (wb // g) * wb + 2 * wb + wb * w + 2 * w
            else:
                total += 9 * c_in * w + 2 * w + 9 * w * w + 2 * w
            if c_in != w or stride != 1:
                total += c_in * w + 2 * w
        w_in = stage.width
    return total + w_in * num_classes + num_classes


# ---------------------------------------------------------------------- Linen declarations


class ConvBN(nn.Module):
    """Conv (no bias, optional groups) -> BatchNorm; kernel `[k, k, in/groups, out]`."""

    in_features: int
    features: int
    kernel_size: int
    stride: int = 1
    groups: int = 1
    track_running_stats: bool = False
    batch_norm: bool = True

    def setup(self):
        self.conv = op_layers.Conv(self.in_features // self.groups, self.features, self.kernel_size)
        self.bn = op_layers.BatchNorm(self.features, self.track_running_stats, self.batch_norm)

    def weights(self) -> functional.ConvBNWeights:
        return functional.ConvBNWeights(self.conv.kernel, *self.bn.weights())

    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        pad = self.kernel_size // 2
        y = functional.conv2d(x, self.conv.kernel, self.stride, pad, groups=self.groups)
        return self.bn(y, train)


def _max_bottleneck_width(design: DesignSpace) -> int:
    if not design.bottleneck:
        return 0
    return max(bottleneck_width(w, m) for w in design.widths for m in design.bot_muls)


def _max_group_width(design: DesignSpace) -> int:
    return max(
        bottleneck_width(w, m) // g
        for w in design.widths
        for m in design.bot_muls
        for g in design.groups
    )


def _has_proj(design: DesignSpace, stage: int, stem_width: int) -> bool:
    """Whether some architecture has a projection shortcut in the stage's first block."""
    return STRIDES[stage] != 1 or any(w != stem_width for w in design.widths)


class _SupernetStage(nn.Module):
    """The parameters of one supernet stage (blocks `b1..bD` at the stage's maxima)."""

    design: DesignSpace
    in_features: int
    proj: bool

    def setup(self):
        d = self.design
        c, wb = max(d.widths), _max_bottleneck_width(d)
        blocks = []
        for i in range(max(d.depths)):
            c_in = self.in_features if i == 0 else c
            if d.bottleneck:
                convs = {
                    "a": (c_in, wb, 1),
                    "b": (_max_group_width(d), wb, 3),
                    "c": (wb, c, 1),
                }
            else:
                convs = {"a": (c_in, c, 3), "b": (c, c, 3)}
            if i == 0 and self.proj:
                convs["proj"] = (c_in, c, 1)
            blocks.append(_SupernetBlock(convs, name=f"b{i + 1}"))
        self.blocks = blocks

    def weights(self) -> list[dict[str, functional.ConvBNWeights]]:
        return [block.weights() for block in self.blocks]

    def record(self, taps: list[dict]) -> None:
        """Sows `{name: (value, weight)}` taps under `bI/name`, block by block."""
        for block, block_taps in zip(self.blocks, taps):
            for name, (value, weight) in block_taps.items():
                sow_tap(block, name, value, weight)


class _SupernetBlock(nn.Module):
    convs: dict  # name -> (in_features, features, kernel_size)

    def setup(self):
        self.layers = {
            name: ConvBN(c_in, c_out, k, name=name) for name, (c_in, c_out, k) in self.convs.items()
        }

    def weights(self) -> dict[str, functional.ConvBNWeights]:
        return {name: layer.weights() for name, layer in self.layers.items()}


# ----------------------------------------------------------------------- pure computation


def _tap_kinds(design: DesignSpace) -> dict[str, str]:
    """Which width ("width" or "bwidth") the channels of each block tap follow."""
    if design.bottleneck:
        return {"a_relu": "bwidth", "b_relu": "bwidth", "relu": "width"}
    return {"a_relu": "width", "relu": "width"}


def _bn(w: functional.ConvBNWeights, y: jax.Array, bn: bool) -> jax.Array:
    if not bn:
        return y
    c = y.shape[-1]
    return functional.batch_norm(y, w.scale[:c], w.bias[:c])


def _grouped_dense_kernel(kernel: jax.Array, wb: int, group_width: jax.Array) -> jax.Array:
    """The dense `[3, 3, wb, wb]` equivalent of the grouped kernel `kernel[:, :, :gw, :wb]`.

    `group_width` (gw = w_b / g, may be traced) sets the block-diagonal structure: output
    channel o reads input channel i iff i // gw == o // gw, through kernel[:, :, i mod gw, o].
    """
    kernel = kernel[:, :, : min(kernel.shape[2], wb), :wb]
    i = jnp.arange(wb)
    group = i // group_width
    local = jnp.clip(i[:, None] - (group * group_width)[None, :], 0, kernel.shape[2] - 1)
    dense = jnp.take_along_axis(kernel, local[None, None], axis=2)
    same = (group[:, None] == group[None, :]).astype(kernel.dtype)
    return dense * same[None, None]


def _conv(w: functional.ConvBNWeights, x, c_out, stride, bn, mask):
    """Conv with the kernel corner `[:, :, :C_in(x), :c_out]` -> BN -> channel mask."""
    kernel = w.kernel[:, :, : x.shape[-1], :c_out]
    y = functional.conv2d(x, kernel, stride, kernel.shape[0] // 2)
    return _bn(w, y, bn) * masking.channels_last(mask, 4)


def _block(design, weights, x, *, stride, width, bwidth, masks, group_width, use_proj, bn):
    """One residual block at static widths with dynamic channel masks.

    Args:
      design: the design space (block type).
      weights: conv name -> ConvBNWeights (supernet shapes or corners of them).
      x: f32[B, H, W, C_in]; channels beyond the architecture's are zero.
      stride: static stride.
      width, bwidth: static channel counts to compute with (the exact widths under
        "switch", the maxima under "mask").
      masks: (f32[width], f32[bwidth]) channel masks of the architecture.
      group_width: w_b / g (may be traced); bottleneck blocks only.
      use_proj: None (identity shortcut), True (projection), or a traced bool.
      bn: whether BatchNorm is applied.

    Returns:
      (y f32[B, H', W', width], {tap name: pre-activation}).
    """
    m_w, m_b = masks
    taps = {}
    if design.bottleneck:
        a = _conv(weights["a"], x, bwidth, 1, bn, m_b)
        taps["a_relu"] = a
        kernel_b = _grouped_dense_kernel(weights["b"].kernel, bwidth, group_width)
        b = _conv(weights["b"]._replace(kernel=kernel_b), jax.nn.relu(a), bwidth, stride, bn, m_b)
        taps["b_relu"] = b
        f = _conv(weights["c"], jax.nn.relu(b), width, 1, bn, m_w)
    else:
        a = _conv(weights["a"], x, width, stride, bn, m_w)
        taps["a_relu"] = a
        f = _conv(weights["b"], jax.nn.relu(a), width, 1, bn, m_w)
    if use_proj is None:
        shortcut = masking.fit_channels(x, width)
    else:
        shortcut = _conv(weights["proj"], x, width, stride, bn, m_w)
        if use_proj is not True:
            shortcut = jnp.where(use_proj, shortcut, masking.fit_channels(x, width))
    out = shortcut + f
    taps["relu"] = out
    return jax.nn.relu(out), taps


def _corner(design, weights, width, bwidth):
    """A later block's weights cut to static widths, so that they stack along a scan."""
    if design.bottleneck:
        io = {"a": (width, bwidth), "b": (bwidth, bwidth), "c": (bwidth, width)}
    else:
        io = {"a": (width, width), "b": (width, width)}
    return {
        name: functional.ConvBNWeights(
            w.kernel[:, :, : io[name][0], : io[name][1]],
            w.scale[: io[name][1]],
            w.bias[: io[name][1]],
        )
        for name, w in weights.items()
    }


def _stage(design, blocks, x, arch, *, stride, width, bwidth, use_proj, cond, bn, want_taps):
    """One stage at static widths: block 0, then a `lax.scan` over the later blocks.

    `arch` holds the stage's traced choices. With `cond` an inactive block is skipped by
    `lax.cond` (exact cost on CPU); otherwise the identity is selected with `jnp.where`
    (vmappable). Returns (y f32[B, H', W', width], per block {tap name: value}).
    """
    masks = (
        masking.prefix_mask(width, arch["width"]),
        masking.prefix_mask(bwidth, arch["bwidth"]),
    )
    kwargs = dict(width=width, bwidth=bwidth, masks=masks, group_width=arch["group_width"], bn=bn)
    x, first = _block(design, blocks[0], x, stride=stride, use_proj=use_proj, **kwargs)
    if len(blocks) == 1:
        return x, [first]
    stacked = jax.tree.map(
        lambda *leaves: jnp.stack(leaves), *[_corner(design, w, width, bwidth) for w in blocks[1:]]
    )

    def run(weights, h):
        return _block(design, weights, h, stride=1, use_proj=None, **kwargs)

    later_taps = jax.eval_shape(run, jax.tree.map(lambda leaf: leaf[0], stacked), x)[1]

    def skip(weights, h):
        del weights
        return h, {name: jnp.zeros(v.shape, v.dtype) for name, v in later_taps.items()}

    def body(h, inputs):
        index, weights = inputs
        active = index + 1 < arch["depth"]
        if cond:
            y, taps = jax.lax.cond(active, run, skip, weights, h)
        else:
            y, taps = run(weights, h)
            y = jnp.where(active, y, h)
        return y, (taps if want_taps else None)

    x, later = jax.lax.scan(body, x, (jnp.arange(len(blocks) - 1), stacked))
    taps = [first]
    if want_taps:
        taps += [{name: v[i] for name, v in later.items()} for i in range(len(blocks) - 1)]
    return x, taps


class NDSNetwork(nn.Module):
    """The data-driven NDS network; call as `module(x, genotype)` with genotype int32[3F].

    x is f32[B, H, W, in_channels]; returns f32[B, num_classes]. BatchNorm uses batch
    statistics. Taps: `stem/relu` and `sS/bI/{a_relu, b_relu, relu}` for every supernet
    block, with per-channel weights that are 0 beyond the stage's width (or bottleneck
    width) and for blocks beyond its depth.
    """

    design: DesignSpace
    stem_width: int = 16
    num_classes: int = 10
    in_channels: int = 3
    dispatch: str = "switch"
    batch_norm: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, genotype: jax.Array) -> jax.Array:
        base.check_images(x, "NDS networks", self.in_channels)
        design = self.design
        archs = _traced_arch(design, genotype)
        stem = ConvBN(self.in_channels, self.stem_width, 3, batch_norm=self.batch_norm, name="stem")
        x = stem(x)
        sow_tap(stem, "relu", x)
        x = jax.nn.relu(x)
        c_in = self.stem_width
        for s, arch in enumerate(archs):
            has_proj = _has_proj(design, s, self.stem_width)
            stage = _SupernetStage(design, c_in, has_proj, name=f"s{s + 1}")
            x, taps = self._stage(stage.weights(), x, arch, s, has_proj)
            if self.is_mutable_collection("taps"):
                stage.record(self._weigh(taps, arch))
            c_in = max(design.widths)
        return op_layers.Dense(self.num_classes, name="head")(functional.global_avg_pool(x))

    def _stage(self, blocks, x, arch, s, has_proj):
        """Stage `s`: output padded to the maximum width, taps padded to the maxima."""
        design, stride = self.design, STRIDES[s]
        c_max, wb_max = max(design.widths), max(_max_bottleneck_width(design), 1)
        common = dict(
            stride=stride, bn=self.batch_norm, want_taps=self.is_mutable_collection("taps")
        )
        if self.dispatch == "mask":
            use_proj = None
            if has_proj:
                use_proj = True if stride != 1 else arch["width"] != self.stem_width
            return _stage(
                design,
                blocks,
                x,
                arch,
                width=c_max,
                bwidth=wb_max,
                use_proj=use_proj,
                cond=False,
                **common,
            )
        full = {"width": c_max, "bwidth": wb_max}
        kinds = _tap_kinds(design)

        def branch(width, bwidth):
            def fn(h):
                proj = stride != 1 or width != self.stem_width
                y, taps = _stage(
                    design,
                    blocks,
                    h,
                    arch,
                    width=width,
                    bwidth=bwidth,
                    use_proj=True if proj else None,
                    cond=True,
                    **common,
                )
                taps = [
                    {name: masking.fit_channels(v, full[kinds[name]]) for name, v in block.items()}
                    for block in taps
                ]
                return masking.fit_channels(y, c_max), taps

            return fn

        branches = [branch(w, wb) for w, wb in _branch_shapes(design)]
        return jax.lax.switch(arch["shape_index"], branches, x)

    def _weigh(self, taps, arch):
        """Attaches per-channel weights (0 beyond the architecture's widths and depth)."""
        design = self.design
        kinds = _tap_kinds(design)
        sizes = {"width": max(design.widths), "bwidth": max(_max_bottleneck_width(design), 1)}
        channel = {k: masking.prefix_mask(n, arch[k]) for k, n in sizes.items()}
        return [
            {
                name: (v, channel[kinds[name]] * (i < arch["depth"]).astype(jnp.float32))
                for name, v in block.items()
            }
            for i, block in enumerate(taps)
        ]


def _branch_shapes(design: DesignSpace) -> list[tuple[int, int]]:
    """Static (width, bottleneck width) of each "switch" branch, in `shape_index` order."""
    if design.bottleneck:
        return [(w, bottleneck_width(w, m)) for w in design.widths for m in design.bot_muls]
    return [(w, 1) for w in design.widths]


def _traced_arch(design: DesignSpace, genotype: jax.Array) -> list[dict[str, jax.Array]]:
    """Per stage: depth, width, bwidth, group_width and the switch branch (traced int32)."""
    genotype = jnp.asarray(genotype)
    per = len(design.fields)
    depths, widths = masking.choice_table(design.depths), masking.choice_table(design.widths)
    if design.bottleneck:
        bwidths = masking.choice_table(
            [[bottleneck_width(w, m) for m in design.bot_muls] for w in design.widths]
        )
        groups = masking.choice_table(design.groups)
    stages = []
    for s in range(NUM_STAGES):
        row = genotype[s * per : (s + 1) * per]
        arch = {"depth": depths[row[0]], "width": widths[row[1]]}
        if design.bottleneck:
            arch["bwidth"] = bwidths[row[1], row[2]]
            arch["group_width"] = arch["bwidth"] // groups[row[3]]
            arch["shape_index"] = row[1] * len(design.bot_muls) + row[2]
        else:
            arch["bwidth"] = jnp.ones((), jnp.int32)
            arch["group_width"] = jnp.ones((), jnp.int32)
            arch["shape_index"] = row[1]
        stages.append(arch)
    return stages


# ------------------------------------------------------------------- materialised network


class _Block(nn.Module):
    """A residual block of a materialised network (exact shapes, real grouped conv)."""

    design: DesignSpace
    in_features: int
    arch: StageArch
    stride: int
    track_running_stats: bool
    batch_norm: bool

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        w, opts = self.arch.width, (self.track_running_stats, self.batch_norm)
        if self.design.bottleneck:
            wb, g = self.arch.bottleneck_width, self.arch.groups
            a = ConvBN(self.in_features, wb, 1, 1, 1, *opts, name="a")(x, train)
            sow_tap(self, "a_relu", a)
            b = ConvBN(wb, wb, 3, self.stride, g, *opts, name="b")(jax.nn.relu(a), train)
            sow_tap(self, "b_relu", b)
            f = ConvBN(wb, w, 1, 1, 1, *opts, name="c")(jax.nn.relu(b), train)
        else:
            a = ConvBN(self.in_features, w, 3, self.stride, 1, *opts, name="a")(x, train)
            sow_tap(self, "a_relu", a)
            f = ConvBN(w, w, 3, 1, 1, *opts, name="b")(jax.nn.relu(a), train)
        if self.in_features != w or self.stride != 1:
            proj = ConvBN(self.in_features, w, 1, self.stride, 1, *opts, name="proj")
            x = proj(x, train)
        out = x + f
        sow_tap(self, "relu", out)
        return jax.nn.relu(out)


class _Stage(nn.Module):
    design: DesignSpace
    in_features: int
    arch: StageArch
    stride: int
    track_running_stats: bool
    batch_norm: bool

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        c_in, stride = self.in_features, self.stride
        for i in range(self.arch.depth):
            block = _Block(
                self.design,
                c_in,
                self.arch,
                stride,
                self.track_running_stats,
                self.batch_norm,
                name=f"b{i + 1}",
            )
            x = block(x, train)
            c_in, stride = self.arch.width, 1
        return x


class NDSModel(nn.Module):
    """A materialised NDS network of one architecture; call as `module(x, train)`.

    Its parameters are the leading corners of the data-driven network's (same names;
    `base.restrict_params`); grouped convs are real grouped convs.
    """

    design: DesignSpace
    genotype: tuple[int, ...]
    stem_width: int = 16
    num_classes: int = 10
    in_channels: int = 3
    track_running_stats: bool = True
    batch_norm: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        base.check_images(x, "NDS networks", self.in_channels)
        opts = (self.track_running_stats, self.batch_norm)
        stem = ConvBN(self.in_channels, self.stem_width, 3, 1, 1, *opts, name="stem")
        x = stem(x, train)
        sow_tap(stem, "relu", x)
        x = jax.nn.relu(x)
        c_in = self.stem_width
        for s, arch in enumerate(decode(self.design, self.genotype)):
            x = _Stage(self.design, c_in, arch, STRIDES[s], *opts, name=f"s{s + 1}")(x, train)
            c_in = arch.width
        return op_layers.Dense(self.num_classes, name="head")(functional.global_avg_pool(x))


# --------------------------------------------------------------------------- param mask


def param_mask(params, design: DesignSpace, genotype: jax.Array, stem_width: int = 16):
    """Which supernet parameters an architecture uses: f32 masks broadcastable per leaf.

    A kernel `[k, k, C_in, C_out]` gets `f32[1, 1, C_in, C_out]` marking its used corner
    (times 0 for blocks beyond the stage's depth and for an unused projection); a BN
    vector gets its channel mask; the classifier's kernel its input-channel mask.
    """
    archs = _traced_arch(design, genotype)
    c_max = max(design.widths)
    wb_max = max(_max_bottleneck_width(design), 1)
    gw_max = _max_group_width(design) if design.bottleneck else 1

    def leaf_mask(path, leaf):
        names = [getattr(k, "key", str(k)) for k in path]
        names = names[1:] if names[0] == "params" else names
        if names[0] == "stem":
            return jnp.ones((), jnp.float32)
        if names[0] == "head":
            if names[1] == "bias":
                return jnp.ones((), jnp.float32)
            return masking.prefix_mask(c_max, archs[-1]["width"])[:, None]
        s, i, conv = int(names[0][1:]) - 1, int(names[1][1:]) - 1, names[2]
        arch = archs[s]
        if i == 0:
            c_in = stem_width if s == 0 else c_max
            m_in = (
                jnp.ones(c_in, jnp.float32)
                if s == 0
                else masking.prefix_mask(c_max, archs[s - 1]["width"])
            )
        else:
            m_in = masking.prefix_mask(c_max, arch["width"])
        m_w = masking.prefix_mask(c_max, arch["width"])
        m_b = masking.prefix_mask(wb_max, arch["bwidth"])
        io = {
            "a": (m_in, m_b if design.bottleneck else m_w),
            "b": (masking.prefix_mask(gw_max, arch["group_width"]), m_b)
            if design.bottleneck
            else (m_w, m_w),
            "c": (m_b, m_w),
            "proj": (m_in, m_w),
        }[conv]
        used = (i < arch["depth"]).astype(jnp.float32)
        if conv == "proj" and s == 0:
            used = used * (arch["width"] != stem_width).astype(jnp.float32)
        m_in, m_out = io
        if names[-1] == "kernel":
            return m_in[None, None, :, None] * m_out[None, None, None, :] * used
        return m_out * used

    return jax.tree_util.tree_map_with_path(leaf_mask, params)


# ------------------------------------------------------------------------------ notation


def to_string(design: DesignSpace, genotype) -> str:
    """int32[3F] -> `"depths=1,2,4|widths=16,32,64"` (+ `|bot_muls=...|groups=...`)."""
    g = np.asarray(genotype).reshape(-1)
    per = len(design.fields)
    parts = []
    for f, field in enumerate(design.fields):
        values = [design.choices(field)[int(g[s * per + f])] for s in range(NUM_STAGES)]
        parts.append(f"{field}=" + ",".join(masking.format_number(v) for v in values))
    return "|".join(parts)


def from_string(design: DesignSpace, arch: str) -> np.ndarray:
    """Parses the notation of `to_string` into int32[3F]; raises ArchitectureError."""
    parsed = masking.parse_fields(design.name, arch, design.fields)
    per = len(design.fields)
    genotype = np.zeros(NUM_STAGES * per, np.int32)
    for f, field in enumerate(design.fields):
        values = parsed[field]
        if len(values) != NUM_STAGES:
            raise errors.ArchitectureError(
                f"malformed {design.name} string {arch!r}: field {field!r} needs "
                f"{NUM_STAGES} values (one per stage), got {len(values)}"
            )
        kind = float if field == "bot_muls" else int
        for s, text in enumerate(values):
            value = masking.parse_number(design.name, field, text, kind)
            what = f"{field[:-1]} of stage {s + 1}"
            genotype[s * per + f] = masking.choice_index(
                design.name, what, value, design.choices(field)
            )
    return genotype


# --------------------------------------------------------------------------------- space


def space(
    name: str = "nds_resnet",
    *,
    design: DesignSpace | None = None,
    stem_width: int = 16,
    num_classes: int = 10,
    in_channels: int = 3,
    dispatch: str = "switch",
    batch_norm: bool = True,
) -> base.SearchSpace:
    """An NDS space; the keyword arguments are the defaults of `network`/`materialize`.

    Args:
      name: "nds_resnet", "nds_resnext_a" or "nds_resnext_b".
      design: a custom `DesignSpace` instead of the named one (e.g. tiny choice sets for
        tests); its name is used as the space's name.
      stem_width, num_classes, in_channels: network settings (NDS CIFAR: 16, 10, 3).
      dispatch: "switch" or "mask" (see the module docstring).
      batch_norm: False makes every BatchNorm the identity (synflow).
    """
    if design is None:
        if name not in DESIGN_SPACES:
            raise errors.ConfigError(
                f"unknown NDS design space {name!r}; expected one of {sorted(DESIGN_SPACES)}"
            )
        design = DESIGN_SPACES[name]
    defaults = dict(
        stem_width=stem_width,
        num_classes=num_classes,
        in_channels=in_channels,
        batch_norm=batch_norm,
    )
    num_choices = tuple(len(design.choices(f)) for f in design.fields) * NUM_STAGES

    def settle(settings):
        if settings.get("dispatch", "switch") not in DISPATCH_MODES:
            raise errors.ConfigError(
                f"unknown NDS dispatch {settings['dispatch']!r}; expected one of {DISPATCH_MODES}"
            )
        return settings

    def network(genotype, settings):
        module = NDSNetwork(design, **settings)
        return supernet.network(
            module,
            genotype,
            lambda params: param_mask(params, design, genotype, settings["stem_width"]),
        )

    def materialize(genotype, settings):
        return NDSModel(design, genotype, **settings)

    return base.build(
        design.name,
        num_choices,
        defaults,
        network,
        materialize,
        functools.partial(to_string, design),
        functools.partial(from_string, design),
        network_defaults={"dispatch": dispatch},
        settle=settle,
    )


def resnet(dispatch: str = "switch", **kwargs) -> base.SearchSpace:
    """NDS ResNet (basic blocks; depth and width per stage)."""
    return space("nds_resnet", dispatch=dispatch, **kwargs)


def resnext_a(dispatch: str = "switch", **kwargs) -> base.SearchSpace:
    """NDS ResNeXt-A (bottleneck blocks; depth, width, bot_mul, groups per stage)."""
    return space("nds_resnext_a", dispatch=dispatch, **kwargs)


def resnext_b(dispatch: str = "switch", **kwargs) -> base.SearchSpace:
    """NDS ResNeXt-B (ResNeXt-A with widths 64..1024 and up to 16 groups)."""
    return space("nds_resnext_b", dispatch=dispatch, **kwargs)
