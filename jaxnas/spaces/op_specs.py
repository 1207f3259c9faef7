"""Static specifications of the convolution chains of DARTS-style cell ops."""

from typing import NamedTuple


class ConvSpec(NamedTuple):
    """A static bias-free convolution of a `ReLUConvsBN` chain (DARTS / NDS cell ops).

    `depthwise` convolutions keep the channel count (kernel f32[kh, kw, 1, C]); the
    others map to the chain's output width (kernel f32[kh, kw, Ci, Co]).
    """

    kernel_size: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: int = 1
    depthwise: bool = False


def conv_out_shape(shape, spec: ConvSpec, features: int) -> tuple[int, ...]:
    """NHWC output shape of a `ConvSpec` convolution of an input of `shape`."""
    b, h, w, _ = shape
    (kh, kw), (sh, sw), (ph, pw), d = spec.kernel_size, spec.stride, spec.padding, spec.dilation
    return (
        b,
        (h + 2 * ph - d * (kh - 1) - 1) // sh + 1,
        (w + 2 * pw - d * (kw - 1) - 1) // sw + 1,
        features,
    )


def conv_specs(size: int, stride: int) -> tuple[ConvSpec]:
    """One square conv, padding `size // 2` (DARTS / NDS `conv_1x1`, `conv_3x3`)."""
    return (ConvSpec((size, size), (stride, stride), (size // 2, size // 2)),)


def factorized_conv_specs(size: int, stride: int) -> tuple[ConvSpec, ConvSpec]:
    """A 1xk then a kx1 conv (NASNet's `conv_3x1_1x3`, `conv_7x1_1x7`)."""
    r = size // 2
    return (
        ConvSpec((1, size), (1, stride), (0, r)),
        ConvSpec((size, 1), (stride, 1), (r, 0)),
    )


def dil_conv_specs(size: int, stride: int, dilation: int = 2) -> tuple[ConvSpec, ConvSpec]:
    """Depthwise (dilated) kxk conv then pointwise 1x1 conv: DARTS' DilConv."""
    pad = dilation * (size // 2)
    return (
        ConvSpec((size, size), (stride, stride), (pad, pad), dilation, depthwise=True),
        ConvSpec((1, 1)),
    )


def sep_conv_specs(size: int, stride: int, dilation: int = 1):
    """The two halves of DARTS' SepConv: (ReLU, depthwise, pointwise, BN) twice.

    Only the first depthwise conv is strided; `dilation=2` is NDS' `dil_sep_conv`.
    """
    return dil_conv_specs(size, stride, dilation), dil_conv_specs(size, 1, dilation)
