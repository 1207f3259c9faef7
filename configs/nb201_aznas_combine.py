"""L-SWAG Table 1's AZ-NAS row on NB201 CIFAR-10: our AZ-NAS components, log-rank combined.

Command:
  nice -n 10 python -m jaxnas.main \\
      --config=configs/nb201_aznas_combine.py --workdir=runs/aznas_nb201_1000

Scores 1,000 NB201 cells (drawn from `nb201_test_acc_200ep.csv.gz` with the seed) with
AZ-NAS's expressivity, progressivity and trainability (reference protocol: Kaiming-normal
re-initialisation, a Gaussian input batch of 64, the full C=16, N=5 network; see
`jaxnas.proxies.aznas`) and flops, then combines them with AZ-NAS's non-linear rank
aggregation, sum_m log(rank_m / P) (`combine.method = "log_rank"`; no accuracy is used, so
every cell is held apart). Reports Spearman / Kendall of the combined score against the
200-epoch CIFAR-10, CIFAR-100 and ImageNet16-120 test accuracies (the components are
computed once, with the 10-class head; AZ-NAS's inputs are Gaussian, so the dataset only
changes the head) and of each component.

Cost: about 9 s per cell on the 2-core CPU for the three components at batch 64
(docs/proxy_correlations.md: 2.6 + 4.4 + 2.1 s, plus ~2 min of compiles), i.e. ~2.5 h
for 1,000 cells; the run checkpoints per call and resumes with the same command. Not run
at full size on the shared CPU of this session, only end to end on a tiny network (see
WORKSPACE_NOTES.md, "Proxy combination and LIBRA-NAS"); AZ-NAS's own notebook gives
Spearman 0.913 on all 15,625 cells and L-SWAG Table 1 0.91 / 0.90 / 0.89; our 200-cell
rows are 0.901 (CIFAR-100) and 0.848 (ImageNet16-120) in docs/proxy_correlations.md.

Arguments: `:size=N,seed=S,batch=B` (defaults 1000, 0, 64).
"""

from jaxnas import configs

COMPONENTS = ("az_expressivity", "az_progressivity", "az_trainability", "flops")


def get_config(arg=None):
    args = configs.parse_arg(arg, size=1000, seed=0, batch=64)
    config = configs.default_config()
    config.seed = args.seed
    config.proxies = COMPONENTS
    config.population.source = "benchmark"
    config.population.size = args.size
    config.benchmark.path = configs.shared_path("nasbench201", "nb201_test_acc_200ep.csv.gz")
    config.benchmark.targets = ("cifar10_test", "cifar100_test", "imagenet16_120_test")
    config.data.batch_size = args.batch
    config.combine.method = "log_rank"
    config.report.num_bootstrap = 1000
    return config
