"""Oracle by the NATS-Bench authors: their size-space network (xautodl) at a few widths.

Builds NATS-SSS networks the way the benchmark's API does
(`xautodl.models.get_cell_based_tiny_net` with `name="infer.shape.tiny"`, which returns
`xautodl.models.shape_infers.DynamicShapeTinyNet`: the authors' own code, not ours),
default PyTorch initialisation from a fixed seed, and records, for a batch of 8 random
8x8 images in train mode (batch statistics): the logits, NASWOT, snip and log synflow
(the definitions of `scripts/xautodl_nb201_oracle.py`, imported from it) and every weight
under the name our materialised network gives it. The widths cover cells that keep their
width (identity skip edge) and cells that change it (the skip edge becomes xautodl's
`FactorizedReduce`, a 1x1 conv + BN). It does not import jaxnas.
`tests/test_xautodl_nats_oracle.py` loads the weights into
`nats_sss.space().materialize(genotype)` and compares.

Requires the optional extra and xautodl: `pip install -e '.[torch]' xautodl==1.0.0`.

Usage:
  python scripts/xautodl_nats_oracle.py --out tests/fixtures/xautodl_nats_golden.npz
"""

import argparse
import hashlib
import json
import os
import sys
from importlib import metadata

import numpy as np
import torch
from xautodl.models import get_cell_based_tiny_net
from xautodl.models.cell_operations import FactorizedReduce, ResNetBasicblock
from xautodl_nb201_oracle import naswot, snip, synflow

# The fixed cell of the size space (NATS-Bench, `exps/NATS-Bench/main-sss.py`).
TOPOLOGY = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|"
)
# Layer widths: cells keeping their width, cells changing it up and down.
ARCHS = ("8:16:16:8:8", "8:16:8:16:8", "16:8:16:8:16")
CLASSES = 10


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
    for layer, cell in enumerate(model.cells):
        if isinstance(cell, ResNetBasicblock):  # layers 1 and 3: reduction blocks 1 and 2
            name = f"reduction{(layer + 1) // 2}"
            for part in ("conv_a", "conv_b"):
                op = getattr(cell, part).op  # Sequential(ReLU, Conv2d, BatchNorm2d)
                conv(f"{name}/{part}/conv", op[1])
                bn(f"{name}/{part}/bn", op[2])
            conv(f"{name}/downsample", cell.downsample[1])
            continue
        for e, edge in enumerate(cell.layers):  # edges in (0,1),(0,2),(1,2),(0,3).. order
            path = f"stage{layer // 2}_cell0/edge_{e}"
            if isinstance(edge, FactorizedReduce):  # skip edge changing the width
                conv(f"{path}/factorized_reduce/conv", edge.conv)
                bn(f"{path}/factorized_reduce/bn", edge.bn)
            elif hasattr(edge, "op"):  # ReLUConvBN
                conv(f"{path}/nor_conv_3x3/conv", edge.op[1])
                bn(f"{path}/nor_conv_3x3/bn", edge.op[2])
    bn("lastact", model.lastact[0])
    flat["classifier/kernel"] = model.classifier.weight.detach().numpy().T
    flat["classifier/bias"] = model.classifier.bias.detach().numpy()
    return flat


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


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
        config = {
            "name": "infer.shape.tiny",
            "channels": arch,
            "genotype": TOPOLOGY,
            "num_classes": CLASSES,
        }
        model = get_cell_based_tiny_net(config)
        model.train()
        with torch.no_grad():
            out[f"logits_{i}"] = model(x)[1].numpy()
        out[f"naswot_{i}"] = np.float64(naswot(model, x))
        out[f"synflow_{i}"] = np.float64(synflow(model, x))
        out[f"snip_{i}"] = np.float64(snip(model, x, y))
        for name, value in export(model).items():
            out[f"params_{i}/{name}"] = value
    here = os.path.dirname(os.path.abspath(__file__))
    out["provenance"] = np.asarray(
        json.dumps(
            {
                "oracle": "xautodl.models.shape_infers.DynamicShapeTinyNet",
                "xautodl": metadata.version("xautodl"),
                "torch": torch.__version__,
                "script": "scripts/xautodl_nats_oracle.py",
                "script_sha256": sha256(__file__),
                "helper_scripts": {
                    "scripts/xautodl_nb201_oracle.py": sha256(
                        os.path.join(here, "xautodl_nb201_oracle.py")
                    )
                },
                "command": " ".join(["python", *sys.argv]),
            }
        )
    )
    np.savez_compressed(args.out, **out)


if __name__ == "__main__":
    main()
