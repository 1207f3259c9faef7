"""Oracle by the NAS-Bench-201 authors: their `TinyNetwork` (xautodl) on a few cells.

Builds NB201 networks with `xautodl.models.cell_infers.tiny_network.TinyNetwork` (the
benchmark authors' own code, not ours), default PyTorch initialisation from a fixed
seed, and records, for a batch of 8 random 8x8 images in train mode (batch statistics):
the logits, the NASWOT score (forward hooks on every `nn.ReLU`, K = c c^T +
(1 - c)(1 - c)^T over the binary codes, float64 log|K|), snip and log synflow (as
zero-cost-nas defines them, see `snip` / `synflow` below) and every weight under the
name our materialised network gives it (HWIO conv kernels, [in, out] linear kernel).
It does not import jaxnas. `tests/test_xautodl_oracle.py` loads the weights into
`nb201.space(...).materialize(genotype)` and compares.

Requires the optional extra and xautodl: `pip install -e '.[torch]' xautodl==1.0.0`.

Usage:
  python scripts/xautodl_nb201_oracle.py --out tests/fixtures/xautodl_nb201_golden.npz
"""

import argparse
import copy
import hashlib
import json
import sys
from importlib import metadata

import numpy as np
import torch
from torch import nn
from xautodl.models.cell_infers.tiny_network import TinyNetwork
from xautodl.models.cell_searchs.genotypes import Structure

ARCHS = (
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|",
    "|skip_connect~0|+|avg_pool_3x3~0|none~1|+|nor_conv_1x1~0|none~1|skip_connect~2|",
)
CHANNELS, CELLS, CLASSES = 4, 1, 10


def export(model):
    """{our materialised path: array}: HWIO conv kernels, [in, out] linear kernel."""
    flat = {}

    def conv(path, module):
        flat[f"{path}/kernel"] = module.weight.detach().numpy().transpose(2, 3, 1, 0)

    def bn(path, module):
        flat[f"{path}/scale"] = module.weight.detach().numpy()
        flat[f"{path}/bias"] = module.bias.detach().numpy()

    conv("stem/conv", model.stem[0])
    bn("stem/bn", model.stem[1])
    stage, index = 0, 0
    for cell in model.cells:
        if hasattr(cell, "conv_a"):  # xautodl's ResNetBasicblock: a reduction block
            stage, index = stage + 1, 0
            for part in ("conv_a", "conv_b"):
                op = getattr(cell, part).op  # Sequential(ReLU, Conv2d, BatchNorm2d)
                conv(f"reduction{stage}/{part}/conv", op[1])
                bn(f"reduction{stage}/{part}/bn", op[2])
            conv(f"reduction{stage}/downsample", cell.downsample[1])
            continue
        for e, layer in enumerate(cell.layers):  # edges in (0,1),(0,2),(1,2),(0,3).. order
            if isinstance(getattr(layer, "op", None), nn.Sequential):  # ReLUConvBN
                size = layer.op[1].kernel_size[0]
                path = f"stage{stage}_cell{index}/edge_{e}/nor_conv_{size}x{size}"
                conv(f"{path}/conv", layer.op[1])
                bn(f"{path}/bn", layer.op[2])
        index += 1
    bn("lastact", model.lastact[0])
    flat["classifier/kernel"] = model.classifier.weight.detach().numpy().T
    flat["classifier/bias"] = model.classifier.bias.detach().numpy()
    return flat


def naswot(model, x):
    """log|K| of the binary ReLU codes, one forward pass (float64)."""
    codes = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: codes.append((o > 0).flatten(1)))
        for m in model.modules()
        if isinstance(m, nn.ReLU)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    c = torch.cat(codes, 1).double().numpy()
    k = c @ c.T + (1.0 - c) @ (1.0 - c).T
    return np.linalg.slogdet(k)[1]


def layer_sum(model, fn):
    """Sum of fn(weight, grad) over the Conv2d / Linear weights (zero-cost-nas)."""
    return sum(
        float(fn(m.weight.detach(), m.weight.grad).sum())
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    )


def snip(model, x, y):
    """sum |w * dL/dw|, L the mean cross-entropy of the batch, BatchNorm in train mode."""
    model.zero_grad()
    nn.functional.cross_entropy(model(x)[1], y).backward()
    return layer_sum(model, lambda w, g: (w * g).abs())


def synflow(model, x):
    """log of sum w * dR/dw over |weights|, every BatchNorm the identity, R = sum of the
    outputs for one all-ones image, in float64 (zero-cost-nas `synflow`)."""
    model = copy.deepcopy(model).double()
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, child_name, nn.Identity())
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad()
    model(torch.ones((1, *x.shape[1:]), dtype=torch.float64))[1].sum().backward()
    return np.log(layer_sum(model, lambda w, g: w * g))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(8, 3, 8, 8)
    y = torch.randint(0, CLASSES, (8,))
    out = {
        "x_nhwc": x.numpy().transpose(0, 2, 3, 1),
        "y": y.numpy().astype(np.int32),
        "archs": np.asarray(ARCHS),
    }
    for i, arch in enumerate(ARCHS):
        model = TinyNetwork(CHANNELS, CELLS, Structure.str2structure(arch), CLASSES)
        model.train()
        with torch.no_grad():
            out[f"logits_{i}"] = model(x)[1].numpy()
        out[f"naswot_{i}"] = np.float64(naswot(model, x))
        out[f"synflow_{i}"] = np.float64(synflow(model, x))
        out[f"snip_{i}"] = np.float64(snip(model, x, y))
        for name, value in export(model).items():
            out[f"params_{i}/{name}"] = value
    with open(__file__, "rb") as f:
        script_sha256 = hashlib.sha256(f.read()).hexdigest()
    out["provenance"] = np.asarray(
        json.dumps(
            {
                "oracle": "xautodl.models.cell_infers.tiny_network.TinyNetwork",
                "xautodl": metadata.version("xautodl"),
                "torch": torch.__version__,
                "script": "scripts/xautodl_nb201_oracle.py",
                "script_sha256": script_sha256,
                "command": " ".join(["python", *sys.argv]),
            }
        )
    )
    np.savez_compressed(args.out, **out)


if __name__ == "__main__":
    main()
