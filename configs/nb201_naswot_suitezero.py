"""NASWOT fidelity check against NAS-Bench-Suite-Zero's published NB201 `nwot` scores.

Command:
  python -m jaxnas.main --config=configs/nb201_naswot_suitezero.py --workdir=runs/suitezero

Draws 1,000 distinct cells (seed 0) from `nb201_zc_suitezero_cifar10_9445.csv.gz` and
scores them with NASWOT on one batch of 64 real CIFAR-10 training images
(`images/cifar10_jpeg_yoongikim_train1280_test1000.npz`, NB201 normalisation, no
augmentation), one initialisation each. Reports Spearman / Kendall with bootstrap CIs of
ours vs `val_acc` (CIFAR-10 validation accuracy, 200 epochs), of ours vs the published
`nwot` column, and of `nwot` vs `val_acc` on the same cells.

Expected on a 2-core CPU: ~4 min. Bar (issue 2): |rho(ours, val_acc) - rho(nwot, val_acc)|
<= 0.03 and rho(ours, nwot) >= 0.90. Measured figures are in WORKSPACE_NOTES.md.

Arguments: `:size=N,seed=S,batch=B`.
"""

from jaxnas import configs


def get_config(arg=None):
    args = configs.parse_arg(arg, size=1000, seed=0, batch=64)
    config = configs.default_config()
    config.seed = args.seed
    config.population.source = "benchmark"
    config.population.size = args.size
    config.benchmark.path = configs.NB201_SUITE_ZERO.path()
    config.benchmark.targets = ("val_acc",)
    config.benchmark.references = ("nwot",)
    configs.use_cifar10_train_images(config.data)
    config.data.batch_size = args.batch
    return config
