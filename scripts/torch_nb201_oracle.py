"""Independent PyTorch oracle for NB201 networks and hook-based NASWOT.

Written from the NB201 / NASWOT papers and the behaviour of the reference code as
described in shared/docs/reference.md (section A.1), without importing jaxnas, so it can
check jaxnas from the outside:

  * `build(genotype, ...)` is the NB201 `TinyNetwork` in PyTorch (ReLU->Conv->BN ops,
    residual reduction blocks, BN->ReLU head), default PyTorch init, train-mode BN.
  * `naswot(...)` accumulates K += x x^T + (1-x)(1-x)^T in float64 NumPy from forward
    hooks, exactly like the reference: hooks on every module whose type name contains
    "ReLU" (which also matches `ReLUConvBN`, the reference's double count) or only on
    `nn.ReLU` modules; protocol "reference" first runs a forward+backward of sum(output)
    w.r.t. the input to arm the hooks, "forward" scores in a single forward (NASLib).

Requires the optional extra: `pip install -e '.[torch]'` (torch==2.13.0, CPU).

Usage:
  python scripts/torch_nb201_oracle.py golden --out tests/fixtures/naswot_nb201_golden.npz
"""

import argparse

import numpy as np
import torch
from torch import nn

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))


class ReLUConvBN(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride, padding):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return self.bn(self.conv(self.relu(x)))


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


def make_op(name, c):
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, 1)
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


class Cell(nn.Module):
    def __init__(self, genotype, c):
        super().__init__()
        self.edges = nn.ModuleList(make_op(OPS[g], c) for g in genotype)

    def forward(self, x):
        nodes = [x]
        for j in range(1, 4):
            total = None
            for e, (i, to) in enumerate(EDGES):
                if to == j:
                    out = self.edges[e](nodes[i])
                    total = out if total is None else total + out
            nodes.append(total)
        return nodes[-1]


class ResNetBlock(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False),
        )

    def forward(self, x):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class TinyNetwork(nn.Module):
    def __init__(self, genotype, channels=16, cells_per_stage=5, num_classes=10, num_stages=3):
        super().__init__()
        c = channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers, c_prev = [], c
        for s in range(num_stages):
            cs = c * 2**s
            if s > 0:
                layers.append(ResNetBlock(c_prev, cs))
            layers.extend(Cell(genotype, cs) for _ in range(cells_per_stage))
            c_prev = cs
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x)
        x = self.global_pooling(self.lastact(x)).flatten(1)
        return self.classifier(x)


def build(genotype, channels=16, cells_per_stage=5, num_classes=10, num_stages=3):
    genotype = tuple(int(g) for g in genotype)
    return TinyNetwork(genotype, channels, cells_per_stage, num_classes, num_stages)


def naswot(model, x, *, protocol="reference", match="name"):
    """Hook-based NASWOT log|K| (float64 NumPy accumulation) for a batch x (NCHW)."""
    batch = x.shape[0]
    state = {"K": np.zeros((batch, batch)), "armed": protocol != "reference"}

    def forward_hook(module, inputs, output):
        if not state["armed"]:
            return
        codes = (inputs[0].reshape(batch, -1) > 0).float()
        k = codes @ codes.t() + (1.0 - codes) @ (1.0 - codes).t()
        state["K"] = state["K"] + k.detach().cpu().numpy()

    handles = []
    for module in model.modules():
        hit = "ReLU" in str(type(module)) if match == "name" else isinstance(module, nn.ReLU)
        if hit:
            handles.append(module.register_forward_hook(forward_hook))
    try:
        if protocol == "reference":
            x_grad = x.clone().requires_grad_(True)
            model.zero_grad()
            model(x_grad).sum().backward()
            state["armed"] = True
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return float(np.linalg.slogdet(state["K"])[1])


def export_params(model):
    """Flat {jaxnas-style path: array} with HWIO conv kernels and [in, out] linear kernels."""
    flat = {}

    def conv(prefix, module):
        flat[f"{prefix}/kernel"] = module.weight.detach().numpy().transpose(2, 3, 1, 0)

    def bn(prefix, module):
        flat[f"{prefix}/scale"] = module.weight.detach().numpy()
        flat[f"{prefix}/bias"] = module.bias.detach().numpy()

    def relu_conv_bn(prefix, module):
        conv(f"{prefix}/conv", module.conv)
        bn(f"{prefix}/bn", module.bn)

    conv("stem/conv", model.stem[0])
    bn("stem/bn", model.stem[1])
    stage, index = 0, 0
    for layer in model.cells:
        if isinstance(layer, ResNetBlock):
            stage, index = stage + 1, 0
            relu_conv_bn(f"reduction{stage}/conv_a", layer.conv_a)
            relu_conv_bn(f"reduction{stage}/conv_b", layer.conv_b)
            conv(f"reduction{stage}/downsample", layer.downsample[1])
            continue
        for e, op in enumerate(layer.edges):
            if isinstance(op, ReLUConvBN):
                name = "nor_conv_1x1" if op.conv.kernel_size == (1, 1) else "nor_conv_3x3"
                relu_conv_bn(f"stage{stage}_cell{index}/edge_{e}/{name}", op)
        index += 1
    bn("lastact", model.lastact[0])
    flat["classifier/kernel"] = model.classifier.weight.detach().numpy().T
    flat["classifier/bias"] = model.classifier.bias.detach().numpy()
    return flat


GOLDEN_GENOTYPES = (
    (3, 2, 4, 1, 3, 0),  # every op kind
    (3, 3, 3, 1, 3, 3),  # the benchmark's best-known cell family
    (1, 4, 0, 2, 0, 1),  # pooling, skips, a dead-end conv
    (0, 0, 0, 0, 0, 0),  # all `none`: singular kernel, log|K| = -inf
)


def write_golden(path, seed=0):
    """Fixture: tiny NB201 nets (C=4, N=1, 8x8 inputs, batch 8) with fixed weights."""
    torch.manual_seed(seed)
    x = torch.randn(8, 3, 8, 8)
    out = {"x_nhwc": x.numpy().transpose(0, 2, 3, 1), "genotypes": np.array(GOLDEN_GENOTYPES)}
    for i, genotype in enumerate(GOLDEN_GENOTYPES):
        model = build(genotype, channels=4, cells_per_stage=1)
        with torch.no_grad():
            out[f"logits_{i}"] = model(x).numpy()
        out[f"naswot_single_{i}"] = naswot(model, x, match="relu")
        out[f"naswot_double_{i}"] = naswot(model, x, match="name")
        out[f"naswot_forward_only_{i}"] = naswot(model, x, protocol="forward", match="relu")
        for name, value in export_params(model).items():
            out[f"params_{i}/{name}"] = value
    np.savez_compressed(path, **out)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    golden = sub.add_parser("golden", help="write the NASWOT golden-test fixture")
    golden.add_argument("--out", default="tests/fixtures/naswot_nb201_golden.npz")
    args = parser.parse_args()
    out = write_golden(args.out)
    for i, g in enumerate(GOLDEN_GENOTYPES):
        print(g, out[f"naswot_single_{i}"], out[f"naswot_double_{i}"])


if __name__ == "__main__":
    main()
