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

  python scripts/torch_train_oracle.py step --out tests/fixtures/train_step_nb201.npz

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
    optim="SGD", LR=0.1, decay=5e-4, momentum=0.9, nesterov=True, scheduler="cos",
    warmup=0, eta_min=0.0, criterion="Softmax",
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
                out += [(f"reduction{stage}/{name}/conv", op[1]), (f"reduction{stage}/{name}/bn", op[2])]
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


def export(model, grads: bool = False) -> dict:
    """Flat `{jaxnas path: array}` of parameters (or their gradients), jaxnas layouts:
    HWIO conv kernels, [in, out] linear kernels, BN `scale`/`bias`."""
    flat = {}
    for prefix, m in _layers(model):
        def get(p):
            return (p.grad if grads else p).detach().numpy().copy()

        if isinstance(m, torch.nn.Conv2d):
            flat[f"{prefix}/kernel"] = get(m.weight).transpose(2, 3, 1, 0)
        elif isinstance(m, torch.nn.BatchNorm2d):
            flat[f"{prefix}/scale"], flat[f"{prefix}/bias"] = get(m.weight), get(m.bias)
        else:
            flat[f"{prefix}/kernel"], flat[f"{prefix}/bias"] = get(m.weight).T, get(m.bias)
    return flat


def export_stats(model) -> dict:
    """Flat `{jaxnas path: array}` of BN running statistics (`mean`, `var`)."""
    flat = {}
    for prefix, m in _layers(model):
        if isinstance(m, torch.nn.BatchNorm2d):
            flat[f"{prefix}/mean"] = m.running_mean.numpy().copy()
            flat[f"{prefix}/var"] = m.running_var.numpy().copy()
    return flat


class TorchNB201:
    """xautodl's TinyNetwork with NB201's optimizer and schedule, stepped as xautodl does."""

    def __init__(self, arch: str, channels: int, cells: int, classes: int, epochs: int,
                 steps_per_epoch: int, seed: int):
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
    arch="|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|",
    channels=4, cells=1, classes=10, batch=16, size=8, epochs=2, steps_per_epoch=1, seed=0,
)


def write_step_fixture(path: str) -> None:
    s = STEP_SETUP
    oracle = TorchNB201(s["arch"], s["channels"], s["cells"], s["classes"], s["epochs"],
                        s["steps_per_epoch"], s["seed"])
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
        torch=torch.__version__, xautodl=getattr(xautodl, "__version__", "1.0.0"),
        numpy=np.__version__, python=platform.python_version(), setup=s, hyper=NB201_HYPER,
        note="xautodl TinyNetwork, get_optim_scheduler, funcs_nasbench.procedure iteration",
    )
    out["provenance"] = np.asarray(json.dumps(provenance))
    np.savez_compressed(path, **out)
    print(f"wrote {path}: losses {losses}, lrs {lrs}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    step = sub.add_parser("step")
    step.add_argument("--out", default="tests/fixtures/train_step_nb201.npz")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    if args.command == "step":
        write_step_fixture(args.out)


if __name__ == "__main__":
    main()
