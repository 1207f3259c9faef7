"""Oracle by others for DARTS cells: xautodl's `NASNetonCIFAR` on two genotypes.

Builds DARTS evaluation networks with
`xautodl.models.cell_infers.nasnet_cifar.NASNetonCIFAR` (D-X-Y's implementation of the
DARTS / NASNet CIFAR network, used for GDAS and SETN; not ours): C=4, N=1 (three cells:
normal, reduction, reduction, so a normal and a reduction cell, and a cell after a
reduction cell whose first input is factorised-reduced), stem multiplier 3, no auxiliary
head, BatchNorm with affine parameters. DARTS' op names map to xautodl's
(`SEP_AND_DIL`): DARTS' `sep_conv_kxk` (ReLU, depthwise, pointwise, BN, twice) is
xautodl's `dua_sepc_kxk`, DARTS' `dil_conv_kxk` (ReLU, dilated depthwise, pointwise, BN)
its `dil_sepc_kxk`; the others share names.

One documented difference is removed: `NASNetonCIFAR` applies BN + ReLU (`lastact`)
before global pooling, which DARTS' `NetworkCIFAR` (quark0/darts `cnn/model.py`) does
not; the oracle sets `lastact` to the identity, and everything else runs as xautodl
wrote it. (Its cells key edges by `"node<-input"`, so a node may not read one input
twice; DARTS' genotypes never do.)

Recorded for a batch of 8 random 8x8 images in train mode (batch statistics): the
logits, NASWOT, snip and log synflow (the definitions of `scripts/xautodl_nb201_oracle.py`,
imported from it), the genotypes in DARTS notation and every weight under the name our
materialised network gives it. It does not import jaxnas.
`tests/test_xautodl_darts_oracle.py` loads the weights into
`darts.space(channels=4, num_cells=3, cell_ops=DARTS_OPS, affine_ops=True,
pool_bn=False).materialize(genotype)` and compares.

Requires the optional extra and xautodl: `pip install -e '.[torch]' xautodl==1.0.0`.

Usage:
  python scripts/xautodl_darts_oracle.py --out tests/fixtures/xautodl_darts_golden.npz
"""

import argparse
import ast
import hashlib
import json
import os
import sys
from importlib import metadata

import numpy as np
import torch
from torch import nn
from xautodl.models.cell_infers.nasnet_cifar import NASNetonCIFAR
from xautodl.models.cell_operations import DualSepConv, FactorizedReduce, SepConv
from xautodl_nb201_oracle import naswot, snip, synflow

GENOTYPES = (
    # DARTS_V2, the genotype of the DARTS paper (quark0/darts `cnn/genotypes.py`).
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])",
    # Every DARTS op, `none` included, on cell inputs and nodes, at both strides.
    "Genotype(normal=[('dil_conv_5x5', 0), ('avg_pool_3x3', 1), ('sep_conv_5x5', 2), "
    "('none', 1), ('max_pool_3x3', 3), ('skip_connect', 2), ('dil_conv_3x3', 4), "
    "('sep_conv_3x3', 0)], normal_concat=[2, 3, 4, 5], reduce=[('skip_connect', 0), "
    "('sep_conv_5x5', 1), ('avg_pool_3x3', 0), ('dil_conv_5x5', 2), ('none', 0), "
    "('sep_conv_3x3', 3), ('dil_conv_3x3', 1), ('max_pool_3x3', 4)], "
    "reduce_concat=[2, 3, 4, 5])",
)
SEP_AND_DIL = {
    "sep_conv_3x3": "dua_sepc_3x3",
    "sep_conv_5x5": "dua_sepc_5x5",
    "dil_conv_3x3": "dil_sepc_3x3",
    "dil_conv_5x5": "dil_sepc_5x5",
}
CHANNELS, N, STEM_MULTIPLIER, CLASSES = 4, 1, 3, 10


def parse(text):
    """A DARTS `Genotype(...)` string -> {field: value} (lists of (op, input) pairs)."""
    call = ast.parse(text, mode="eval").body
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords}


def xautodl_genotype(darts):
    """xautodl's form: per cell, one tuple of (op, input) pairs per node."""
    out = {}
    for cell in ("normal", "reduce"):
        edges = [(SEP_AND_DIL.get(op, op), i) for op, i in darts[cell]]
        out[cell] = [tuple(edges[2 * j : 2 * j + 2]) for j in range(len(edges) // 2)]
        out[f"{cell}_concat"] = list(darts[f"{cell}_concat"])
    return out


def export(model, darts):
    """{our materialised path: array}: HWIO conv kernels, [in, out] linear kernel."""
    flat = {}

    def conv(path, module):
        flat[f"{path}/kernel"] = module.weight.detach().numpy().transpose(2, 3, 1, 0)

    def bn(path, module):
        flat[f"{path}/scale"] = module.weight.detach().numpy()
        flat[f"{path}/bias"] = module.bias.detach().numpy()

    def sep_half(path, module):  # xautodl SepConv: Sequential(ReLU, dw, pw, BN)
        conv(f"{path}/conv0", module.op[1])
        conv(f"{path}/conv1", module.op[2])
        bn(f"{path}/bn", module.op[3])

    def op(path, module):
        if isinstance(module, FactorizedReduce):
            conv(f"{path}/conv_1", module.convs[0])
            conv(f"{path}/conv_2", module.convs[1])
            bn(f"{path}/bn", module.bn)
        elif isinstance(module, DualSepConv):
            sep_half(f"{path}/half1", module.op_a)
            sep_half(f"{path}/half2", module.op_b)
        elif isinstance(module, SepConv):
            sep_half(path, module)
        elif hasattr(module, "op") and isinstance(module.op, nn.Sequential):  # ReLUConvBN
            conv(f"{path}/conv", module.op[1])
            bn(f"{path}/bn", module.op[2])

    conv("stem/conv", model.stem[0])
    bn("stem/bn", model.stem[1])
    for i, cell in enumerate(model.cells):
        op(f"cell{i}/preprocess0", cell.preprocess0)
        op(f"cell{i}/preprocess1", cell.preprocess1)
        edges = darts["reduce" if cell.reduction else "normal"]
        for e, (name, source) in enumerate(edges):
            op(f"cell{i}/edge_{e}/{name}", cell.edges[f"{e // 2 + 2}<-{source}"])
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
        "genotypes": np.asarray(GENOTYPES),
    }
    for i, text in enumerate(GENOTYPES):
        darts = parse(text)
        model = NASNetonCIFAR(CHANNELS, N, STEM_MULTIPLIER, CLASSES, xautodl_genotype(darts), False)
        model.lastact = nn.Identity()  # DARTS' NetworkCIFAR pools the last cell directly
        model.train()
        with torch.no_grad():
            out[f"logits_{i}"] = model(x)[1].numpy()
        out[f"naswot_{i}"] = np.float64(naswot(model, x))
        out[f"synflow_{i}"] = np.float64(synflow(model, x))
        out[f"snip_{i}"] = np.float64(snip(model, x, y))
        for name, value in export(model, darts).items():
            out[f"params_{i}/{name}"] = value
    here = os.path.dirname(os.path.abspath(__file__))
    out["provenance"] = np.asarray(
        json.dumps(
            {
                "oracle": "xautodl.models.cell_infers.nasnet_cifar.NASNetonCIFAR",
                "xautodl": metadata.version("xautodl"),
                "torch": torch.__version__,
                "script": "scripts/xautodl_darts_oracle.py",
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
