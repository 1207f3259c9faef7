"""L-SWAG Table 1's AZ-NAS rows: our AZ-NAS components, log-rank combined.

Command:
  nice -n 10 python -m jaxnas.main \\
      --config=configs/aznas_combine.py --workdir=runs/aznas_nb201_1000

Scores 1,000 NB201 cells (drawn from `nb201_test_acc_200ep.csv.gz` with the seed) with
AZ-NAS's expressivity, progressivity and trainability (reference protocol: Kaiming-normal
re-initialisation, a Gaussian input batch of 64, the full C=16, N=5 network; see
`jaxnas.proxies.aznas`) and flops, then combines them with AZ-NAS's non-linear rank
aggregation, sum_m log(rank_m / P) (`combine.method = "log_rank"`; no accuracy is used, so
every cell is held apart). Reports Spearman / Kendall of the combined score against the
200-epoch CIFAR-10, CIFAR-100 and ImageNet16-120 test accuracies (the components are
computed once, with the 10-class head; AZ-NAS's inputs are Gaussian, so the dataset only
changes the head) and of each component.

Result (seed 0, 2026-12-03, 2-core CPU): Spearman of the combined score 0.916
[0.903, 0.926] (CIFAR-10), 0.900 [0.886, 0.913] (CIFAR-100), 0.877 [0.858, 0.893]
(ImageNet16-120) on the 1,000 cells; L-SWAG Table 1: 0.91 / 0.90 / 0.89; AZ-NAS's own
notebook 0.913 on all 15,625 cells. Components alone on CIFAR-10: expressivity 0.748,
progressivity 0.693, trainability 0.496, flops 0.742.

Cost: 0.35 + 0.47 + 0.56 s per cell for the three components after ~1 min of compile
each (the last two beside another score run on the same 2 cores), about 27 min for
1,000 cells (WORKSPACE_NOTES.md, "Proxy combination and
LIBRA-NAS"); the run checkpoints per call and resumes with the same command.

NB101 and NB301 (`bench=nb101 | nb301`): the cells of the NAS-Bench-Suite-Zero tables
LIBRA's rows use (250 and 363; `configs/libra_suitezero.py`), their benchmark networks
(NB101: 128-channel stem, 3 x 3 cells; NB301: C=32, 8 cells), Spearman against the
tables' `val_acc` (L-SWAG Table 1: AZ-NAS 0.54 on NB101, 0.70 on NB301). The blocks are
the stem and every cell (`jaxnas.proxies.blocks.SPACE_BLOCKS`); a DARTS cell's
trainability is its Jacobian with respect to both inputs (`jaxnas.proxies.aznas`).

Result NB101 (`:bench=nb101,fuse=1,stem=16`, the 16-channel-stem variant, 2026-12-04,
16 min, 3.0 s per cell beside a compile benchmark): log-rank Spearman 0.717 [0.648,
0.767] on the 250 cells (expressivity 0.761, progressivity 0.428, trainability 0.297,
flops 0.721), with blocks that span from the stem's ReLU output to each cell's output
(the max-pools inside; the 0.743 of 2026-12-03 read the stem before its ReLU and left
the pools out of every block); the benchmark's 128-channel stem costs ~60x the FLOPs
(its run wrote no checkpoint, due after 32 cells, in 18 min on the 2 shared cores) and
is not yet measured.

Arguments: `:bench=nb201|nb101|nb301,size=N,seed=S,batch=B,stem=C,fuse=1` (defaults
nb201, all cells of the bench (1,000 for nb201), 0, 64, 128, off; `stem` is NB101's stem
width; `fuse=1` scores the three components in one program, where they share one
forward and backward pass).
"""

from jaxnas import configs

COMPONENTS = ("az_expressivity", "az_progressivity", "az_trainability", "flops")
# bench -> (table, default number of cells, accuracy columns)
BENCHES = {
    "nb201": (
        configs.NB201_ACCURACIES,
        1000,
        ("cifar10_test", "cifar100_test", "imagenet16_120_test"),
    ),
    "nb101": (configs.NB101_SUITE_ZERO, 250, ("val_acc",)),
    "nb301": (configs.NB301_SUITE_ZERO, 363, ("val_acc",)),
}


def get_config(arg=None):
    args = configs.parse_arg(arg, bench="nb201", size=0, seed=0, batch=64, stem=128, fuse=False)
    config, _ = configs.bench_scores(args, BENCHES, COMPONENTS)
    config.combine.method = "log_rank"
    config.report.num_bootstrap = 1000
    return config
