"""Train an NB201 cell with the NAS-Bench-201 recipe (`mode=train`).

Recipe (xautodl `200E.config`; `jaxnas.training.RECIPES["nb201"]`): SGD, Nesterov
momentum 0.9, lr 0.1 cosine to 0 (constant within an epoch, as xautodl's scheduler),
weight decay 5e-4 on every parameter, batch 256, 200 epochs, random crop (4 pixels of
zero padding) + horizontal flip, NB201's CIFAR-10 mean/std, no label smoothing.

Commands:
  # the best NB201 cell on the 1,280 / 1,000 CIFAR-10 images of ../shared/data/images
  python -m jaxnas.main --config=configs/nb201_train.py:epochs=10 --workdir=runs/train_nb201
  # what a search chose, on full CIFAR-10 prepared for tfds (never downloaded here)
  python -m jaxnas.main --config=configs/nb201_train.py:data=tfds,search=runs/search \
      --workdir=runs/train_search

Every field is overridable (`--config.train.lr=0.05`, `--config.train.batch_size=128`).
Rerunning the same command resumes from the last checkpoint. With the benchmark table
present, the report puts the benchmark's 200-epoch accuracies of the cell beside ours.

Expected: the measured figures are in WORKSPACE_NOTES.md "Training (issue 19)" (on the
shared 2-core machine at load ~25 the first epoch of the 1,280 images, compilation
included, took 16 min; a quiet machine is many times faster). The network needs ~6 GB
of host memory at batch 256 on CPU. The 200-epoch full-CIFAR-10 run needs a GPU.

Arguments: `:arch=STR,search=DIR,epochs=N,seed=S,data=npz|tfds,dataset=cifar10|cifar100|
imagenet16-120`; `search` trains the choice of a search workdir (`train.from_search`: the
run with the best proxy score, or `--config.train.from_search_run=R`) instead of `arch`.
"""

import os

from jaxnas import configs, training

BEST = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
)
CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet16-120": 120}
TARGETS = {
    "cifar10": "cifar10_test",
    "cifar100": "cifar100_test",
    "imagenet16-120": "imagenet16_120_test",
}


def get_config(arg=None):
    args = configs.parse_arg(
        arg, arch=BEST, search="", epochs=200, seed=0, data="npz", dataset="cifar10"
    )
    config = training.apply_recipe(configs.default_config(), "nb201")
    config.mode = "train"
    config.seed = args.seed
    config.space.name = "nb201"
    config.space.kwargs.num_classes = CLASSES.get(args.dataset, 10)
    t = config.train
    t.arch = "" if args.search else args.arch
    t.from_search = args.search
    t.epochs = args.epochs
    t.data.source = args.data
    t.data.dataset = args.dataset
    t.data.normalization = args.dataset
    t.data.path = configs.shared_path(*configs.CIFAR10_IMAGES)
    table = configs.NB201_ACCURACIES.path()
    if os.path.exists(table):
        config.benchmark.path = table
        config.benchmark.targets = (TARGETS.get(args.dataset, "cifar10_test"),)
    return config
