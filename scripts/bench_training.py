"""jaxnas `mode=train` beside the NB201 authors' PyTorch code, same recipe, seed and batches.

Trains the best NB201 cell (index 6111 of `nb201_test_acc_200ep.csv.gz`, 94.37 % after
200 epochs on full CIFAR-10) with the NB201 recipe on the 1,280 CIFAR-10 training
images of `../shared/data/images/cifar10_jpeg_yoongikim_train1280_test1000.npz` for a
few epochs (the cosine schedule spans those epochs), and evaluates on its 1,000 test
images:

  * jaxnas: `training.train` (the code path of `python -m jaxnas.main` with
    `configs/nb201_train.py`);
  * PyTorch: xautodl's `TinyNetwork` with xautodl's optimizer and scheduler
    (`scripts/torch_train_oracle.py`), fed the very batches jaxnas trains on
    (`jaxnas.train_data.epoch_batches`, same seed), its own PyTorch init.

Images/s are training steps only (host batch preparation excluded on both sides), from
epoch 2 on (epoch 1 includes jaxnas' compilation). Prints a table and writes JSON.

  python scripts/bench_training.py --epochs 10 --out runs/bench_training.json
  # or the two sides as two concurrent processes (`--only jaxnas`, `--only torch`)
"""

import argparse
import json
import os
import shutil
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from jaxnas import configs, train_data, training  # noqa: E402

BEST = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
)


def jaxnas_run(config, workdir):
    shutil.rmtree(workdir, ignore_errors=True)  # measure a fresh run, never resume one
    start = time.perf_counter()
    report = training.train(config, workdir)
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    steady = rows[1:] or rows
    images = sum(r["seconds"] * r["images_per_second"] for r in steady)
    return {
        "test_acc": report["test_acc"],
        "final_train_loss": rows[-1]["loss"],
        "images_per_second": images / sum(r["seconds"] for r in steady),
        "seconds_total": time.perf_counter() - start,
        "per_epoch": [{k: r[k] for k in ("epoch", "loss", "acc", "test_acc")} for r in rows],
    }


def torch_run(config, train, test):
    import torch
    from torch_train_oracle import TorchNB201

    t = config.train
    spe = train_data.steps_per_epoch(train.images.shape[0], t.batch_size)
    oracle = TorchNB201(BEST, 16, 5, 10, t.epochs, spe, config.seed)
    start, step_seconds, rows = time.perf_counter(), [], []
    for epoch in range(t.epochs):
        seconds, losses, hits = 0.0, [], 0
        for batch in train_data.epoch_batches(
            train,
            config.seed,
            epoch,
            t.batch_size,
            t.data.normalization,
            t.data.crop_padding,
            t.data.flip,
            t.data.cutout,
        ):
            tic = time.perf_counter()
            loss, correct = oracle.step(batch["x"], batch["y"])
            seconds += time.perf_counter() - tic
            losses.append(loss)
            hits += correct
        x_test = train_data.data.normalize(test.images, t.data.normalization)
        acc = oracle.evaluate(x_test, test.labels)
        step_seconds.append(seconds)
        rows.append(
            {
                "epoch": epoch + 1,
                "loss": float(np.mean(losses)),
                "acc": 100.0 * hits / (spe * t.batch_size),
                "test_acc": acc,
            }
        )
        rows[-1]["images_per_second"] = spe * t.batch_size / seconds
        print(
            f"torch epoch {epoch + 1}: loss {rows[-1]['loss']:.4f} test {acc:.2f}%  "
            f"{rows[-1]['images_per_second']:.1f} img/s (steps only)  "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    steady = step_seconds[1:] or step_seconds
    return {
        "test_acc": rows[-1]["test_acc"],
        "final_train_loss": rows[-1]["loss"],
        "images_per_second": len(steady) * spe * t.batch_size / sum(steady),
        "seconds_total": time.perf_counter() - start,
        "torch_threads": torch.get_num_threads(),
        "per_epoch": rows,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="runs/bench_training")
    parser.add_argument("--out", default="")
    # Run the two sides as two concurrent processes on a crowded machine (same load).
    parser.add_argument("--only", choices=("jaxnas", "torch"), default=None)
    args = parser.parse_args()
    path = configs.shared_path(*configs.CIFAR10_IMAGES)
    if not os.path.exists(path):
        sys.exit(f"missing {path} (shared data)")
    config = training.apply_recipe(configs.default_config(), "nb201")
    config.mode, config.seed = "train", args.seed
    t = config.train
    t.arch, t.epochs, t.plot = BEST, args.epochs, False
    t.data.path = path
    config.benchmark.path = configs.NB201_ACCURACIES.path()
    train, test = train_data.load(config)
    load = os.getloadavg()
    results = {
        "arch": BEST,
        "epochs": args.epochs,
        "seed": args.seed,
        "recipe": "nb201",
        "train_images": int(train.images.shape[0]),
        "test_images": int(test.images.shape[0]),
        "device": f"{jax.devices()[0].platform} x{jax.local_device_count()}",
        "load_before": load,
    }
    if args.only != "torch":
        workdir = os.path.join(args.workdir, f"jaxnas_seed{args.seed}")
        results["jaxnas"] = jaxnas_run(config, workdir)
    if args.only != "jaxnas":
        results["torch"] = torch_run(config, train, test)
    results["load_after"] = os.getloadavg()
    print(
        f"\nbest NB201 cell, NB201 recipe, {args.epochs} epochs on {train.images.shape[0]} "
        f"images, seed {args.seed}, load {load[0]:.1f} -> {results['load_after'][0]:.1f}"
    )
    for name in ("jaxnas", "torch"):
        if name in results:
            r = results[name]
            print(
                f"{name:7s} test acc {r['test_acc']:6.2f}%  train loss "
                f"{r['final_train_loss']:.4f}  {r['images_per_second']:7.1f} img/s  "
                f"{r['seconds_total']:.0f} s total"
            )
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
