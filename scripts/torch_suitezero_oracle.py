"""Independent PyTorch oracle for the NAS-Bench-Suite-Zero proxies on NB201 networks.

Written from the measure definitions of zero-cost-nas / NASLib and tensorwatch's
counting rules as described in shared/docs/reference.md (§A.7-A.12, A.14, A.17), in the
reference style (hooks, in-place |theta|, float64 NumPy eigenvalues), without importing
jaxnas. The NB201 network and the weight naming come from `torch_nb201_oracle.py`.

Measures: synflow (float64, BatchNorm replaced by the identity, |theta|, all-ones
input; log of the sum), snip, grasp (double backward), fisher (forward hooks on every
conv / linear output + tensor gradient hooks), grad_norm, plain, l2_norm, jacob_cov
(`np.corrcoef` + `np.linalg.eig` in float64), epe_nas (NASLib's per-class loop),
params and flops (leaf-module hooks of one batch-1 forward with tensorwatch's rules),
zen (given weights and inputs; running variances of a fresh train-mode network after
two forwards). All on one fixed set of supernet weights, copied into each cell.

Requires the optional extra: `pip install -e '.[torch]'` (torch==2.13.0, CPU).

Usage:
  python scripts/torch_suitezero_oracle.py golden --out tests/fixtures/suitezero_nb201_golden.npz
"""

import argparse
import copy
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_nb201_oracle as nb201  # noqa: E402

CHANNELS = 3
STAGES = 2  # stem, a cell, a reduction block, a cell, head: every module kind, fast compiles
IMAGE = 8
BATCH = 8
LABELS = (0, 0, 1, 1, 1, 2, 3, 3)  # repeated classes, so epe_nas sees real groups
LABELS_120 = (5, 5, 5, 7, 119, 119, 40, 0)  # two classes of >= 2 images, three singletons
GOLDEN_GENOTYPES = nb201.GOLDEN_GENOTYPES


# ----------------------------------------------------------------------- weights


def supernet_weights(rng, channels=CHANNELS, num_classes=10):
    """Every parameter of the C=channels, N=1 supernet under its jaxnas name."""
    flat = {}

    def conv(name, k, c_in, c_out):
        bound = 1.0 / math.sqrt(k * k * c_in)
        flat[f"{name}/kernel"] = rng.uniform(-bound, bound, (k, k, c_in, c_out))

    def bn(name, c):
        flat[f"{name}/scale"] = rng.uniform(0.5, 1.5, c)
        flat[f"{name}/bias"] = rng.uniform(-0.2, 0.2, c)

    conv("stem/conv", 3, 3, channels)
    bn("stem/bn", channels)
    c_prev = channels
    for s in range(STAGES):
        c = channels * 2**s
        if s > 0:
            conv(f"reduction{s}/conv_a/conv", 3, c_prev, c)
            bn(f"reduction{s}/conv_a/bn", c)
            conv(f"reduction{s}/conv_b/conv", 3, c, c)
            bn(f"reduction{s}/conv_b/bn", c)
            conv(f"reduction{s}/downsample", 1, c_prev, c)
        for e in range(len(nb201.EDGES)):
            for op, k in (("nor_conv_1x1", 1), ("nor_conv_3x3", 3)):
                conv(f"stage{s}_cell0/edge_{e}/{op}/conv", k, c, c)
                bn(f"stage{s}_cell0/edge_{e}/{op}/bn", c)
        c_prev = c
    bn("lastact", c_prev)
    classifier(flat, rng, c_prev, num_classes)
    return {k: v.astype(np.float32) for k, v in flat.items()}


def classifier(flat, rng, c_in, num_classes):
    bound = 1.0 / math.sqrt(c_in)
    flat["classifier/kernel"] = rng.uniform(-bound, bound, (c_in, num_classes))
    flat["classifier/bias"] = rng.uniform(-bound, bound, num_classes)


def load(model, flat):
    """Copies jaxnas-named weights (HWIO kernels, [in, out] linear) into `model`."""
    names = nb201.export_params(model)
    params = dict(model.named_parameters())
    # export_params walks the same modules in the same order as named_parameters.
    torch_names = [n for n in params]
    assert len(torch_names) == len(names), (len(torch_names), len(names))
    with torch.no_grad():
        for torch_name, name in zip(torch_names, names):
            value = flat[name]
            if value.ndim == 4:
                value = value.transpose(3, 2, 0, 1)
            elif value.ndim == 2:
                value = value.T
            params[torch_name].copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return model


def build(genotype, flat, num_classes=10):
    model = nb201.build(genotype, CHANNELS, 1, num_classes, STAGES)
    return load(model, flat).train()


def weight_layers(model):
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


# ----------------------------------------------------------------------- measures


def synflow(model, x_shape):
    net = copy.deepcopy(model).double()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.forward = lambda x: x
    with torch.no_grad():
        for p in net.state_dict().values():
            p.abs_()
    net.zero_grad()
    device = next(net.parameters()).device
    net(torch.ones((1, *x_shape[1:]), dtype=torch.float64, device=device)).sum().backward()
    with torch.no_grad():
        total = float(sum((m.weight * m.weight.grad).abs().sum() for m in weight_layers(net)))
    return math.log(total) if total > 0 else -math.inf


def _loss_grads(model, x, y):
    net = copy.deepcopy(model)
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    return net


def snip(model, x, y):
    net = _loss_grads(model, x, y)
    with torch.no_grad():
        return float(sum((m.weight * m.weight.grad).abs().sum() for m in weight_layers(net)))


def plain(model, x, y):
    net = _loss_grads(model, x, y)
    with torch.no_grad():
        return float(sum((m.weight * m.weight.grad).sum() for m in weight_layers(net)))


def grad_norm(model, x, y):
    net = _loss_grads(model, x, y)
    with torch.no_grad():
        return float(sum(m.weight.grad.norm() for m in weight_layers(net)))


def l2_norm(model):
    with torch.no_grad():
        return float(sum(m.weight.norm() for m in weight_layers(model)))


def grasp(model, x, y):
    net = copy.deepcopy(model)
    weights = [m.weight for m in weight_layers(net)]
    g = torch.autograd.grad(F.cross_entropy(net(x), y), weights)
    g_f = torch.autograd.grad(F.cross_entropy(net(x), y), weights, create_graph=True)
    z = sum((a.detach() * b).sum() for a, b in zip(g, g_f))
    hg = torch.autograd.grad(z, weights)
    return float(-sum((w * h).sum() for w, h in zip(weights, hg)).detach())


def fisher(model, x, y):
    net = copy.deepcopy(model)
    acts, grads, handles = {}, {}, []
    for i, m in enumerate(weight_layers(net)):

        def forward_hook(module, inputs, output, i=i):
            acts[i] = output.detach()
            output.register_hook(lambda g, i=i: grads.__setitem__(i, g.detach()))

        handles.append(m.register_forward_hook(forward_hook))
    F.cross_entropy(net(x), y).backward()
    for h in handles:
        h.remove()
    total = 0.0
    for i, m in enumerate(weight_layers(net)):
        a, g = acts[i].double(), grads[i].double()
        g_nk = (a * g).sum(dim=tuple(range(2, a.ndim))) if a.ndim > 2 else a * g
        delta = 0.5 * g_nk.pow(2).mean(0)
        total += float(delta.sum()) * int(np.prod(m.weight.shape[1:]))
    return total


def input_jacobian(model, x):
    net = copy.deepcopy(model)
    x = x.clone().requires_grad_(True)
    out = net(x)
    out.backward(torch.ones_like(out))
    return x.grad.detach().reshape(x.shape[0], -1).double().numpy(), out.shape[-1]


def jacob_cov(model, x):
    jacobian, _ = input_jacobian(model, x)
    v, _ = np.linalg.eig(np.corrcoef(jacobian))
    k = 1e-5
    return float(-np.sum(np.log(v.real + k) + 1.0 / (v.real + k)))


def epe_nas(model, x, y):
    jacobian, num_classes = input_jacobian(model, x)
    k = 1e-5
    groups = {}
    for row, label in zip(jacobian, y.tolist()):
        groups.setdefault(label, []).append(row)
    per_class = {}
    for label, rows in groups.items():
        if len(rows) == 1:
            if num_classes > 100:
                continue  # NumPy cannot take len() of the 0-d corrcoef: the reference skips it
            per_class[label] = float(np.log(1.0 + k))
            continue
        s = float(np.sum(np.log(np.abs(np.corrcoef(np.stack(rows))) + k)))
        per_class[label] = s / len(rows) if num_classes > 100 else s
    if num_classes <= 100:
        return float(sum(abs(s) for s in per_class.values()))
    total = sum(abs(a - b) for a in per_class.values() for b in per_class.values())
    return float(total / len(per_class)) if per_class else 0.0


def zen(model, x1, x2):
    net = copy.deepcopy(model).train()
    features = []
    handle = net.lastact.register_forward_hook(lambda m, i, o: features.append(o.detach()))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
    with torch.no_grad():
        net(x1)
        net(x2)
    handle.remove()
    delta = float((features[0] - features[1]).abs().sum(dim=(1, 2, 3)).mean())
    score = math.log(delta) if delta > 0 else -math.inf
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            score += math.log(math.sqrt(float(m.running_var.mean())))
    return score


def stats(model, x_shape):
    """(params, flops) of one batch-1 forward with tensorwatch's leaf-module rules."""
    net = copy.deepcopy(model).eval()
    totals = {"params": 0, "flops": 0}

    def hook(module, inputs, output):
        inp, out = inputs[0], output
        totals["params"] += sum(p.numel() for p in module.parameters())
        if isinstance(module, nn.Conv2d):
            k_h, k_w = module.kernel_size
            flops = k_h * k_w * inp.shape[1] * out[0].numel() // module.groups
        elif isinstance(module, nn.BatchNorm2d):
            flops = inp.numel() * (2 if module.affine else 1)
        elif isinstance(module, nn.ReLU):
            flops = inp.numel()
        elif isinstance(module, nn.AvgPool2d):
            k = module.kernel_size
            flops = out.numel() * k * k
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            _, c, h, w = inp.shape
            flops = c * (h + 1) * (w + 1)
        elif isinstance(module, nn.Linear):
            flops = inp.shape[1] * out.shape[1]
        else:
            flops = 0
        totals["flops"] += flops

    handles = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
    with torch.no_grad():
        net(torch.rand(1, *x_shape[1:]))
    for h in handles:
        h.remove()
    return totals["params"] / 1e6, totals["flops"] / 1e6


# ----------------------------------------------------------------------- fixture


def write_golden(path, seed=0):
    """Fixture: NB201 nets (C=3, N=1, 2 stages, 8x8 inputs, batch 8) sharing weights."""
    rng = np.random.default_rng(seed)
    flat = supernet_weights(rng)
    x = rng.standard_normal((BATCH, 3, IMAGE, IMAGE)).astype(np.float32)
    x_mixed = (x + 1e-2 * rng.standard_normal(x.shape)).astype(np.float32)
    head_120 = {}
    classifier(head_120, rng, CHANNELS * 2 ** (STAGES - 1), 120)
    head_120 = {k: v.astype(np.float32) for k, v in head_120.items()}
    tx, ty = torch.from_numpy(x), torch.tensor(LABELS)
    out = {
        "x_nhwc": x.transpose(0, 2, 3, 1),
        "x_mixed_nhwc": x_mixed.transpose(0, 2, 3, 1),
        "y": np.asarray(LABELS, np.int32),
        "y_120": np.asarray(LABELS_120, np.int32),
        "genotypes": np.asarray(GOLDEN_GENOTYPES, np.int32),
    }
    values = {}
    for i, genotype in enumerate(GOLDEN_GENOTYPES):
        model = build(genotype, flat)
        values[f"synflow_{i}"] = synflow(model, x.shape)
        values[f"snip_{i}"] = snip(model, tx, ty)
        values[f"plain_{i}"] = plain(model, tx, ty)
        values[f"grad_norm_{i}"] = grad_norm(model, tx, ty)
        values[f"l2_norm_{i}"] = l2_norm(model)
        values[f"grasp_{i}"] = grasp(model, tx, ty)
        values[f"fisher_{i}"] = fisher(model, tx, ty)
        values[f"zen_{i}"] = zen(model, tx, torch.from_numpy(x_mixed))
        values[f"params_{i}"], values[f"flops_{i}"] = stats(model, x.shape)
        if any(genotype):  # the all-`none` cell has a constant Jacobian: NaN by definition
            values[f"jacob_cov_{i}"] = jacob_cov(model, tx)
            values[f"epe_nas_{i}"] = epe_nas(model, tx, ty)
    model_120 = build(GOLDEN_GENOTYPES[0], {**flat, **head_120}, num_classes=120)
    values["epe_nas_120"] = epe_nas(model_120, tx, torch.tensor(LABELS_120))
    out.update(pack("weights", flat))
    out.update(pack("weights_120", head_120))
    out["value_names"] = np.asarray(list(values))
    out["values"] = np.asarray(list(values.values()), np.float64)
    np.savez_compressed(path, **out)
    return values


def pack(prefix, flat):
    """Few archive entries (each costs zip headers): names, shapes, one flat vector."""
    return {
        f"{prefix}_names": np.asarray(list(flat)),
        f"{prefix}_shapes": np.asarray([",".join(map(str, v.shape)) for v in flat.values()]),
        f"{prefix}_flat": np.concatenate([v.ravel() for v in flat.values()]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    golden = sub.add_parser("golden", help="write the Suite-Zero golden-test fixture")
    golden.add_argument("--out", default="tests/fixtures/suitezero_nb201_golden.npz")
    args = parser.parse_args()
    values = write_golden(args.out)
    for key in sorted(values):
        print(f"{key:14s} {values[key]: .6g}")


if __name__ == "__main__":
    main()
