"""NASWOT and the NAS-Bench-Suite-Zero proxies on the NAS-Bench-301 (DARTS) subset.

Command:
  python -m jaxnas.main \\
      --config=configs/darts_suitezero_proxies.py --workdir=runs/darts_suitezero

Scores the cells of `nasbench301_darts/nb301_zc_suitezero_subset363_cifar10.csv.gz`
(363 DARTS cells with NB301 surrogate `val_acc` and Suite-Zero's scores) as Suite-Zero
did (settings in `configs.suite_zero`) on the network it scored: NASLib's NB301
model (stem 96, C=32, 8 cells, 10 classes, parameter-free BatchNorm in the cell ops, no
auxiliary head; the `darts` space's defaults, whose parameter counts equal the table's
`params` column), one batch of 64 augmented real CIFAR-10 images, one initialisation
per cell. Reports Spearman / Kendall with bootstrap CIs of ours vs `val_acc`, of ours
vs the proxy's published column and of that column vs `val_acc`, on the same cells.

The table's batch-dependent columns were scored at batch 32, not the paper's 64: their
levels are those of `batch=32` (jacob_cov x0.5, epe_nas ~x0.25, snip and grad_norm
x1.4 against ours at 64; WORKSPACE_NOTES.md). Rank correlations of the scale-free
proxies hardly change; pass `:batch=32` to compare the others like for like.

Proxies (our name -> its column): epe_nas, fisher, flops, grad_norm, grasp, jacob_cov
-> jacov, l2_norm, naswot -> nwot, params, plain, snip, synflow: every column. flops
counts what tensorwatch counted on that network (its BatchNorms without affine
parameters 1 per element, the others 2) and equals the column.

Cost on the 2-core CPU: docs/performance.md (`scripts/bench_all.py --spaces darts`);
each proxy on its own compiles in 1-45 s (plus ~9 s once for the initialisation
program) and takes 0.02-4 s per cell; `proxies=snip+grad_norm+plain+jacob_cov+epe_nas,
fuse=1` compiles in ~38 s and then takes ~3 s per cell for the five (3.1 GB peak;
2026-12-06). flops takes 15 s for all 363 cells (it depends only on shapes and the
genotype). `proxies=grasp,batch=32` (2026-11-22, before
the cells' edges were scanned: ~25 min compile, 7.2 s per cell): Spearman vs val_acc
0.324, column 0.401, rho(ours, column) 0.434 (WORKSPACE_NOTES.md).

Published (shared/docs/reference.md §C.4, NB301 CIFAR-10, 1,000 cells): Spearman vs
val_acc nwot 0.47, params 0.46, l2_norm 0.45, synflow 0.18, grasp 0.34, epe_nas 0.00,
snip -0.05, grad_norm -0.04, jacov -0.04, plain -0.32.

Arguments: `:size=N,seed=S,batch=B,per_cell=1,proxies=a+b,fuse=1` (see
`configs/nb201_suitezero_proxies.py`).
"""

from jaxnas import configs

PROXIES = (
    "epe_nas",
    "fisher",
    "flops",
    "grad_norm",
    "grasp",
    "jacob_cov",
    "l2_norm",
    "naswot",
    "params",
    "plain",
    "snip",
    "synflow",
)


def get_config(arg=None):
    config, _ = configs.suite_zero(arg, configs.NB301_SUITE_ZERO, PROXIES, size=363)
    return config
