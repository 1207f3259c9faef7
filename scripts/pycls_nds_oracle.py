"""Oracle by the NDS authors: pycls' `AnyNet` (PyPI `pycls` 0.1.1) for NDS ResNet / ResNeXt.

Builds the CIFAR networks of the NDS ResNet and ResNeXt-A design spaces with
`pycls.models.anynet.AnyNet` (facebookresearch's own code, not ours): `res_stem_cifar`
with 16 channels, three stages with strides 1, 2, 2, `res_basic_block` or
`res_bottleneck_block`, 10 classes. pycls takes a group *width* where NDS (and our
genotype) names the number of groups g, so `gws = w_b // g` with
`w_b = round(w * bot_mul)`. The architectures cover an identity and a projection
shortcut, a stage of two blocks and groups 1, 2 and 4. pycls initialises every
BatchNorm to scale 1, bias 0 and the classifier bias to 0; these are redrawn uniformly
from [0.5, 1.5) and [-0.5, 0.5) so that a misplaced one shows. Recorded for a batch of
8 random 8x8 images in train mode (batch statistics): the logits, NASWOT, snip and log
synflow (the definitions of `scripts/xautodl_nb201_oracle.py`, imported from it) and
every weight under the name our materialised network gives it. It does not import
jaxnas. `tests/test_pycls_nds_oracle.py` loads the weights into
`nds.space(name).materialize(genotype)` and compares.

Requires the optional extra, pycls and xautodl (for the imported helper script):
`pip install -e '.[torch]' yacs==0.1.8 xautodl==1.0.0 && pip install --no-deps
pycls==0.1.1` (its other declared dependencies, opencv-python and simplejson, serve
its data loaders only).

Usage:
  python scripts/pycls_nds_oracle.py --out tests/fixtures/pycls_nds_golden.npz
"""

import argparse
import hashlib
import json
import os
import sys
from importlib import metadata

import numpy as np
import torch
from pycls.models.anynet import AnyNet
from torch import nn
from xautodl_nb201_oracle import naswot, snip, synflow

ARCHS = (
    ("nds_resnet", "depths=1,2,1|widths=16,24,16"),
    ("nds_resnext_a", "depths=1,1,1|widths=16,32,16|bot_muls=0.25,0.5,1|groups=1,2,4"),
)
STEM, STRIDES, CLASSES = 16, (1, 2, 2), 10


class PairOutput(nn.Module):
    """The network with xautodl's `(features, logits)` output, which the imported proxy
    helpers read."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return None, self.net(x)


def anynet(space, arch):
    fields = dict(part.split("=") for part in arch.split("|"))
    ds = [int(v) for v in fields["depths"].split(",")]
    ws = [int(v) for v in fields["widths"].split(",")]
    kwargs = dict(stem_type="res_stem_cifar", stem_w=STEM, ds=ds, ws=ws, ss=list(STRIDES))
    if space == "nds_resnet":
        return AnyNet(**kwargs, block_type="res_basic_block", bms=[], gws=[], se_r=None, nc=CLASSES)
    bms = [float(v) for v in fields["bot_muls"].split(",")]
    groups = [int(v) for v in fields["groups"].split(",")]
    gws = [int(round(w * m)) // g for w, m, g in zip(ws, bms, groups)]
    return AnyNet(
        **kwargs, block_type="res_bottleneck_block", bms=bms, gws=gws, se_r=None, nc=CLASSES
    )


def our_name(path):
    """pycls module path -> ours: `s1.b1.f.a` -> `s1/b1/a/conv`, `s1.b1.f.a_bn` ->
    `s1/b1/a/bn`, `s1.b1.proj` / `s1.b1.bn` -> `s1/b1/proj/conv` / `.../proj/bn`."""
    parts = path.split(".")
    if parts[0] == "stem":
        return "/".join(parts)
    stage, block, *rest = parts
    if rest == ["proj"]:
        return f"{stage}/{block}/proj/conv"
    if rest == ["bn"]:
        return f"{stage}/{block}/proj/bn"
    layer = rest[1]  # rest = ["f", "a" | "a_bn" | "b" | ...]
    return f"{stage}/{block}/{layer[0]}/{'bn' if layer.endswith('_bn') else 'conv'}"


def export(model):
    """{our materialised path: array}: HWIO conv kernels, [in, out] linear kernel."""
    flat = {}
    for path, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            kernel = module.weight.detach().numpy().transpose(2, 3, 1, 0)
            flat[f"{our_name(path)}/kernel"] = kernel
        elif isinstance(module, nn.BatchNorm2d):
            flat[f"{our_name(path)}/scale"] = module.weight.detach().numpy()
            flat[f"{our_name(path)}/bias"] = module.bias.detach().numpy()
    flat["head/kernel"] = model.head.fc.weight.detach().numpy().T
    flat["head/bias"] = model.head.fc.bias.detach().numpy()
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
        "spaces": np.asarray([s for s, _ in ARCHS]),
        "archs": np.asarray([a for _, a in ARCHS]),
    }
    for i, (space, arch) in enumerate(ARCHS):
        net = anynet(space, arch)
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.5, 0.5)
            net.head.fc.bias.uniform_(-0.5, 0.5)
        model = PairOutput(net).train()
        with torch.no_grad():
            out[f"logits_{i}"] = model(x)[1].numpy()
        out[f"naswot_{i}"] = np.float64(naswot(model, x))
        out[f"synflow_{i}"] = np.float64(synflow(model, x))
        out[f"snip_{i}"] = np.float64(snip(model, x, y))
        for name, value in export(net).items():
            out[f"params_{i}/{name}"] = value
    here = os.path.dirname(os.path.abspath(__file__))
    out["provenance"] = np.asarray(
        json.dumps(
            {
                "oracle": "pycls.models.anynet.AnyNet",
                "pycls": metadata.version("pycls"),
                "torch": torch.__version__,
                "script": "scripts/pycls_nds_oracle.py",
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
