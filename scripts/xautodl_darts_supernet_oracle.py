"""Oracle by others for TE-NAS's DARTS supernet: xautodl's `NASNetworkDARTS`.

Builds DARTS search networks with
`xautodl.models.cell_searchs.search_model_darts_nasnet.NASNetworkDARTS` (D-X-Y's DARTS
supernet, the network TE-NAS's reference code builds as `nasnet-super`; not ours): a
stem (3x3 conv + BN), 3N NASNet-style search cells (N at C, a reduction cell at 2C,
N - 1 at 2C, a reduction cell at 4C, N - 1 at 4C), each edge a `MixedOp` summing
`w * op(x)` over xautodl's DARTS ops, BN + ReLU, global pooling and a linear layer.
Its `forward` weights the edges by the softmax of `arch_normal_parameters` /
`arch_reduce_parameters` (f32[14, 8] each). xautodl's op names differ from DARTS':
its `dua_sepc_kxk` is DARTS' `sep_conv_kxk`, its `dil_sepc_kxk` DARTS' `dil_conv_kxk`.

Settings (`SETTINGS`): C=2, N=1 (normal, reduction, reduction: the last cell's first
input is factorised-reduced) on 16x16 images; C=1 (TE-NAS's width), N=2, stem multiplier
3 (normal cells after a normal and after a reduction cell) on 16x16 images; C=1, N=1 on
10x10 images (odd 5x5 maps into the second reduction cell) with xautodl's ops given in
a seeded permuted order, so that the op order is carried through. Per setting the arch
logits are seeded normal draws with about 40 % of them set to -1000 (weight exactly 0
after the softmax: TE-NAS's pruned ops; every edge keeps at least one op), BatchNorm
affine parameters are seeded random (the rest is PyTorch's default initialisation), every
weight is then rounded to a float16 value (so that the fixture stores it exactly in half
the bytes), and the model runs in float32 in train mode (batch statistics) on a seeded
batch of 4 random images.

Recorded per setting `i`: the images `x_nhwc_{i}`, the logits, the op weights
`op_weights_{i}` f32[2, 14, 8] (normal then reduction cell, the softmax computed by torch
in float32), our op names in the network's op order (`ops_{i}`; xautodl's in
`xautodl_ops_{i}`), and every weight under the name our `darts_supernet.network` gives it
(HWIO conv kernels, an [in, out] linear kernel), packed as one float16 vector `params_{i}`
with its `(name, shape)` list in `param_layout_{i}` (thousands of small npz members would
make the file ~8x larger). The settings are in `settings`. It does not import jaxnas.
`tests/test_xautodl_darts_supernet_oracle.py` loads the weights into
`darts_supernet.network(weights, depth=0, ...)` and compares.

Requires the optional extra and xautodl: `pip install -e '.[torch]' xautodl==1.0.0`.

Usage:
  python scripts/xautodl_darts_supernet_oracle.py \
      --out tests/fixtures/xautodl_darts_supernet_golden.npz
"""

import argparse
import hashlib
import json
import sys
from importlib import metadata

import numpy as np
import torch
from torch import nn
from xautodl.models.cell_operations import (
    POOLING,
    DualSepConv,
    FactorizedReduce,
    Identity,
    ReLUConvBN,
    SearchSpaceNames,
    SepConv,
    Zero,
)
from xautodl.models.cell_searchs.search_model_darts_nasnet import NASNetworkDARTS

OURS = {  # xautodl's op name -> DARTS' (our) name
    "dua_sepc_3x3": "sep_conv_3x3",
    "dua_sepc_5x5": "sep_conv_5x5",
    "dil_sepc_3x3": "dil_conv_3x3",
    "dil_sepc_5x5": "dil_conv_5x5",
}
SETTINGS = (
    dict(channels=2, cells_per_stage=1, stem_multiplier=1, size=16, permute_ops=False),
    dict(channels=1, cells_per_stage=2, stem_multiplier=3, size=16, permute_ops=False),
    dict(channels=1, cells_per_stage=1, stem_multiplier=1, size=10, permute_ops=True),
)
STEPS, MULTIPLIER, BATCH, CLASSES = 4, 4, 4, 10
PRUNED, PRUNE_FRACTION = -1000.0, 0.4


def edges():
    """Our edge order `(node, input)`; xautodl's `edge2index` must agree."""
    return [(i, j) for i in range(STEPS) for j in range(2 + i)]


def export(model, ops):
    """{our parameter path: array} for every weight of `model` (arch logits aside)."""
    flat = {}

    def conv(path, module):
        assert module.bias is None, path
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
            assert module.stride == 2, path
            conv(f"{path}/conv_1", module.convs[0])
            conv(f"{path}/conv_2", module.convs[1])
            bn(f"{path}/bn", module.bn)
        elif isinstance(module, DualSepConv):
            sep_half(f"{path}/half1", module.op_a)
            sep_half(f"{path}/half2", module.op_b)
        elif isinstance(module, SepConv):
            sep_half(path, module)
        elif isinstance(module, ReLUConvBN):
            conv(f"{path}/conv", module.op[1])
            bn(f"{path}/bn", module.op[2])
        elif isinstance(module, POOLING):
            assert module.preprocess is None, path
        else:
            assert isinstance(module, (Identity, Zero)), (path, type(module))

    conv("stem/conv", model.stem[0])
    bn("stem/bn", model.stem[1])
    for k, cell in enumerate(model.cells):
        op(f"cell{k}/preprocess0", cell.preprocess0)
        op(f"cell{k}/preprocess1", cell.preprocess1)
        for e, (i, j) in enumerate(edges()):
            key = f"{i}<-{j}"
            assert cell.edge2index[key] == e, (key, cell.edge2index[key], e)
            for name, module in zip(ops, cell.edges[key]._ops, strict=True):
                op(f"cell{k}/edge_{e}/{name}", module)
    bn("lastact", model.lastact[0])
    flat["classifier/kernel"] = model.classifier.weight.detach().numpy().T
    flat["classifier/bias"] = model.classifier.bias.detach().numpy()
    exported = sum(v.size for v in flat.values())
    assert exported == sum(p.numel() for p in model.get_weights()), "a weight was not exported"
    return flat


def arch_logits(generator, num_ops):
    """f32[2, E, O] normal logits, about PRUNE_FRACTION of them PRUNED, >= 1 kept per edge."""
    logits = torch.randn(2, len(edges()), num_ops, generator=generator)
    pruned = torch.rand(2, len(edges()), num_ops, generator=generator) < PRUNE_FRACTION
    keep = torch.randint(0, num_ops, (2, len(edges())), generator=generator)
    all_pruned = pruned.all(-1)
    pruned[all_pruned, keep[all_pruned]] = False
    return torch.where(pruned, torch.full_like(logits, PRUNED), logits)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny layers: a thread pool makes each op ~100x slower here
    space = list(SearchSpaceNames["darts"])
    out = {"settings": np.asarray(json.dumps(SETTINGS))}
    for i, setting in enumerate(SETTINGS):
        torch.manual_seed(i)
        generator = torch.Generator().manual_seed(100 + i)
        order = space
        if setting["permute_ops"]:
            order = [space[k] for k in torch.randperm(len(space), generator=generator)]
        model = NASNetworkDARTS(
            setting["channels"],
            setting["cells_per_stage"],
            STEPS,
            MULTIPLIER,
            setting["stem_multiplier"],
            CLASSES,
            order,
            affine=True,
            track_running_stats=True,
        )
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.weight.uniform_(0.5, 1.5, generator=generator)
                    module.bias.normal_(0.0, 0.2, generator=generator)
            for p in model.get_weights():  # float16 values: stored exactly in half the bytes
                p.copy_(p.half().float())
            logits = arch_logits(generator, len(order))
            model.arch_normal_parameters.copy_(logits[0])
            model.arch_reduce_parameters.copy_(logits[1])
            weights = torch.stack(
                [
                    torch.softmax(model.arch_normal_parameters, dim=1),
                    torch.softmax(model.arch_reduce_parameters, dim=1),
                ]
            )
            assert ((weights == 0) == (logits == PRUNED)).all(), "a pruned op kept weight"
            x = torch.randn(BATCH, 3, setting["size"], setting["size"], generator=generator)
            model.train()
            out[f"logits_{i}"] = model(x)[1].numpy()
        ops = [OURS.get(name, name) for name in order]
        out[f"x_nhwc_{i}"] = x.numpy().transpose(0, 2, 3, 1)
        out[f"op_weights_{i}"] = weights.numpy().astype(np.float32)
        out[f"ops_{i}"] = np.asarray(ops)
        out[f"xautodl_ops_{i}"] = np.asarray(order)
        flat = export(model, ops)
        out[f"params_{i}"] = np.concatenate([v.reshape(-1) for v in flat.values()])
        out[f"params_{i}"] = out[f"params_{i}"].astype(np.float16)
        out[f"param_layout_{i}"] = np.asarray(
            json.dumps([[name, list(v.shape)] for name, v in flat.items()])
        )
    out["provenance"] = np.asarray(
        json.dumps(
            {
                "oracle": "xautodl.models.cell_searchs.search_model_darts_nasnet.NASNetworkDARTS",
                "xautodl": metadata.version("xautodl"),
                "torch": torch.__version__,
                "script": "scripts/xautodl_darts_supernet_oracle.py",
                "script_sha256": sha256(__file__),
                "command": " ".join(["python", *sys.argv]),
            }
        )
    )
    np.savez_compressed(args.out, **out)


if __name__ == "__main__":
    main()
