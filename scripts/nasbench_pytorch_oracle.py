"""Oracle by others for NAS-Bench-101: `nasbench-pytorch` (PyPI) on a few cells.

Builds NB101 networks with `nasbench_pytorch.model.Network` (a PyTorch port of
google-research/nasbench's `model_builder.py` by R. Hlavacova, not ours): an 8-channel
stem, 3 stacks of 1 cell, 10 classes. The cells cover a full 7-vertex cell with 9 edges
whose vertex widths differ by one (so a wider vertex is truncated into a narrower one), a
7x7 matrix with vertices that pruning removes, and the pruned 3- and 2-vertex forms of the
benchmark's records (projections only). The package's own initialisation sets every
BatchNorm to scale 1, bias 0 and the classifier bias to 0; these are redrawn uniformly
from [0.5, 1.5) and [-0.5, 0.5) so that a misplaced one shows. Recorded for a batch of 8
random 8x8 images in train mode (batch statistics): the logits, NASWOT, snip and log
synflow (the definitions of `scripts/xautodl_nb201_oracle.py`, imported from it) and
every weight under the name our materialised network gives it (vertices keep their index
in the given matrix, the output vertex is 6, as `nb101.from_spec` places them). It does
not import jaxnas. `tests/test_nasbench_pytorch_oracle.py` loads the weights into
`nb101.space(...).materialize(nb101.from_spec(matrix, ops))` and compares.

Known difference from the reference, outside what is compared: `Network(momentum=0.997)`
passes TensorFlow's BatchNorm decay to `torch.nn.BatchNorm2d`, whose `momentum` is the
weight of the *new* batch (PyTorch's convention is the complement of TensorFlow's), and
only to the stem and projections (vertex convs keep PyTorch's 0.1). This changes only the
running statistics, which train mode does not read.

Requires the optional extra and nasbench-pytorch:
`pip install -e '.[torch]' nasbench-pytorch==1.3.1` (and xautodl==1.0.0, which the
imported helper script needs).

Usage:
  python scripts/nasbench_pytorch_oracle.py --out tests/fixtures/nasbench_pytorch_golden.npz
"""

import argparse
import hashlib
import json
import os
import sys
from importlib import metadata

import numpy as np
import torch
from nasbench_pytorch.model import Network
from nasbench_pytorch.model.model import Cell
from nasbench_pytorch.model.model_spec import ModelSpec
from torch import nn
from xautodl_nb201_oracle import naswot, snip, synflow

C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
CELLS = (
    (  # 9 edges; at 16 channels vertex 1 (6 wide) is truncated into vertex 4 (5 wide)
        [
            [0, 1, 1, 0, 0, 0, 1],
            [0, 0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        ["input", C3, MP, C1, C3, C1, "output"],
    ),
    (  # vertex 3 never reaches the output, vertex 4 is never reached, vertex 5 is isolated
        [
            [0, 1, 1, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        ["input", MP, C1, C3, C3, C1, "output"],
    ),
    ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", MP, "output"]),
    ([[0, 1], [0, 0]], ["input", "output"]),
)
STEM, STACKS, CELLS_PER_STACK, CLASSES = 8, 3, 1, 10


class PairOutput(nn.Module):
    """The network with xautodl's `(features, logits)` output, which the imported proxy
    helpers read."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return None, self.net(x)


def kept_vertices(matrix):
    """Indices (in `matrix`) of the vertices on an input -> output path, in order: the
    vertices `ModelSpec` keeps, so position p of its pruned matrix is vertex kept[p]."""
    m = np.asarray(matrix)
    n = len(m)
    forward, backward = {0}, {n - 1}
    for v in range(1, n):
        if any(m[u, v] for u in forward):
            forward.add(v)
    for v in range(n - 2, -1, -1):
        if any(m[v, w] for w in backward):
            backward.add(v)
    return sorted(forward & backward)


def export(model, matrix):
    """{our materialised path: array}: HWIO conv kernels, [in, out] linear kernel."""
    flat = {}
    n = len(matrix)
    ours = {v: (6 if v == n - 1 else v) for v in range(n)}  # given index -> ours
    kept = kept_vertices(matrix)

    def conv_bn(path, seq):  # Sequential(Conv2d, BatchNorm2d, ReLU)
        flat[f"{path}/conv/kernel"] = seq[0].weight.detach().numpy().transpose(2, 3, 1, 0)
        flat[f"{path}/bn/scale"] = seq[1].weight.detach().numpy()
        flat[f"{path}/bn/bias"] = seq[1].bias.detach().numpy()

    conv_bn("stem", model.layers[0].conv_bn_relu)
    cells = [layer for layer in model.layers if isinstance(layer, Cell)]
    for c, cell in enumerate(cells):
        name = f"stack{c // CELLS_PER_STACK}_cell{c % CELLS_PER_STACK}"
        pruned = cell.matrix.numpy()
        for p in range(1, len(pruned)):
            v = ours[kept[p]]
            if pruned[0, p]:
                conv_bn(f"{name}/proj_{v}", cell.input_op[p].conv_bn_relu)
            if p < len(pruned) - 1 and hasattr(cell.vertex_op[p], "conv3x3"):
                conv_bn(f"{name}/vertex_{v}/conv3x3", cell.vertex_op[p].conv3x3.conv_bn_relu)
            elif p < len(pruned) - 1 and hasattr(cell.vertex_op[p], "conv1x1"):
                conv_bn(f"{name}/vertex_{v}/conv1x1", cell.vertex_op[p].conv1x1.conv_bn_relu)
    flat["classifier/kernel"] = model.classifier.weight.detach().numpy().T
    flat["classifier/bias"] = model.classifier.bias.detach().numpy()
    return flat


def redraw_zero_initialised(model):
    """BatchNorm scale in [0.5, 1.5), BatchNorm and classifier biases in [-0.5, 0.5)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
        model.classifier.bias.uniform_(-0.5, 0.5)


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
    out = {"x_nhwc": x.numpy().transpose(0, 2, 3, 1), "y": y.numpy().astype(np.int32)}
    for i, (matrix, ops) in enumerate(CELLS):
        net = Network(
            ModelSpec(np.asarray(matrix), ops),
            num_labels=CLASSES,
            stem_out_channels=STEM,
            num_stacks=STACKS,
            num_modules_per_stack=CELLS_PER_STACK,
        )
        redraw_zero_initialised(net)
        model = PairOutput(net).train()
        out[f"matrix_{i}"] = np.asarray(matrix, np.int32)
        out[f"ops_{i}"] = np.asarray(ops)
        with torch.no_grad():
            out[f"logits_{i}"] = model(x)[1].numpy()
        out[f"naswot_{i}"] = np.float64(naswot(model, x))
        out[f"synflow_{i}"] = np.float64(synflow(model, x))
        out[f"snip_{i}"] = np.float64(snip(model, x, y))
        for name, value in export(net, matrix).items():
            out[f"params_{i}/{name}"] = value
    here = os.path.dirname(os.path.abspath(__file__))
    out["provenance"] = np.asarray(
        json.dumps(
            {
                "oracle": "nasbench_pytorch.model.Network",
                "nasbench-pytorch": metadata.version("nasbench-pytorch"),
                "torch": torch.__version__,
                "script": "scripts/nasbench_pytorch_oracle.py",
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
