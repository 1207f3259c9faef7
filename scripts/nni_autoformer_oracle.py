"""Oracle by others for AutoFormer: Microsoft NNI's `AutoFormer` space on two subnets.

Builds AutoFormer subnets with NNI 3.0's `nni.nas.hub.pytorch.AutoFormer` (NNI's port
of microsoft/Cream's `Vision_TransformerSuper`, not ours), frozen to one architecture
with `model_space.freeze(sample)`, on a tiny space: embed dims 16 / 24, depths 2 / 3,
1 or 2 heads of NNI's fixed width 64, MLP ratios 2 / 3.5, 16x16 images in 4x4 patches
(16 patch tokens and a class token), 10 classes, AutoFormer's defaults otherwise:
pre-norm, q/k/v biases, relative position embeddings (NNI clips distances at
`img_size // patch_size` = 4), absolute position embedding, mean of the patch tokens
(`global_pooling`); drop-path off (`drop_path_rate=0`, NNI's default is 0.1). LayerNorm
gains and biases (PyTorch's 1 and 0) are redrawn uniformly from [0.5, 1.5] and
[-0.5, 0.5] so that a swapped or missing one shows.

Recorded for a batch of 8 random 16x16 images: the logits, NASWOT over the GELU inputs
(our taps; the binary code is input > 0, as for ReLUs; `naswot_gelu` below), snip and
log synflow (the definitions of `scripts/xautodl_nb201_oracle.py`, imported from it:
|w * g| and w * g summed over the Conv2d / Linear weights), the architectures in our
notation and every weight under the name our materialised network gives it. It does
not import jaxnas. `tests/test_nni_autoformer_oracle.py` loads the weights into
`autoformer.space(vit=..., patch_size=4, num_classes=10,
max_relative_position=4).materialize(g)` and compares.

Requires torch, nni 3.0 and xautodl (for the imported helper scripts), as for
`scripts/nni_nds_oracle.py`.

Usage:
  python scripts/nni_autoformer_oracle.py --out tests/fixtures/nni_autoformer_golden.npz
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
from nni.nas.hub.pytorch import AutoFormer  # noqa: E402
from nni_nds_oracle import PairOutput  # noqa: E402
from xautodl_nb201_oracle import snip, synflow  # noqa: E402

SPACE = dict(
    search_embed_dim=(16, 24),
    search_mlp_ratio=(2.0, 3.5),
    search_num_heads=(1, 2),
    search_depth=(2, 3),
    img_size=16,
    patch_size=4,
    num_labels=10,
    drop_path_rate=0.0,
)
ARCHS = (  # (embed dim, heads per layer, MLP ratio per layer)
    (24, (2, 1, 2), (3.5, 2.0, 3.5)),
    (16, (1, 2), (2.0, 3.5)),
)
CLASSES = SPACE["num_labels"]


def notation(arch):
    """Our string: `embed_dim=24|depth=3|num_heads=2,1,2|mlp_ratio=3.5,2,3.5`."""
    e, heads, ratios = arch
    return (
        f"embed_dim={e}|depth={len(heads)}|num_heads={','.join(map(str, heads))}|"
        f"mlp_ratio={','.join(f'{r:g}' for r in ratios)}"
    )


def nni_sample(arch):
    """NNI's architecture dict; layers beyond the depth take the first choice (unused)."""
    e, heads, ratios = arch
    sample = {"embed_dim": e, "depth": len(heads)}
    for i in range(max(SPACE["search_depth"])):
        sample[f"num_head_{i}"] = heads[i] if i < len(heads) else SPACE["search_num_heads"][0]
        sample[f"mlp_ratio_{i}"] = ratios[i] if i < len(ratios) else SPACE["search_mlp_ratio"][0]
    return sample


def naswot_gelu(model, x):
    """log|K| of the binary codes (input > 0) of every GELU, one forward pass (float64)."""
    codes = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: codes.append((i[0] > 0).flatten(1)))
        for m in model.modules()
        if isinstance(m, nn.GELU)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    c = torch.cat(codes, 1).double().numpy()
    k = c @ c.T + (1.0 - c) @ (1.0 - c).T
    return np.linalg.slogdet(k)[1]


def export(model):
    """{our materialised path: array}: HWIO conv kernel, [in, out] linear kernels."""
    flat = {}

    def linear(path, module):
        assert isinstance(module, nn.Linear), (path, module)
        flat[f"{path}/kernel"] = module.weight.detach().numpy().T
        flat[f"{path}/bias"] = module.bias.detach().numpy()

    def norm(path, module):
        assert isinstance(module, nn.LayerNorm), (path, module)
        flat[f"{path}/scale"] = module.weight.detach().numpy()
        flat[f"{path}/bias"] = module.bias.detach().numpy()

    flat["patch_embed/kernel"] = model.patch_embed.weight.detach().numpy().transpose(2, 3, 1, 0)
    flat["patch_embed/bias"] = model.patch_embed.bias.detach().numpy()
    flat["cls_token"] = model.cls_token.cls_token.detach().numpy()[0, 0]
    flat["pos_embed"] = model.pos_embed.pos_embed.detach().numpy()[0]
    for i, block in enumerate(model.blocks):
        path = f"blocks_{i}"
        norm(f"{path}/attn_layer_norm", block.attn_layer_norm)
        for name in ("q", "k", "v", "proj"):
            linear(f"{path}/{name}", getattr(block.attn, name))
        for ours, theirs in (("rel_pos_k", "rel_pos_embed_k"), ("rel_pos_v", "rel_pos_embed_v")):
            table = getattr(block.attn, theirs)
            flat[f"{path}/{ours}/table_v"] = table.embeddings_table_v.detach().numpy()
            flat[f"{path}/{ours}/table_h"] = table.embeddings_table_h.detach().numpy()
        norm(f"{path}/ffn_layer_norm", block.ffn_layer_norm)
        linear(f"{path}/fc1", block.fc1)
        linear(f"{path}/fc2", block.fc2)
    norm("norm", model.norm)
    linear("head", model.head)
    return flat


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(8, 3, SPACE["img_size"], SPACE["img_size"])
    y = torch.randint(0, CLASSES, (8,))
    out = {
        "x_nhwc": x.numpy().transpose(0, 2, 3, 1),
        "y": y.numpy().astype(np.int32),
        "archs": np.asarray([notation(a) for a in ARCHS]),
    }
    for i, arch in enumerate(ARCHS):
        net = AutoFormer(**SPACE).freeze(nni_sample(arch))
        assert len(net.blocks) == len(arch[1])
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.LayerNorm):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.5, 0.5)
        model = PairOutput(net).train()
        with torch.no_grad():
            out[f"logits_{i}"] = model(x)[1].numpy()
        out[f"naswot_{i}"] = np.float64(naswot_gelu(model, x))
        out[f"synflow_{i}"] = np.float64(synflow(model, x))
        out[f"snip_{i}"] = np.float64(snip(model, x, y))
        for name, value in export(net).items():
            out[f"params_{i}/{name}"] = value
    here = os.path.dirname(os.path.abspath(__file__))
    out["provenance"] = np.asarray(
        json.dumps(
            {
                "oracle": "nni.nas.hub.pytorch.AutoFormer",
                "nni": metadata.version("nni"),
                "torch": torch.__version__,
                "script": "scripts/nni_autoformer_oracle.py",
                "script_sha256": sha256(__file__),
                "helper_scripts": {
                    f"scripts/{name}": sha256(os.path.join(here, name))
                    for name in ("nni_nds_oracle.py", "xautodl_nb201_oracle.py")
                },
                "command": " ".join(["python", *sys.argv]),
            }
        )
    )
    np.savez_compressed(args.out, **out)


if __name__ == "__main__":
    main()
