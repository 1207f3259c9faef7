"""PyTorch oracle for `mode=train`: NB201 training steps with the benchmark authors' code.

The network is `xautodl`'s `TinyNetwork` (the NAS-Bench-201 authors' own network code,
`pip install xautodl --no-deps`), the optimizer and lr schedule come from xautodl's
`get_optim_scheduler` with NB201's hyper-parameters (`200E.config`: SGD, lr 0.1,
momentum 0.9, Nesterov, weight decay 5e-4, cosine, eta_min 0), and each iteration
follows xautodl's `procedures/funcs_nasbench.py` (`scheduler.update(None, i / n)`,
forward, cross-entropy, backward, `optimizer.step()`). This file does not import
jaxnas: it writes plain arrays that a test compares with jaxnas.

Subcommands:
  step   two training steps of a small NB201 network from a seeded PyTorch init on two
         seeded batches -> `tests/fixtures/train_step_nb201.npz` (initial parameters in
         jaxnas names and layouts, batches, losses, first-step gradients, parameters
         and BatchNorm statistics after each step, provenance).
  darts-step  the same for a small DARTS network (36 -> 4 channels, 20 -> 3 cells,
         auxiliary head) built here in PyTorch from the DARTS paper's evaluation network
         (`NetworkCIFAR` conventions: ReLU-conv-BN preprocessing, FactorizedReduce after
         a reduction cell, sep/dil convs, 3x3 pools with padding 1, auxiliary head
         after the last reduction cell), trained as DARTS `train.py` does (loss + 0.4 x
         auxiliary loss, gradient-norm clipping, SGD momentum 0.9 + weight decay 3e-4,
         per-epoch cosine), drop-path and cutout off
         -> `tests/fixtures/train_step_darts.npz`.

  python scripts/torch_train_oracle.py step --out tests/fixtures/train_step_nb201.npz
  python scripts/torch_train_oracle.py darts-step --out tests/fixtures/train_step_darts.npz

`scripts/bench_training.py` imports `TorchNB201` from here for the side-by-side run.
Requires the optional extra `torch` (torch 2.13.0 CPU) and xautodl 1.0.0.
"""

import argparse
import importlib.util
import json
import os
import platform

import numpy as np
import torch
import xautodl
from xautodl.config_utils import dict2config
from xautodl.models.cell_infers.cells import InferCell
from xautodl.models.cell_infers.tiny_network import TinyNetwork
from xautodl.models.cell_operations import ReLUConvBN, ResNetBasicblock
from xautodl.models.cell_searchs.genotypes import Structure


def _xautodl_module(relative: str):
    """A module of xautodl loaded from its file: the package `xautodl.procedures`
    imports torchvision (for its datasets), which the optimizers do not need."""
    path = os.path.join(os.path.dirname(xautodl.__file__), relative)
    spec = importlib.util.spec_from_file_location(relative.replace("/", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


get_optim_scheduler = _xautodl_module("procedures/optimizers.py").get_optim_scheduler

NB201_HYPER = dict(
    optim="SGD",
    LR=0.1,
    decay=5e-4,
    momentum=0.9,
    nesterov=True,
    scheduler="cos",
    warmup=0,
    eta_min=0.0,
    criterion="Softmax",
)


def _layers(model):
    """(jaxnas prefix, module) of every parameterised layer of a TinyNetwork."""
    out = [("stem/conv", model.stem[0]), ("stem/bn", model.stem[1])]
    stage, index = 0, 0
    for cell in model.cells:
        if isinstance(cell, ResNetBasicblock):
            stage, index = stage + 1, 0
            for name in ("conv_a", "conv_b"):
                op = getattr(cell, name).op
                prefix = f"reduction{stage}/{name}"
                out += [(f"{prefix}/conv", op[1]), (f"{prefix}/bn", op[2])]
            out.append((f"reduction{stage}/downsample", cell.downsample[1]))
            continue
        assert isinstance(cell, InferCell)
        for e, layer in enumerate(cell.layers):  # xautodl's layer order is NB201's edge order
            if isinstance(layer, ReLUConvBN):
                name = "nor_conv_1x1" if layer.op[1].kernel_size == (1, 1) else "nor_conv_3x3"
                prefix = f"stage{stage}_cell{index}/edge_{e}/{name}"
                out += [(f"{prefix}/conv", layer.op[1]), (f"{prefix}/bn", layer.op[2])]
        index += 1
    out += [("lastact", model.lastact[0]), ("classifier", model.classifier)]
    return out


def export(model, grads: bool = False, layers=None) -> dict:
    """Flat `{jaxnas path: array}` of parameters (or their gradients), jaxnas layouts:
    HWIO conv kernels, [in, out] linear kernels, BN `scale`/`bias`."""
    flat = {}
    for prefix, m in (layers or _layers)(model):

        def get(p):
            return (p.grad if grads else p).detach().numpy().copy()

        if isinstance(m, torch.nn.Conv2d):
            flat[f"{prefix}/kernel"] = get(m.weight).transpose(2, 3, 1, 0)
        elif isinstance(m, torch.nn.BatchNorm2d):
            flat[f"{prefix}/scale"], flat[f"{prefix}/bias"] = get(m.weight), get(m.bias)
        else:
            flat[f"{prefix}/kernel"], flat[f"{prefix}/bias"] = get(m.weight).T, get(m.bias)
    return flat


def export_stats(model, layers=None) -> dict:
    """Flat `{jaxnas path: array}` of BN running statistics (`mean`, `var`)."""
    flat = {}
    for prefix, m in (layers or _layers)(model):
        if isinstance(m, torch.nn.BatchNorm2d):
            flat[f"{prefix}/mean"] = m.running_mean.numpy().copy()
            flat[f"{prefix}/var"] = m.running_var.numpy().copy()
    return flat


class TorchNB201:
    """xautodl's TinyNetwork with NB201's optimizer and schedule, stepped as xautodl does."""

    def __init__(
        self,
        arch: str,
        channels: int,
        cells: int,
        classes: int,
        epochs: int,
        steps_per_epoch: int,
        seed: int,
    ):
        torch.manual_seed(seed)
        self.model = TinyNetwork(channels, cells, Structure.str2structure(arch), classes)
        config = dict2config(dict(NB201_HYPER, epochs=epochs), None)
        self.optimizer, self.scheduler, self.criterion = get_optim_scheduler(
            self.model.parameters(), config
        )
        self.steps_per_epoch = steps_per_epoch
        self.step_count = 0

    def step(self, x_nhwc: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """One training iteration on a normalised NHWC batch; returns (loss, hits)."""
        epoch, i = divmod(self.step_count, self.steps_per_epoch)
        if i == 0:
            self.scheduler.update(epoch, 0.0)
        self.scheduler.update(None, 1.0 * i / self.steps_per_epoch)
        self.model.train()
        x = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))
        target = torch.from_numpy(y.astype(np.int64))
        self.optimizer.zero_grad()
        _, logits = self.model(x)
        loss = self.criterion(logits, target)
        loss.backward()
        self.optimizer.step()
        self.step_count += 1
        return float(loss.detach()), int((logits.argmax(1) == target).sum())

    @torch.no_grad()
    def evaluate(self, x_nhwc: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
        """Top-1 accuracy (%) in eval mode (running BN statistics)."""
        self.model.eval()
        hits = 0
        for s in range(0, x_nhwc.shape[0], batch):
            x = torch.from_numpy(np.ascontiguousarray(x_nhwc[s : s + batch].transpose(0, 3, 1, 2)))
            _, logits = self.model(x)
            hits += int((logits.argmax(1).numpy() == y[s : s + batch]).sum())
        return 100.0 * hits / x_nhwc.shape[0]


STEP_SETUP = dict(
    arch="|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|",
    channels=4,
    cells=1,
    classes=10,
    batch=16,
    size=8,
    epochs=2,
    steps_per_epoch=1,
    seed=0,
)


def write_step_fixture(path: str) -> None:
    s = STEP_SETUP
    oracle = TorchNB201(
        s["arch"],
        s["channels"],
        s["cells"],
        s["classes"],
        s["epochs"],
        s["steps_per_epoch"],
        s["seed"],
    )
    rng = np.random.default_rng(s["seed"])
    xs = rng.standard_normal((2, s["batch"], s["size"], s["size"], 3)).astype(np.float32)
    ys = rng.integers(0, s["classes"], (2, s["batch"])).astype(np.int32)
    out = {f"init/{k}": v for k, v in export(oracle.model).items()}
    out["x"], out["y"] = xs, ys
    losses, lrs = [], []
    for t in range(2):
        loss, _ = oracle.step(xs[t], ys[t])
        lrs.append(oracle.optimizer.param_groups[0]["lr"])  # set by the step's update
        losses.append(loss)
        if t == 0:
            out.update({f"grad1/{k}": v for k, v in export(oracle.model, grads=True).items()})
        out.update({f"params{t + 1}/{k}": v for k, v in export(oracle.model).items()})
        out.update({f"stats{t + 1}/{k}": v for k, v in export_stats(oracle.model).items()})
    out["loss"] = np.asarray(losses, np.float32)
    out["lr"] = np.asarray(lrs, np.float32)
    provenance = dict(
        made_by="python scripts/torch_train_oracle.py step --out " + path,
        torch=torch.__version__,
        xautodl=getattr(xautodl, "__version__", "1.0.0"),
        numpy=np.__version__,
        python=platform.python_version(),
        setup=s,
        hyper=NB201_HYPER,
        note="xautodl TinyNetwork, get_optim_scheduler, funcs_nasbench.procedure iteration",
    )
    out["provenance"] = np.asarray(json.dumps(provenance))
    np.savez_compressed(path, **out)
    print(f"wrote {path}: losses {losses}, lrs {lrs}")


# ------------------------------------------------------------------------------ DARTS

NB301_OPS = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


class _ReLUConvBN(torch.nn.Module):
    """ReLU -> conv(s) -> BN; `convs` are (c_in, c_out, k, stride, pad, dilation, groups)."""

    def __init__(self, convs, c_out, relu=True):
        super().__init__()
        self.relu = relu
        self.convs = torch.nn.ModuleList(
            torch.nn.Conv2d(ci, co, k, s, p, dilation=d, groups=g, bias=False)
            for ci, co, k, s, p, d, g in convs
        )
        self.bn = torch.nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = torch.relu(x) if self.relu else x
        for conv in self.convs:
            x = conv(x)
        return self.bn(x)


class _FactorizedReduce(torch.nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv_1 = torch.nn.Conv2d(c_in, c_out // 2, 1, 2, 0, bias=False)
        self.conv_2 = torch.nn.Conv2d(c_in, c_out // 2, 1, 2, 0, bias=False)
        self.bn = torch.nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = torch.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def _darts_op(name, c, stride):
    if name == "max_pool_3x3":
        return torch.nn.MaxPool2d(3, stride, 1)
    if name == "avg_pool_3x3":
        return torch.nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    if name == "skip_connect":
        return torch.nn.Identity() if stride == 1 else _FactorizedReduce(c, c)
    k = int(name[-1])
    if name.startswith("sep"):
        half1 = _ReLUConvBN([(c, c, k, stride, k // 2, 1, c), (c, c, 1, 1, 0, 1, 1)], c)
        half2 = _ReLUConvBN([(c, c, k, 1, k // 2, 1, c), (c, c, 1, 1, 0, 1, 1)], c)
        return torch.nn.Sequential(half1, half2)
    return _ReLUConvBN([(c, c, k, stride, k - 1, 2, c), (c, c, 1, 1, 0, 1, 1)], c)


class _DartsCell(torch.nn.Module):
    def __init__(self, pairs, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.pre0 = (
            _FactorizedReduce(c_pp, c)
            if reduction_prev
            else _ReLUConvBN([(c_pp, c, 1, 1, 0, 1, 1)], c)
        )
        self.pre1 = _ReLUConvBN([(c_p, c, 1, 1, 0, 1, 1)], c)
        self.pairs = pairs  # [(op name, input)] * 2 per node
        self.ops = torch.nn.ModuleList(
            _darts_op(name, c, 2 if reduction and i < 2 else 1) for name, i in pairs
        )

    def forward(self, s0, s1):
        states = [self.pre0(s0), self.pre1(s1)]
        for j in range(len(self.pairs) // 2):
            states.append(
                sum(self.ops[2 * j + k](states[self.pairs[2 * j + k][1]]) for k in range(2))
            )
        return torch.cat(states[2:], dim=1)


class _AuxHead(torch.nn.Module):
    def __init__(self, c, classes):
        super().__init__()
        self.pool = torch.nn.AvgPool2d(5, 3, 0, count_include_pad=False)
        self.conv_a = _ReLUConvBN([(c, 128, 1, 1, 0, 1, 1)], 128, relu=False)
        self.conv_b = _ReLUConvBN([(128, 768, 2, 1, 0, 1, 1)], 768, relu=False)
        self.classifier = torch.nn.Linear(768, classes)

    def forward(self, x):
        y = self.conv_a(self.pool(torch.relu(x)))
        y = torch.relu(self.conv_b(torch.relu(y)))
        return self.classifier(y.flatten(1))


class DartsNetwork(torch.nn.Module):
    """DARTS' CIFAR evaluation network (`NetworkCIFAR` conventions) for `cells` =
    (normal pairs, reduce pairs)."""

    def __init__(self, cells, c, layers, classes):
        super().__init__()
        self.stem = _ReLUConvBN([(3, 3 * c, 3, 1, 1, 1, 1)], 3 * c, relu=False)
        self.reductions = (layers // 3, 2 * layers // 3)
        c_pp, c_p, c_cur, reduction_prev = 3 * c, 3 * c, c, False
        self.cells = torch.nn.ModuleList()
        for i in range(layers):
            reduction = i in self.reductions
            c_cur = c_cur * 2 if reduction else c_cur
            pairs = cells[1] if reduction else cells[0]
            self.cells.append(_DartsCell(pairs, c_pp, c_p, c_cur, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, 4 * c_cur
            if i == self.reductions[-1]:
                self.aux = _AuxHead(c_p, classes)
        self.classifier = torch.nn.Linear(c_p, classes)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.reductions[-1]:
                aux = self.aux(s1)
        return self.classifier(s1.mean((2, 3))), aux


def _darts_layers(model):
    """(jaxnas prefix, module) of every parameterised layer of DartsNetwork."""
    out = []

    def chain(prefix, m, conv_names):
        for name, conv in zip(conv_names, m.convs):
            out.append((f"{prefix}/{name}", conv))
        out.append((f"{prefix}/bn", m.bn))

    chain("stem", model.stem, ["conv"])
    for i, cell in enumerate(model.cells):
        for p, pre in (("preprocess0", cell.pre0), ("preprocess1", cell.pre1)):
            if isinstance(pre, _FactorizedReduce):
                out += [
                    (f"cell{i}/{p}/conv_1", pre.conv_1),
                    (f"cell{i}/{p}/conv_2", pre.conv_2),
                    (f"cell{i}/{p}/bn", pre.bn),
                ]
            else:
                chain(f"cell{i}/{p}", pre, ["conv"])
        for e, ((name, _), op) in enumerate(zip(cell.pairs, cell.ops)):
            prefix = f"cell{i}/edge_{e}/{name}"
            if isinstance(op, _FactorizedReduce):
                out += [
                    (f"{prefix}/conv_1", op.conv_1),
                    (f"{prefix}/conv_2", op.conv_2),
                    (f"{prefix}/bn", op.bn),
                ]
            elif isinstance(op, torch.nn.Sequential):
                chain(f"{prefix}/half1", op[0], ["conv0", "conv1"])
                chain(f"{prefix}/half2", op[1], ["conv0", "conv1"])
            elif isinstance(op, _ReLUConvBN):
                chain(prefix, op, ["conv0", "conv1"])
        if hasattr(model, "aux") and i == model.reductions[-1]:
            chain("auxiliary/conv_a", model.aux.conv_a, ["conv"])
            chain("auxiliary/conv_b", model.aux.conv_b, ["conv"])
            out.append(("auxiliary/classifier", model.aux.classifier))
    out.append(("classifier", model.classifier))
    return out


DARTS_SETUP = dict(
    # Normal and reduce cells: (op, input) per edge, two edges per node, every op kind.
    normal=[
        ["sep_conv_3x3", 0],
        ["sep_conv_5x5", 1],
        ["dil_conv_3x3", 0],
        ["skip_connect", 2],
        ["max_pool_3x3", 1],
        ["avg_pool_3x3", 3],
        ["dil_conv_5x5", 4],
        ["skip_connect", 0],
    ],
    reduce=[
        ["skip_connect", 0],
        ["max_pool_3x3", 1],
        ["sep_conv_3x3", 2],
        ["avg_pool_3x3", 0],
        ["dil_conv_3x3", 1],
        ["sep_conv_5x5", 3],
        ["skip_connect", 4],
        ["dil_conv_5x5", 2],
    ],
    channels=4,
    cells=3,
    classes=10,
    batch=8,
    size=32,
    epochs=2,
    steps_per_epoch=1,
    seed=0,
    lr=0.025,
    momentum=0.9,
    weight_decay=3e-4,
    aux_weight=0.4,
    grad_clip=1.0,
)


def seeded_init(shapes: dict, seed: int) -> dict:
    """PyTorch's default init drawn with NumPy in jaxnas layouts, leaf by leaf in sorted
    name order: kernels and linear biases U(+-1/sqrt(fan_in)), BN scale 1, bias 0. The
    test draws the same numbers, so the fixture need not store the initial weights."""
    rng = np.random.default_rng(seed)
    flat = {}
    for name in sorted(shapes):
        shape = tuple(shapes[name])
        prefix, leaf = name.rsplit("/", 1)
        kernel = shapes.get(f"{prefix}/kernel")
        if leaf == "kernel" or (leaf == "bias" and kernel is not None):
            bound = 1.0 / np.sqrt(np.prod(kernel[:-1] if leaf == "bias" else shape[:-1]))
            flat[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
        else:
            flat[name] = (np.ones if leaf == "scale" else np.zeros)(shape, np.float32)
    return flat


def load(model, flat: dict, layers) -> None:
    """Sets the parameters of `model` from jaxnas-layout arrays."""
    with torch.no_grad():
        for prefix, m in layers(model):
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.from_numpy(flat[f"{prefix}/kernel"].transpose(3, 2, 0, 1)))
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.from_numpy(flat[f"{prefix}/scale"]))
                m.bias.copy_(torch.from_numpy(flat[f"{prefix}/bias"]))
            else:
                m.weight.copy_(torch.from_numpy(flat[f"{prefix}/kernel"].T))
                m.bias.copy_(torch.from_numpy(flat[f"{prefix}/bias"]))


LARGE = 20000  # leaves above this size are stored as a norm and 1,024 seeded entries


def thin(flat: dict) -> dict:
    """`flat` with each leaf of more than LARGE entries replaced by its L2 norm
    (`name@norm`) and its entries at 1,024 indices drawn with seed 1 (`name@sample`)."""
    out = {}
    for name, v in flat.items():
        if v.size > LARGE:
            idx = np.random.default_rng(1).choice(v.size, 1024, replace=False)
            out[f"{name}@norm"] = np.asarray(np.linalg.norm(v.astype(np.float64)), np.float32)
            out[f"{name}@sample"] = v.reshape(-1)[idx]
        else:
            out[name] = v
    return out


def write_darts_fixture(path: str) -> None:
    s = DARTS_SETUP
    cells = ([tuple(p) for p in s["normal"]], [tuple(p) for p in s["reduce"]])
    model = DartsNetwork(cells, s["channels"], s["cells"], s["classes"])
    shapes = {k: v.shape for k, v in export(model, layers=_darts_layers).items()}
    load(model, seeded_init(shapes, s["seed"]), _darts_layers)
    optimizer = torch.optim.SGD(
        model.parameters(), s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"]
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, s["epochs"])
    rng = np.random.default_rng(s["seed"])
    xs = rng.standard_normal((2, s["batch"], s["size"], s["size"], 3)).astype(np.float32)
    ys = rng.integers(0, s["classes"], (2, s["batch"])).astype(np.int32)
    out = {f"shape/{k}": np.asarray(v, np.int64) for k, v in shapes.items()}
    out["x"], out["y"] = xs, ys
    losses, lrs, norms = [], [], []
    criterion = torch.nn.CrossEntropyLoss()
    for t in range(2):
        model.train()
        x = torch.from_numpy(np.ascontiguousarray(xs[t].transpose(0, 3, 1, 2)))
        target = torch.from_numpy(ys[t].astype(np.int64))
        optimizer.zero_grad()
        logits, aux = model(x)
        loss = criterion(logits, target) + s["aux_weight"] * criterion(aux, target)
        loss.backward()
        if t == 0:
            grads = thin(export(model, True, _darts_layers))
            out.update({f"grad1/{k}": v for k, v in grads.items()})
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), s["grad_clip"])))
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()  # one step per epoch
        losses.append(float(loss.detach()))
        params = thin(export(model, layers=_darts_layers))
        out.update({f"params{t + 1}/{k}": v for k, v in params.items()})
        out.update(
            {f"stats{t + 1}/{k}": v for k, v in thin(export_stats(model, _darts_layers)).items()}
        )
    out["loss"] = np.asarray(losses, np.float32)
    out["lr"] = np.asarray(lrs, np.float32)
    out["grad_norm"] = np.asarray(norms, np.float32)
    provenance = dict(
        made_by="python scripts/torch_train_oracle.py darts-step --out " + path,
        torch=torch.__version__,
        numpy=np.__version__,
        python=platform.python_version(),
        setup=s,
        large=LARGE,
        note="own PyTorch DARTS NetworkCIFAR; DARTS train.py step, drop-path off; initial "
        "weights: seeded_init(shape/*, seed); leaves > large entries thinned (thin)",
    )
    out["provenance"] = np.asarray(json.dumps(provenance))
    np.savez_compressed(path, **out)
    print(f"wrote {path}: losses {losses}, lrs {lrs}, grad norms {norms}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    step = sub.add_parser("step")
    step.add_argument("--out", default="tests/fixtures/train_step_nb201.npz")
    darts = sub.add_parser("darts-step")
    darts.add_argument("--out", default="tests/fixtures/train_step_darts.npz")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    if args.command == "step":
        write_step_fixture(args.out)
    else:
        write_darts_fixture(args.out)


if __name__ == "__main__":
    main()
