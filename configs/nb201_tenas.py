"""TE-NAS's two proxies on NB201 cells, each on its own proxy network and inputs.

Commands:
  python -m jaxnas.main --config=configs/nb201_tenas.py:proxy=ntk --workdir=runs/tenas_ntk
  python -m jaxnas.main --config=configs/nb201_tenas.py:proxy=regions --workdir=runs/tenas_lr

`proxy=ntk`: `ntk_cond` (-log of the NTK condition number) on TE-NAS's NTK network
(C=3, one cell per stage) with a batch of 72 real CIFAR-10 training images (NB201
normalisation), BatchNorm with batch statistics, PyTorch default init (the released
code's Kaiming re-initialisation never runs; reference.md §F.1), K=3 initialisations.
`proxy=regions`: `linear_regions` on TE-NAS's thin network (one cell at C=1, no stem)
with 3000 random 3x3 single-channel crops of those images, BatchNorm statistics per
1000 crops, K=3. Both score `size` distinct seeded cells and report Spearman / Kendall
(bootstrap 95 % CIs) against 200-epoch test accuracy on the three NB201 datasets.

Measured figures: docs/proxy_correlations.md (`scripts/proxy_report.py` scores both with
these protocols) and WORKSPACE_NOTES.md. TE-NAS reports, on CIFAR-100, Kendall tau
-0.42 for kappa and 0.50 for the region count (reference.md §C.5).

The network, inputs and K are the proxies' registered reference protocols
(`proxies.PROXIES["ntk_cond"].protocol`, `["linear_regions"]`). Arguments:
`:proxy=ntk|regions,size=N,seed=S`.
"""

from jaxnas import configs, errors, proxies

PROXIES = {"ntk": "ntk_cond", "regions": "linear_regions"}


def get_config(arg=None):
    args = configs.parse_arg(arg, proxy="ntk", size=200, seed=0)
    if args.proxy not in PROXIES:
        raise errors.ConfigError(f"unknown TE-NAS proxy {args.proxy!r}; expected ntk or regions")
    name = PROXIES[args.proxy]
    protocol = proxies.PROXIES[name].protocol  # TE-NAS's network, inputs and K
    config = configs.default_config()
    config.seed = args.seed
    config.population.size = args.size
    config.proxies = (name,)
    config.num_inits = protocol.num_inits
    config.space.kwargs = dict(protocol.network)
    configs.use_cifar10_train_images(config.data)
    if protocol.crop_size is None:
        config.data.batch_size = protocol.batch_size
    else:
        config.data.crops = protocol.batch_size
        config.data.crop_size = protocol.crop_size
    config.benchmark.path = configs.NB201_ACCURACIES.path()
    config.benchmark.targets = ("cifar10_test", "cifar100_test", "imagenet16_120_test")
    return config
