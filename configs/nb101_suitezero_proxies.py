"""NAS-Bench-Suite-Zero proxies on NAS-Bench-101 against their published scores.

Command:
  python -m jaxnas.main \\
      --config=configs/nb101_suitezero_proxies.py --workdir=runs/nb101_suitezero

Scores the cells of `nasbench101/nb101_zc_suitezero_subset250_cifar10.csv.gz` (250
cells, every second row of an early Suite-Zero file) as Suite-Zero did (settings in
`experiment.suite_zero`): NASLib's NB101 network, i.e. the benchmark's (128-channel
stem, 3 stacks x 3 cells, 10 classes), one batch of 64 augmented real CIFAR-10 images,
one initialisation per cell. Reports Spearman / Kendall with bootstrap CIs of ours vs
`val_acc` (108-epoch CIFAR-10 validation accuracy), of ours vs the proxy's published
column and of that column vs `val_acc`, on the same cells.

Proxies (our name -> its column): epe_nas, grad_norm, grasp, jacob_cov -> jacov,
l2_norm, params, plain, snip, synflow. The table's fisher and flops columns have no
counterpart yet: NB101 networks record no layer probes or op costs, and those proxies
raise a ConfigError. The table has no nwot column (NASWOT on NB101:
`configs/nb101_naswot.py`).

Published (shared/docs/reference.md §C.4, 1,000 cells): Spearman vs val_acc params
0.37, l2_norm 0.50, synflow 0.31, grasp 0.27, epe_nas 0.00, snip -0.19, grad_norm
-0.25, jacov -0.29, plain -0.32.

The 128-channel network costs ~60x the FLOPs of NASWOT's 16-channel one on this CPU;
`stem=16` is the cheap variant (not Suite-Zero's setting).

Arguments: `:size=N,seed=S,batch=B,stem=C,proxies=a+b,fuse=1` (see
`configs/nb201_suitezero_proxies.py`).
"""

from jaxnas import experiment

PUBLISHED_COLUMN = {
    "epe_nas": "epe_nas",
    "grad_norm": "grad_norm",
    "grasp": "grasp",
    "jacob_cov": "jacov",
    "l2_norm": "l2_norm",
    "params": "params",
    "plain": "plain",
    "snip": "snip",
    "synflow": "synflow",
}


def get_config(arg=None):
    args = experiment.parse_arg(arg, size=250, seed=0, batch=64, stem=128, proxies="", fuse=False)
    config = experiment.default_config()
    config.seed = args.seed
    config.fuse_proxies = args.fuse
    config.space.name = "nb101"
    config.space.kwargs = {"stem_channels": args.stem}
    config.benchmark.key = "arch"
    config.benchmark.key_columns = ("adjacency_rows", "ops")
    names = tuple(args.proxies.split("+")) if args.proxies else tuple(sorted(PUBLISHED_COLUMN))
    table = experiment.shared_path("nasbench101", "nb101_zc_suitezero_subset250_cifar10.csv.gz")
    return experiment.suite_zero(config, table, PUBLISHED_COLUMN, names, args.size, args.batch)
