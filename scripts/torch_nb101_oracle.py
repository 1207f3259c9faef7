"""Independent PyTorch oracle for NAS-Bench-101 networks and hook-based NASWOT.

Written from the NB101 paper's description of its model builder (google-research/nasbench
`model_builder.py`: prune the cell, split the output channels among the vertices feeding
the output, project inputs from the cell input with 1x1 conv-BN-ReLU, truncate wider
vertex inputs, sum vertex inputs, concatenate at the output, add the projected input when
it feeds the output), without importing jaxnas, so it checks jaxnas from the outside:

  * `build(matrix, ops, ...)`: the NB101 network (conv3x3-BN-ReLU stem, stacks of cells,
    2x2 max pooling between stacks, global average pool, linear layer) with train-mode BN.
  * `naswot(model, x)`: K += x x^T + (1-x)(1-x)^T accumulated in float64 NumPy from forward
    hooks on every `nn.ReLU` (the NB101 reference's `ConvBnRelu` modules do not match the
    reference's "ReLU" name test, so each ReLU counts once).
  * `golden_weights(...)`: deterministic weights from a NumPy generator, drawn leaf by leaf
    in sorted jaxnas parameter-path order, so the fixture stores no weights; the test
    draws the same numbers.

Requires the optional extra: `pip install -e '.[torch]'` (torch==2.13.0, CPU).

Usage:
  python scripts/torch_nb101_oracle.py golden --out tests/fixtures/nb101_golden.npz
"""

import argparse

import numpy as np
import torch
from torch import nn

CONV_OPS = {"conv3x3-bn-relu": ("conv3x3", 3, 1), "conv1x1-bn-relu": ("conv1x1", 1, 0)}


def prune(matrix):
    """Indices of the vertices on an input -> output path (NB101's `ModelSpec._prune`)."""
    n = len(matrix)
    from_input = {0}
    for j in range(1, n):
        if any(matrix[i][j] and i in from_input for i in range(j)):
            from_input.add(j)
    to_output = {n - 1}
    for i in range(n - 2, -1, -1):
        if any(matrix[i][j] and j in to_output for j in range(i + 1, n)):
            to_output.add(i)
    return sorted(from_input & to_output)


def vertex_channels(matrix, c_in, c_out):
    """Channels per vertex of a pruned cell (NB101's `compute_vertex_channels`)."""
    n = len(matrix)
    channels = [c_in] + [0] * (n - 2) + [c_out]
    feeding = [v for v in range(1, n - 1) if matrix[v][n - 1]]
    for rank, v in enumerate(feeding):
        channels[v] = c_out // len(feeding) + (1 if rank < c_out % len(feeding) else 0)
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            channels[v] = max(channels[d] for d in range(v + 1, n - 1) if matrix[v][d])
    return channels


class ConvBnRelu(nn.Module):
    def __init__(self, c_in, c_out, kernel, padding):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, 1, padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Cell(nn.Module):
    def __init__(self, matrix, ops, c_in, c_out):
        super().__init__()
        self.keep = prune(matrix)  # original vertex numbers of the pruned cell
        self.m = [[matrix[i][j] for j in self.keep] for i in self.keep]
        self.ops = [ops[v] for v in self.keep]
        n = len(self.keep)
        self.channels = vertex_channels(self.m, c_in, c_out)
        self.vertex = nn.ModuleDict()
        self.proj = nn.ModuleDict()
        for t in range(1, n):
            name = str(self.keep[t])
            if t < n - 1 and self.ops[t] in CONV_OPS:
                _, size, pad = CONV_OPS[self.ops[t]]
                self.vertex[name] = ConvBnRelu(self.channels[t], self.channels[t], size, pad)
            if self.m[0][t]:
                self.proj[name] = ConvBnRelu(c_in, self.channels[t], 1, 0)

    def forward(self, x):
        n = len(self.keep)
        tensors, concat = [x], []
        for t in range(1, n - 1):
            name = str(self.keep[t])
            inputs = [tensors[s][:, : self.channels[t]] for s in range(1, t) if self.m[s][t]]
            if self.m[0][t]:
                inputs.append(self.proj[name](x))
            h = sum(inputs[1:], inputs[0])
            if self.ops[t] in CONV_OPS:
                h = self.vertex[name](h)
            else:
                h = nn.functional.max_pool2d(h, 3, 1, 1)
            tensors.append(h)
            if self.m[t][n - 1]:
                concat.append(h)
        out = torch.cat(concat, dim=1) if concat else None
        if self.m[0][n - 1]:
            skip = self.proj[str(self.keep[n - 1])](x)
            out = skip if out is None else out + skip
        return out


class Network(nn.Module):
    def __init__(self, matrix, ops, stem=128, num_stacks=3, cells_per_stack=3, num_classes=10):
        super().__init__()
        self.stem = ConvBnRelu(3, stem, 3, 1)
        self.stacks = nn.ModuleList()
        c_prev = stem
        for s in range(num_stacks):
            c = stem * 2**s
            cells = nn.ModuleList()
            for _ in range(cells_per_stack):
                cells.append(Cell(matrix, ops, c_prev, c))
                c_prev = c
            self.stacks.append(cells)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for s, cells in enumerate(self.stacks):
            if s > 0:
                x = nn.functional.max_pool2d(x, 2, 2)
            for cell in cells:
                x = cell(x)
        return self.classifier(x.mean(dim=(2, 3)))


def build(matrix, ops, **kwargs):
    return Network([[int(v) for v in row] for row in matrix], list(ops), **kwargs)


def jaxnas_leaves(model):
    """{jaxnas parameter path: (torch tensor, layout)} for every parameter of `model`."""
    leaves = {}

    def conv_bn(prefix, module):
        leaves[f"{prefix}/conv/kernel"] = (module.conv.weight, "conv")
        leaves[f"{prefix}/bn/scale"] = (module.bn.weight, "vector")
        leaves[f"{prefix}/bn/bias"] = (module.bn.bias, "vector")

    conv_bn("stem", model.stem)
    for s, cells in enumerate(model.stacks):
        for i, cell in enumerate(cells):
            prefix = f"stack{s}_cell{i}"
            for name, module in cell.vertex.items():
                t = cell.keep.index(int(name))
                conv = CONV_OPS[cell.ops[t]][0]
                conv_bn(f"{prefix}/vertex_{name}/{conv}", module)
            for name, module in cell.proj.items():
                leaves[f"{prefix}/proj_{name}/conv/kernel"] = (module.conv.weight, "conv")
                leaves[f"{prefix}/proj_{name}/bn/scale"] = (module.bn.weight, "vector")
                leaves[f"{prefix}/proj_{name}/bn/bias"] = (module.bn.bias, "vector")
    leaves["classifier/kernel"] = (model.classifier.weight, "linear")
    leaves["classifier/bias"] = (model.classifier.bias, "vector")
    return leaves


def jax_shape(tensor, layout):
    """The jaxnas shape of a torch parameter (HWIO conv kernels, [in, out] linear)."""
    if layout == "conv":
        o, i, h, w = tensor.shape
        return (h, w, i, o)
    if layout == "linear":
        return tuple(tensor.shape[::-1])
    return tuple(tensor.shape)


def golden_weights(shapes, seed):
    """Deterministic weights for {path: jaxnas shape}, drawn in sorted path order.

    BatchNorm scales from U(0.5, 1.5), everything else from U(-1, 1).
    """
    rng = np.random.default_rng(seed)
    out = {}
    for path in sorted(shapes):
        low, high = (0.5, 1.5) if path.endswith("/scale") else (-1.0, 1.0)
        out[path] = rng.uniform(low, high, shapes[path]).astype(np.float32)
    return out


def load_golden_weights(model, seed):
    leaves = jaxnas_leaves(model)
    weights = golden_weights({p: jax_shape(t, layout) for p, (t, layout) in leaves.items()}, seed)
    with torch.no_grad():
        for path, (tensor, layout) in leaves.items():
            w = weights[path]
            if layout == "conv":
                w = w.transpose(3, 2, 0, 1)
            elif layout == "linear":
                w = w.T
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(w)))
    return {p: jax_shape(t, layout) for p, (t, layout) in leaves.items()}


def naswot(model, x):
    """Hook-based NASWOT log|K| (float64 NumPy accumulation), one forward pass."""
    batch = x.shape[0]
    state = {"K": np.zeros((batch, batch))}

    def hook(module, inputs, output):
        codes = (inputs[0].reshape(batch, -1) > 0).double()
        state["K"] += (codes @ codes.t() + (1.0 - codes) @ (1.0 - codes).t()).numpy()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return float(np.linalg.slogdet(state["K"])[1])


# (adjacency rows, interior ops): truncation (8 channels -> 3, 3, 2 at the output, vertex
# 1 truncated into vertex 3), a chain with an input -> output skip and max pooling, and a
# cell with two pruned vertices whose input projection is added to a two-vertex concat.
GOLDEN_CELLS = (
    (
        "0110000/0001001/0000001/0000001/0000000/0000000/0000000",
        "conv3x3-bn-relu|conv1x1-bn-relu|conv3x3-bn-relu|conv1x1-bn-relu|maxpool3x3",
    ),
    (
        "0100001/0010000/0001000/0000100/0000010/0000001/0000000",
        "conv3x3-bn-relu|maxpool3x3|conv1x1-bn-relu|maxpool3x3|conv3x3-bn-relu",
    ),
    (
        "0011001/0000000/0000110/0000001/0000001/0000000/0000000",
        "maxpool3x3|maxpool3x3|conv3x3-bn-relu|conv1x1-bn-relu|conv3x3-bn-relu",
    ),
)
GOLDEN_NETWORK = dict(stem=8, num_stacks=2, cells_per_stack=1, num_classes=10)


def write_golden(path, seed=0):
    """Fixture: tiny NB101 nets (stem 8, 2 stacks of 1 cell, 8x8 inputs, batch 4)."""
    torch.manual_seed(seed)
    x = torch.randn(4, 3, 8, 8)
    out = {"x_nhwc": x.numpy().transpose(0, 2, 3, 1), "seed": seed}
    for i, (rows, ops) in enumerate(GOLDEN_CELLS):
        matrix = [[int(ch) for ch in row] for row in rows.split("/")]
        model = build(matrix, ["input", *ops.split("|"), "output"], **GOLDEN_NETWORK)
        shapes = load_golden_weights(model, seed + i)
        with torch.no_grad():
            out[f"logits_{i}"] = model(x).numpy()
        out[f"naswot_{i}"] = naswot(model, x)
        out[f"arch_{i}"] = f"{rows};input|{ops}|output"
        out[f"param_paths_{i}"] = np.asarray(sorted(shapes))
    np.savez_compressed(path, **out)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    golden = sub.add_parser("golden", help="write the NB101 golden-test fixture")
    golden.add_argument("--out", default="tests/fixtures/nb101_golden.npz")
    args = parser.parse_args()
    out = write_golden(args.out)
    for i in range(len(GOLDEN_CELLS)):
        print(out[f"arch_{i}"], out[f"naswot_{i}"])


if __name__ == "__main__":
    main()
