"""NASWOT on NAS-Bench-101: correlation with validation accuracy on the 250-cell table.

Command:
  python -m jaxnas.main --config=configs/nb101_naswot.py --workdir=runs/nb101_naswot

Scores every cell of `nasbench101/nb101_zc_suitezero_subset250_cifar10.csv.gz` (250
cells; every second row of an early NAS-Bench-Suite-Zero file) with NASWOT as the
NASWOT paper scores NB101: the benchmark's network with a 16-channel stem
(`nas_101_api/model.py`, `--stem_out_channels 16`; 3 stacks x 3 cells), one batch of 128
real CIFAR-10 training images (`images/cifar10_jpeg_yoongikim_train1280_test1000.npz`,
NB201/NASWOT normalisation, no augmentation), BatchNorm on batch statistics, one
initialisation per cell. Reports Spearman / Kendall with bootstrap CIs of the score vs
`val_acc` (108-epoch CIFAR-10 validation accuracy) and, for comparison, of the table's
own proxy columns vs `val_acc` on the same cells.

Published: NASWOT on NB101 Kendall 0.285 (NASWOT paper, Fig. 3, ~1000 cells), Suite-Zero
`nwot` Spearman 0.31 (1000 cells, NASLib network with the 128-channel stem, batch 64).
The table has no `nwot` column, so there is no per-cell reference score.

Expected on the 2-core CPU: ~2 min compile, then ~1-2 s per cell: ~8-10 min (longer
when the machine is shared). Measured figures: see WORKSPACE_NOTES.md.

Arguments: `:size=N,seed=S,batch=B,stem=C,inits=K` (`stem=128,batch=64` is the
Suite-Zero setting).
"""

from jaxnas import configs


def get_config(arg=None):
    args = configs.parse_arg(arg, size=250, seed=0, batch=128, stem=16, inits=1)
    config = configs.default_config()
    config.seed = args.seed
    configs.draw_cells(config, configs.NB101_SUITE_ZERO, args.size)
    config.space.kwargs = {"stem_channels": args.stem}
    config.num_inits = args.inits
    config.benchmark.targets = ("val_acc",)
    config.benchmark.references = ("params", "flops", "synflow", "snip", "jacov")
    configs.use_cifar10_train_images(config.data)
    config.data.batch_size = args.batch
    return config
