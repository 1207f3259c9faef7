"""Oracle by others for the NDS cell spaces: Microsoft NNI's NDS networks, one cell each.

Builds one network per NDS cell space with NNI 3.0's model spaces
(`nni.nas.hub.pytorch.nasnet`: `NASNet`, `AmoebaNet`, `PNAS`, `ENAS`, `DARTS`, NNI's
port of pycls' `nas.py`, not ours), frozen to one architecture with
`model_space.freeze(sample)`: width C=4, 3 cells (normal, reduction, reduction: NNI
stacks `num_cells // 3` cells per stage and reduces at the start of stages 2 and 3, as
`darts.space` does), CIFAR stem (3x3 conv to 3C + BN), no auxiliary head, no drop-path.
Each genotype draws its inputs at random (seed 0, repeats allowed as in NDS) and deals
the space's ops over its edges so that every NNI candidate op occurs at least once. NNI's
`DARTS` space has no `none` op (NNI: "handled in the differentiable implementation"),
so the `nds_darts` genotype uses the other seven; `none` is covered by
`scripts/xautodl_darts_oracle.py`. BatchNorm scales and biases (PyTorch's 1 and 0) are
redrawn uniformly from [0.5, 1.5] and [-0.5, 0.5] so that a swapped or missing one shows.

Recorded for a batch of 8 random 8x8 images in train mode (batch statistics): the
logits, NASWOT, snip and log synflow (the definitions of `scripts/xautodl_nb201_oracle.py`,
imported from it), the genotypes in DARTS notation and every weight under the name our
materialised network gives it. It does not import jaxnas. `tests/test_nni_nds_oracle.py`
loads the weights into `nds_cells.space(name, channels=4, num_cells=3).materialize(g)`
and compares.

Requires torch, nni 3.0 and xautodl (for the imported helper script), in a venv of its
own: nni 3.0 imports pytorch-lightning without declaring it (2.0.9 works; its
`pkg_resources` needs setuptools<70), and runs on torch 2.13 and numpy 2.4 (it warns
that it does not know some torch classes). `python -m venv ../venv-nni &&
../venv-nni/bin/pip install torch==2.13.0 nni==3.0 pytorch-lightning==2.0.9
"setuptools<70" && ../venv-nni/bin/pip install --no-deps xautodl==1.0.0`, then
`../venv-nni/bin/python scripts/nni_nds_oracle.py ...`.

Usage:
  python scripts/nni_nds_oracle.py --out tests/fixtures/nni_nds_golden.npz
"""

import argparse
import hashlib
import json
import os
import sys
import warnings
from importlib import metadata

import numpy as np
import torch
from torch import nn

# NNI 3.0 warns, once per torch class it does not know, that torch 2.x may be unsupported.
warnings.filterwarnings("ignore", category=RuntimeWarning, module="nni")
from nni.nas.hub.pytorch import nasnet  # noqa: E402
from xautodl_nb201_oracle import naswot, snip, synflow  # noqa: E402

# our space name -> NNI model space
SPACES = {
    "nds_nasnet": nasnet.NASNet,
    "nds_amoeba": nasnet.AmoebaNet,
    "nds_pnas": nasnet.PNAS,
    "nds_enas": nasnet.ENAS,
    "nds_darts": nasnet.DARTS,
}
CHANNELS, CELLS, CLASSES, INPUTS = 4, 3, 10, 2


class PairOutput(nn.Module):
    """The network with xautodl's `(features, logits)` output, which the imported proxy
    definitions read."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return None, self.net(x)


def genotype(space, rng):
    """{"normal"/"reduce": [(op, input)] per edge}: random inputs, every op dealt once.

    Drawn again until each cell reads both of its inputs: an unread input's
    preprocessing gets no gradient, which the imported snip and synflow reject.
    """
    ops, nodes = space.op_candidates, space.num_nodes_per_cell
    edges = 2 * 2 * nodes
    dealt = [ops[i % len(ops)] for i in rng.permutation(edges)]
    while True:
        inputs = [int(rng.integers(0, INPUTS + (e // 2) % nodes)) for e in range(edges)]
        halves = (inputs[: edges // 2], inputs[edges // 2 :])
        if all({0, 1} <= set(half) for half in halves):
            pairs = list(zip(dealt, inputs))
            return {"normal": pairs[: edges // 2], "reduce": pairs[edges // 2 :]}


def concat(space, edges):
    """The nodes a cell concatenates (NNI's `merge_op`)."""
    nodes = range(INPUTS, INPUTS + space.num_nodes_per_cell)
    if space.merge_op == "all":
        return list(nodes)
    read = {i for _, i in edges}
    return [n for n in nodes if n not in read]


def darts_string(space, g):
    return (
        f"Genotype(normal={g['normal']!r}, normal_concat={concat(space, g['normal'])!r}, "
        f"reduce={g['reduce']!r}, reduce_concat={concat(space, g['reduce'])!r})"
    )


def nni_sample(g):
    """NNI's architecture dict: `{cell}/op_{node}_{k}` and `{cell}/input_{node}_{k}`."""
    sample = {}
    for cell, edges in g.items():
        for e, (op, i) in enumerate(edges):
            sample[f"{cell}/op_{e // 2 + INPUTS}_{e % 2}"] = op
            sample[f"{cell}/input_{e // 2 + INPUTS}_{e % 2}"] = [i]
    return sample


def export(model, g):
    """{our materialised path: array}: HWIO conv kernels, [in, out] linear kernel."""
    flat = {}

    def conv(path, module):
        assert isinstance(module, nn.Conv2d), (path, module)
        flat[f"{path}/kernel"] = module.weight.detach().numpy().transpose(2, 3, 1, 0)

    def bn(path, module):
        assert isinstance(module, nn.BatchNorm2d), (path, module)
        flat[f"{path}/scale"] = module.weight.detach().numpy()
        flat[f"{path}/bias"] = module.bias.detach().numpy()

    def chain(path, layers):  # ReLU, conv(s), BN
        convs = [m for m in layers if isinstance(m, nn.Conv2d)]
        for k, module in enumerate(convs):
            conv(f"{path}/conv{k}", module)
        bn(f"{path}/bn", layers[-1])

    def op(path, module):
        if isinstance(module, nasnet.FactorizedReduce):
            conv(f"{path}/conv_1", module.conv_1)
            conv(f"{path}/conv_2", module.conv_2)
            bn(f"{path}/bn", module.bn)
        elif isinstance(module, nasnet.ReLUConvBN):  # preprocessing only
            conv(f"{path}/conv", module[1])
            bn(f"{path}/bn", module[2])
        elif isinstance(module, (nasnet.SepConv, nasnet.DilSepConv)):  # two ReLU-dw-pw-BN
            chain(f"{path}/half1", list(module)[:4])
            chain(f"{path}/half2", list(module)[4:])
        elif isinstance(module, nn.Sequential):  # conv_*, dil_conv_*
            chain(path, list(module))
        else:
            assert not list(module.parameters()), (path, module)

    conv("stem/conv", model.stem[0])
    bn("stem/bn", model.stem[1])
    # NNI reduces in the first cell of every stage but the first.
    cells = [
        (s > 0 and k == 0, cell)
        for s, stage in enumerate(model.stages)
        for k, cell in enumerate(stage)
    ]
    assert len(cells) == CELLS
    for c, (reduction, cell) in enumerate(cells):
        op(f"cell{c}/preprocess0", cell.preprocessor.pre0)
        op(f"cell{c}/preprocess1", cell.preprocessor.pre1)
        edges = g["reduce" if reduction else "normal"]
        for e, (name, _) in enumerate(edges):
            op(f"cell{c}/edge_{e}/{name}", cell.ops[e // 2][e % 2])
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
    rng = np.random.default_rng(0)
    x = torch.randn(8, 3, 8, 8)
    y = torch.randint(0, CLASSES, (8,))
    out = {
        "x_nhwc": x.numpy().transpose(0, 2, 3, 1),
        "y": y.numpy().astype(np.int32),
        "spaces": np.asarray(list(SPACES)),
    }
    genotypes = []
    for i, space_cls in enumerate(SPACES.values()):
        space = space_cls(width=CHANNELS, num_cells=CELLS, dataset="cifar")
        g = genotype(space, rng)
        genotypes.append(darts_string(space, g))
        net = space.freeze(nni_sample(g))
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.5, 0.5)
        model = PairOutput(net).train()
        with torch.no_grad():
            out[f"logits_{i}"] = model(x)[1].numpy()
        out[f"naswot_{i}"] = np.float64(naswot(model, x))
        out[f"synflow_{i}"] = np.float64(synflow(model, x))
        out[f"snip_{i}"] = np.float64(snip(model, x, y))
        for name, value in export(net, g).items():
            out[f"params_{i}/{name}"] = value
    out["genotypes"] = np.asarray(genotypes)
    here = os.path.dirname(os.path.abspath(__file__))
    out["provenance"] = np.asarray(
        json.dumps(
            {
                "oracle": "nni.nas.hub.pytorch.nasnet (NASNet, AmoebaNet, PNAS, ENAS, DARTS)",
                "nni": metadata.version("nni"),
                "torch": torch.__version__,
                "script": "scripts/nni_nds_oracle.py",
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
