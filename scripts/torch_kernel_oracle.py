"""Independent PyTorch oracle for the kernel and gradient proxies on tiny NB201 networks.

Written from the papers and the reference codes' behaviour as described in
shared/docs/reference.md (§A.2-A.6, A.13, A.15, A.16), without importing jaxnas. Each
proxy is computed the way its reference computes it: per-sample Python loops,
`named_parameters` walks, forward hooks, float64 NumPy accumulation.

  * `TenasNetwork`: NB201's `TinyNetwork` with TE-NAS's knobs (channels, cells per
    stage, number of stages = `depth`, optional stem): the C=3/N=1 NTK network and the
    thin C=1, stem-less, one-cell linear-region network.
  * `ntk`: TE-NAS `get_ntk_n`: per sample, `logit[i].backward(ones)`, gradients of every
    parameter whose name contains "weight"; Theta = G G^T.
  * `linear_regions`: hooks on every `nn.ReLU` with 4-D input, sign of the output,
    forward in chunks (train-mode BN per chunk), distinct rows (`torch.unique`) and the
    TE-NAS fp16-free formula sum_i 1 / #{j: code_j = code_i}.
  * `knas_paper` / `knas_code`: batch-1 forward/backward per sample; the mean Gram
    matrix, and the KNAS `procedure` statistic (first 11 tensors with >= 50 entries,
    first 50 entries, two halves).
  * `zico`, `lswag`, `swap`, `meco`, `az_components` as in their references.

Requires the optional extra: `pip install -e '.[torch]'` (torch==2.13.0, CPU).

Usage:
  python scripts/torch_kernel_oracle.py golden --out tests/fixtures/kernel_proxies_golden.npz
"""

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_nb201_oracle as nb  # noqa: E402


class TenasNetwork(nn.Module):
    """NB201 macro network with TE-NAS's `TinyNetworkDarts` knobs (`depth`, `use_stem`)."""

    def __init__(
        self,
        genotype,
        channels,
        cells_per_stage,
        num_stages=3,
        use_stem=True,
        in_channels=3,
        num_classes=10,
    ):
        super().__init__()
        c = channels
        self.use_stem = use_stem
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        )
        layers, c_prev = [], c
        for s in range(num_stages):
            cs = c * 2**s
            if s > 0:
                layers.append(nb.ResNetBlock(c_prev, cs))
            layers.extend(nb.Cell(genotype, cs) for _ in range(cells_per_stage))
            c_prev = cs
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(c_prev, num_classes)

    def blocks(self, x):
        """Outputs of the stem (if used) and of every cell / reduction block."""
        feats = []
        if self.use_stem:
            x = self.stem(x)
            feats.append(x)
        for layer in self.cells:
            x = layer(x)
            feats.append(x)
        return feats

    def head(self, x):
        return self.classifier(self.lastact(x).mean(dim=(2, 3)))

    def forward(self, x):
        return self.head(self.blocks(x)[-1])


def quantize_(model):
    """Rounds every parameter to a float16-representable value, in place.

    The fixture stores parameters as float16 (half the size) and jaxnas reads them
    back as float32 exactly, so both sides compute with identical weights.
    """
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model


def export(model, prefix):
    """Parameters under jaxnas names (the stem only when the network uses it), packed as
    `{prefix}layout` ("name|shape" strings) and `{prefix}values` (one float16 vector):
    three arrays per network keep the fixture small."""
    flat = nb.export_params(model)
    if not model.use_stem:
        flat = {k: v for k, v in flat.items() if not k.startswith("stem/")}
    layout = [f"{k}|{','.join(map(str, v.shape))}" for k, v in flat.items()]
    values = np.concatenate([v.reshape(-1) for v in flat.values()]).astype(np.float16)
    return {f"{prefix}layout": np.asarray(layout), f"{prefix}values": values}


# --------------------------------------------------------------------------- proxies


def ntk(model, x):
    """TE-NAS NTK (float64 Theta) and log condition number, train-mode BN."""
    model.train()
    logits = model(x)
    rows = []
    for i in range(x.shape[0]):
        model.zero_grad()
        logits[i : i + 1].backward(torch.ones_like(logits[i : i + 1]), retain_graph=True)
        rows.append(
            torch.cat(
                [
                    p.grad.reshape(-1).double()
                    for name, p in model.named_parameters()
                    if "weight" in name and p.grad is not None
                ]
            )
        )
    g = torch.stack(rows).numpy()
    theta = g @ g.T
    eig = np.linalg.eigvalsh(theta)
    return theta, float(np.log(eig[-1] / eig[0]))


def relu_outputs(model, x):
    """Per-sample concatenated outputs of every nn.ReLU with a 4-D input."""
    feats = []

    def hook(module, inputs, output):
        if inputs[0].dim() == 4:
            feats.append(output.detach().reshape(x.shape[0], -1))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return torch.cat(feats, 1)


def linear_regions(model, crops, chunk):
    model.train()
    codes = torch.cat([torch.sign(relu_outputs(model, c)) for c in crops.split(chunk)])
    unique = torch.unique(codes, dim=0).shape[0]
    a = codes.double().numpy()
    differ = a @ (1 - a).T
    differ = differ + differ.T
    same = (differ == 0).sum(1)
    tenas = float(np.sum(1.0 / same))
    return unique, tenas


def per_sample_grads(model, x, y):
    """[(name, [grad per sample])] from batch-1 forward/backward passes (train mode)."""
    model.train()
    grads = {}
    for i in range(x.shape[0]):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                grads.setdefault(name, []).append(p.grad.detach().double().clone())
    return grads


def knas_paper(model, x, y):
    grads = per_sample_grads(model, x, y)
    g = torch.cat([torch.stack(v).reshape(x.shape[0], -1) for v in grads.values()], 1).numpy()
    return float(np.mean(g @ g.T))


def knas_code(model, x, y):
    """KNAS `procedure`: walk named_parameters per sample, keep <= 11 tensors, 2 halves."""
    model.train()
    n = x.shape[0]
    half = n // 2
    stored = {}
    for i in range(n):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        index_name = 0
        for name, p in model.named_parameters():
            if p.grad is None:
                continue
            if index_name > 10:
                break
            if len(p.grad.reshape(-1)[0:100]) < 50:
                continue
            index_name += 1
            stored.setdefault(name, []).append(p.grad.reshape(-1)[0:100].double().clone())
    score = 0.0
    for name in stored:
        for i in range(50):
            g1 = torch.stack([stored[name][k][i] for k in range(half)])
            g2 = torch.stack([stored[name][k][i] for k in range(half, 2 * half)])
            score += float(torch.dot(g1 - g1.mean(), g2 - g2.mean())) / (2 * half) ** 2
    return score


def batch_grads(model, x, y, num_batches):
    """{module name: [grad of its weight per mini-batch]} for Conv2d / Linear modules."""
    model.train()
    out = {}
    for xb, yb in zip(x.chunk(num_batches), y.chunk(num_batches)):
        model.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        for name, m in model.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.grad is not None:
                out.setdefault(name, []).append(m.weight.grad.reshape(-1).double().numpy().copy())
    return {k: np.asarray(v) for k, v in out.items()}


def zico(model, x, y, num_batches=2):
    score = 0.0
    for g in batch_grads(model, x, y, num_batches).values():
        std = np.std(g, axis=0)
        nz = np.nonzero(std)[0]
        total = np.sum(np.mean(np.abs(g), axis=0)[nz] / std[nz])
        if total != 0:
            score += np.log(total)
    return float(score)


def swap(model, x):
    model.train()
    codes = torch.sign(relu_outputs(model, x)).T
    return int(torch.unique(codes, dim=0).shape[0])


def lswag(model, x, y, num_batches=2):
    lam = 0.0
    for g in batch_grads(model, x, y, num_batches).values():
        var = np.var(np.abs(g), axis=0)
        total = np.sum(1.0 / np.sqrt(var[var > 0]))
        if total > 0:
            lam += np.log(total)
    return float(lam * swap(model, x))


def _min_corr_eig(fea):
    fea = fea.reshape(fea.shape[0], -1)
    # A single channel gives a scalar (the reference would fail there); keep it 1x1.
    corr = torch.corrcoef(fea.double()).reshape(fea.shape[0], fea.shape[0])
    corr[torch.isnan(corr)] = 0
    corr[torch.isinf(corr)] = 0
    return float(torch.min(torch.real(torch.linalg.eig(corr)[0])))


def meco(model, x):
    """MeCo on the first image over nn.ReLU outputs and block outputs (see jaxnas meco)."""
    model.train()
    x = x[:1]
    total = 0.0

    def hook(module, inputs, output):
        nonlocal total
        if output.dim() == 4:
            total += _min_corr_eig(output[0].detach())

    blocks = ([model.stem] if model.use_stem else []) + list(model.cells)
    modules = [m for m in model.modules() if isinstance(m, nn.ReLU)] + blocks
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def az_components(model, x, g_outs):
    """AZ-NAS expressivity, progressivity, trainability with given Rademacher g_out."""
    model.train()
    feats = []
    h = x
    if model.use_stem:
        h = model.stem(h)
        h.retain_grad()
        feats.append(h)
    for layer in model.cells:
        h = layer(h)
        h.retain_grad()
        feats.append(h)
    entropies = []
    for f in feats:
        b, c, hh, ww = f.shape
        m = f.detach().double().permute(0, 2, 3, 1).reshape(-1, c)
        m = m - m.mean(0, keepdim=True)
        s = torch.linalg.eigvalsh(m.T @ m / m.shape[0])
        p = s / s.sum()
        entropies.append(float((-p * torch.log(p + 1e-8)).sum()))
    entropies = np.asarray(entropies)
    scores = []
    for i in range(1, len(feats)):
        g_out = torch.from_numpy(g_outs[i - 1])
        g_in = torch.autograd.grad(feats[i], feats[i - 1], g_out, retain_graph=True)[0]
        if g_out.shape == g_in.shape and torch.all(g_in == g_out):
            scores.append(-np.inf)
            continue
        if g_out.shape[2] != g_in.shape[2]:
            g_in = nn.PixelUnshuffle(g_in.shape[2] // g_out.shape[2])(g_in)
        bo, co, ho, wo = g_out.shape
        mat = (
            g_in.permute(0, 2, 3, 1).reshape(-1, g_in.shape[1]).double().T
            @ g_out.permute(0, 2, 3, 1).reshape(-1, co).double()
        ) / (bo * ho * wo)
        s = float(torch.linalg.svdvals(mat).max())
        scores.append(-s - 1 / (s + 1e-6) + 2)
    return np.asarray([entropies.sum(), np.min(entropies[1:] - entropies[:-1]), np.mean(scores)])


# ---------------------------------------------------------------------------- golden

GOLDEN_GENOTYPES = (
    (3, 2, 4, 1, 3, 0),  # every op kind
    (1, 4, 0, 2, 0, 1),  # pooling, skips, a dead-end conv
    (3, 3, 3, 1, 3, 3),  # convolutions only (and one skip)
)


def write_golden(path, seed=0):
    """Fixture: C=4, N=1, two-stage nets (and TE-NAS's C=3 NTK net), 8x8 inputs, batch 8;
    thin nets on 600 crops in chunks of 200. Parameters and crops stored as float16."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.randn(8, 3, 8, 8)
    y = torch.from_numpy(rng.integers(0, 10, 8))
    crops = torch.randn(600, 1, 3, 3).half().float()
    out = {
        "x_nhwc": x.numpy().transpose(0, 2, 3, 1),
        "y": y.numpy().astype(np.int32),
        "crops_nhwc": crops.numpy().transpose(0, 2, 3, 1),
        "genotypes": np.asarray(GOLDEN_GENOTYPES),
    }
    for i, genotype in enumerate(GOLDEN_GENOTYPES):
        model = quantize_(TenasNetwork(genotype, 4, 1, num_stages=2))
        out.update(export(model, f"params_{i}/"))
        out[f"knas_paper_{i}"] = knas_paper(model, x, y)
        out[f"knas_code_{i}"] = knas_code(model, x, y)
        out[f"zico_{i}"] = zico(model, x, y)
        out[f"swap_{i}"] = swap(model, x)
        out[f"lswag_{i}"] = lswag(model, x, y)
        out[f"meco_{i}"] = meco(model, x)
        feats = model.blocks(x)
        g_outs = [rng.choice([-1.0, 1.0], size=f.shape).astype(np.float32) for f in feats[1:]]
        out[f"az_{i}"] = az_components(model, x, g_outs)
        for k, g in enumerate(g_outs):
            out[f"az_gout_{i}_{k}"] = g.transpose(0, 2, 3, 1).astype(np.int8)
        out[f"ntk_theta_{i}"], out[f"ntk_logcond_{i}"] = ntk(model, x)

        thin = quantize_(TenasNetwork(genotype, 1, 1, num_stages=1, use_stem=False, in_channels=1))
        out.update(export(thin, f"thin_params_{i}/"))
        out[f"regions_{i}"], out[f"regions_tenas_{i}"] = linear_regions(thin, crops, 200)
    # A micro network (C=1, no stem, two stages, 4x4x1 inputs, batch 4), cheap enough for
    # un-jitted checks.
    x_micro = torch.randn(4, 1, 4, 4)
    y_micro = torch.from_numpy(rng.integers(0, 10, 4))
    out["micro_x_nhwc"] = x_micro.numpy().transpose(0, 2, 3, 1)
    out["micro_y"] = y_micro.numpy().astype(np.int32)
    for i, genotype in enumerate(GOLDEN_GENOTYPES):
        micro = quantize_(TenasNetwork(genotype, 1, 1, num_stages=2, use_stem=False, in_channels=1))
        out.update(export(micro, f"micro_params_{i}/"))
        out[f"micro_knas_paper_{i}"] = knas_paper(micro, x_micro, y_micro)
        out[f"micro_knas_code_{i}"] = knas_code(micro, x_micro, y_micro)
        out[f"micro_zico_{i}"] = zico(micro, x_micro, y_micro)
        out[f"micro_swap_{i}"] = swap(micro, x_micro)
        out[f"micro_lswag_{i}"] = lswag(micro, x_micro, y_micro)
        out[f"micro_meco_{i}"] = meco(micro, x_micro)
        out[f"micro_ntk_logcond_{i}"] = ntk(micro, x_micro)[1]
        feats = micro.blocks(x_micro)
        g_outs = [rng.choice([-1.0, 1.0], size=f.shape).astype(np.float32) for f in feats[1:]]
        out[f"micro_az_{i}"] = az_components(micro, x_micro, g_outs)
        for k, g in enumerate(g_outs):
            out[f"micro_az_gout_{i}_{k}"] = g.transpose(0, 2, 3, 1).astype(np.int8)

    # TE-NAS's own NTK network (C=3, N=1) for the first genotype.
    tenas = quantize_(TenasNetwork(GOLDEN_GENOTYPES[0], 3, 1))
    out.update(export(tenas, "tenas_params/"))
    out["tenas_ntk_theta"], out["tenas_ntk_logcond"] = ntk(tenas, x)
    with torch.no_grad():
        out["tenas_logits"] = tenas(x).numpy()
    out["crops_nhwc"] = out["crops_nhwc"].astype(np.float16)
    np.savez_compressed(path, **out)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    golden = sub.add_parser("golden", help="write the kernel-proxy golden-test fixture")
    golden.add_argument("--out", default="tests/fixtures/kernel_proxies_golden.npz")
    args = parser.parse_args()
    out = write_golden(args.out)
    for key in sorted(out):
        if not key.startswith(
            (
                "params",
                "tenas_params",
                "thin_params",
                "micro_params",
                "az_gout",
                "micro_az_gout",
                "x_",
                "micro_x",
                "crops",
            )
        ):
            print(key, np.round(out[key], 6) if np.ndim(out[key]) < 2 else np.shape(out[key]))


if __name__ == "__main__":
    main()
