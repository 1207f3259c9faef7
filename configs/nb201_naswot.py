"""The demo: NASWOT on a seeded sample of NAS-Bench-201 cells, synthetic inputs.

Command (no downloads, CPU):
  python -m jaxnas.main --config=configs/nb201_naswot.py --workdir=runs/demo

Scores 200 distinct seeded NB201 cells (C=16, N=5, 10 classes) with NASWOT on one
synthetic N(0, 1) batch of 128 images, the reference's batch size (the paper reports the
score is robust to Gaussian inputs). When
`../shared/data/nasbench201/nb201_test_acc_200ep.csv.gz` exists, it also reports Spearman /
Kendall (bootstrap 95 % CIs) against the 200-epoch test accuracies on CIFAR-10,
CIFAR-100 and ImageNet16-120.

Expected on a 2-core CPU: ~6 s of trace and compile, 0.15-0.4 s per cell, under 2 min
in all; Spearman
around 0.8 on the 200 cells (measured figures: WORKSPACE_NOTES.md).

Arguments: `:size=N,seed=S` (e.g. `--config=configs/nb201_naswot.py:size=50`).
"""

import os

from jaxnas import configs


def get_config(arg=None):
    args = configs.parse_arg(arg, size=200, seed=0)
    config = configs.default_config()
    config.seed = args.seed
    config.population.size = args.size
    table = configs.NB201_ACCURACIES.path()
    if os.path.exists(table):
        config.benchmark.path = table
        config.benchmark.targets = ("cifar10_test", "cifar100_test", "imagenet16_120_test")
    return config
