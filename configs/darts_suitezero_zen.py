"""NASWOT and Zen-NAS on NAS-Bench-Suite-Zero's 11,221 DARTS cells (no accuracies).

Command:
  python -m jaxnas.main \\
      --config=configs/darts_suitezero_zen.py:size=300 --workdir=runs/darts_zen

`nasbench301_darts/nb301_nwot_zen_suitezero_11221_noacc.csv.gz` holds Suite-Zero's
`nwot` and `zen` scores of 11,221 NB301 cells and no accuracy, so it checks our scores
cell by cell and in scale, not a correlation with accuracy. `size` seeded cells (default
300) are scored as in `configs/darts_suitezero_proxies.py` (NASLib's NB301 network, one
batch of augmented real CIFAR-10 images, one initialisation per cell) and correlated
with their columns (`naswot` -> `nwot`, `zen` -> `zen`); the report gives Spearman /
Kendall with bootstrap CIs.

Measured (2026-11-23, one core of the 2-core CPU, 300 cells): rho(ours, column) naswot
0.996, zen 1.000, medians within 0.1 % of the columns' (WORKSPACE_NOTES.md); about
1.1 s per cell per proxy after a 1.5-3 min compile.

Arguments: `:size=N,seed=S,batch=B,per_cell=1,proxies=a+b,fuse=1` (see
`configs/nb201_suitezero_proxies.py`).
"""

from jaxnas import configs

TABLE = configs.Table(
    "darts", "nasbench301_darts", "nb301_nwot_zen_suitezero_11221_noacc.csv.gz", "genotype"
)


def get_config(arg=None):
    config, _ = configs.suite_zero(arg, TABLE, ("naswot", "zen"), size=300)
    config.benchmark.targets = ()
    return config
