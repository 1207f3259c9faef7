"""NAS-Bench-Suite-Zero proxies on NAS-Bench-101 against their published scores.

Command:
  python -m jaxnas.main \\
      --config=configs/nb101_suitezero_proxies.py --workdir=runs/nb101_suitezero

Scores the cells of `nasbench101/nb101_zc_suitezero_subset250_cifar10.csv.gz` (250
cells, every second row of an early Suite-Zero file) as Suite-Zero did (settings in
`configs.suite_zero`): NASLib's NB101 network, i.e. the benchmark's (128-channel
stem, 3 stacks x 3 cells, 10 classes), one batch of 64 augmented real CIFAR-10 images,
one initialisation per cell. Reports Spearman / Kendall with bootstrap CIs of ours vs
`val_acc` (108-epoch CIFAR-10 validation accuracy), of ours vs the proxy's published
column and of that column vs `val_acc`, on the same cells.

The table's batch-dependent columns were scored at batch 32, not the paper's 64: their
levels are those of `batch=32` (jacob_cov x0.5, epe_nas ~x0.25, snip and grad_norm
x1.4 against ours at 64; WORKSPACE_NOTES.md). Rank correlations of the scale-free
proxies hardly change; pass `:batch=32` to compare the others like for like.

Proxies (our name -> its column): epe_nas, fisher, flops, grad_norm, grasp, jacob_cov ->
jacov, l2_norm, params, plain, snip, synflow (every column of the table). The table has
no nwot column (NASWOT on NB101: `configs/nb101_naswot.py`).

Published (shared/docs/reference.md §C.4, 1,000 cells): Spearman vs val_acc params
0.37, l2_norm 0.50, synflow 0.31, grasp 0.27, epe_nas 0.00, snip -0.19, grad_norm
-0.25, jacov -0.29, plain -0.32.

The 128-channel network costs ~60x the FLOPs of NASWOT's 16-channel one on this CPU;
`stem=16` is the cheap variant (not Suite-Zero's setting).

Initialisation: NASLib's NB101 network draws conv kernels from N(0, 2 / (k^2 C_out)) at
each vertex's own width and the classifier from N(0, 0.01^2) (`init=nb101`, the space's
default; `nb101.space`); `init=pytorch` is PyTorch's default instead. BatchNorm follows
every conv, so only l2_norm, grad_norm and synflow (BN off) depend on it.

Arguments: `:size=N,seed=S,batch=B,stem=C,init=I,per_cell=1,proxies=a+b,fuse=1` (see
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
    "params",
    "plain",
    "snip",
    "synflow",
)


def get_config(arg=None):
    config, args = configs.suite_zero(
        arg, configs.NB101_SUITE_ZERO, PROXIES, size=250, stem=128, init="nb101"
    )
    config.space.kwargs = {"stem_channels": args.stem, "init": args.init}
    return config
