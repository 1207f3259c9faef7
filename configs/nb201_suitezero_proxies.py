"""The 13 NAS-Bench-Suite-Zero proxies on NB201 against their published scores.

Command:
  python -m jaxnas.main \\
      --config=configs/nb201_suitezero_proxies.py --workdir=runs/suitezero_proxies

Draws the same 1,000 distinct cells (seed 0) from
`nb201_zc_suitezero_cifar10_9445.csv.gz` as `configs/nb201_naswot_suitezero.py` and
scores them with every proxy of that table (our name -> its column): epe_nas, fisher,
flops, grad_norm, grasp, jacob_cov -> jacov, l2_norm, naswot -> nwot, params, plain, snip,
synflow, zen. Reports Spearman / Kendall with bootstrap CIs of ours vs `val_acc`
(CIFAR-10 validation accuracy after 200 epochs, as Suite-Zero), of ours vs the proxy's
own published column, and of each published column vs `val_acc` on the same cells.

Suite-Zero settings (shared/docs/reference.md §A.11-A.12; NASLib's benchmark runner):
one batch of 64 real CIFAR-10 training images (`cifar10_jpeg_yoongikim_...npz`, JPEG-
decoded: ~6/255 from the originals), NASLib's CIFAR-10 normalisation
(0.4914, 0.4822, 0.4465) / (0.2470, 0.2435, 0.2616) and its training augmentation
(random crop with 4 pixels of padding + horizontal flip), real labels, cross-entropy,
PyTorch default initialisation, BatchNorm with batch statistics, the full NB201 network
(C=16, N=5, 10 classes), one initialisation per cell. Differences: Suite-Zero drew a new
batch for every cell (here `per_cell=1`; by default one seeded batch serves all cells)
and used the exact CIFAR-10 pixels. zen draws its own Gaussian inputs, synflow uses one
all-ones image, params and l2_norm use no data, flops uses the image size only.

Cost on a quiet 2-core CPU (docs/performance.md, `scripts/bench_all.py --spaces nb201`,
2026-12-06): one at a time each gradient proxy takes 0.3-0.6 s per cell after 4-9 s of
compile (grasp 1.7 s after 18 s); all twelve fused (`fuse=1`) 2.0 s per cell after
~48 s (about 35 min for 1,000 cells); params, flops, l2_norm, synflow together < 50 ms
per cell; plus ~4 s once for the initialisation program. Bar (issue 3):
|rho(ours, val_acc) - rho(column, val_acc)| <= 0.05 per proxy; params and flops equal
their columns to 0.1 %. Results: docs/proxy_correlations.md.

Arguments: `:size=N,seed=S,batch=B,per_cell=1,proxies=a+b+c,fuse=1`: `per_cell=1` draws
a batch per cell (`data.batch_per_arch`); `proxies` a `+`-separated subset; `fuse=1`
scores the proxies in one program per set of network overrides, which computes the loss
gradient shared by snip / grad_norm / plain and the input gradient shared by jacob_cov /
epe_nas once. The cells of a size-n run are among those of any larger size (same seed).
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
    "zen",
)


def get_config(arg=None):
    config, _ = configs.suite_zero(arg, configs.NB201_SUITE_ZERO, PROXIES, size=1000)
    return config
