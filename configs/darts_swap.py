"""SWAP on the 1,000 DARTS cells of the SWAP repository, against their accuracies.

Command:
  python -m jaxnas.main --config=configs/darts_swap.py --workdir=runs/darts_swap

Scores every cell of `nasbench301_darts/swap_darts_1000_cifar10.csv.gz` (the
source's 1,000 DARTS cells: 8 ops including `none`, reduce cell =
normal cell) with SWAP as its `correlation.py` does (reference.md §A.6): the network is
its `Network(3, 10, 1, genotype)`, i.e. no stem and a single reduction cell (C=3, so 6
channels per node) on the images, DARTS evaluation ops (BN with affine parameters, no BN
after pooling), features pooled; 16 real CIFAR-10 training images (NASLib / SWAP
normalisation, no augmentation: its `RandomCrop(32, padding=0)` is the identity); 32
repeats, each re-drawing the weights N(0, 1) (BN gain 1, shift 0), score = their mean:
`swap` with K = 32 initialisation keys and the mean aggregate. Reports Spearman /
Kendall with bootstrap CIs vs `cifar10_valid_acc_200ep`.

Published: regularised SWAP, DARTS CIFAR-10, Spearman 0.93 (SWAP journal extension,
abstract; reference.md §C.8). This config scores plain SWAP (no size regulariser, whose
mu and sigma the repository does not give for DARTS); `proxies=swap(mu=..,sigma=..)`
scores the regularised form.

Arguments: `:size=N,seed=S,batch=B,repeats=K,proxy=SPEC`.
"""

from jaxnas import configs, proxies
from jaxnas.spaces import darts

# SWAP's reference protocol: 16 images, 32 repeats.
PROTOCOL = proxies.PROXIES["swap"].protocol


def get_config(arg=None):
    args = configs.parse_arg(
        arg,
        size=1000,
        seed=0,
        batch=PROTOCOL.batch_size,
        repeats=PROTOCOL.num_inits,
        proxy="swap",
    )
    config = configs.default_config()
    config.seed = args.seed
    config.proxies = (args.proxy,)
    config.num_inits = args.repeats
    config.aggregate = "mean"
    config.space.name = "darts"
    config.space.kwargs = {
        "channels": 3,
        "num_cells": 1,
        "cell_ops": darts.DARTS_OPS,
        "stem": "none",
        "affine_ops": True,
        "pool_bn": False,
    }
    config.population.source = "benchmark"
    config.population.size = args.size
    config.benchmark.path = configs.shared_path(
        "nasbench301_darts", "swap_darts_1000_cifar10.csv.gz"
    )
    config.benchmark.key = "genotype"
    config.benchmark.targets = ("cifar10_valid_acc_200ep",)
    configs.use_cifar10_train_images(config.data)
    config.data.normalization = "cifar10-naslib"
    config.data.batch_size = args.batch
    return config
