"""KNAS on NB201: gradient kernel on N drawn cells, keep the top k, pick by 12-epoch accuracy.

Command (the run measured in WORKSPACE_NOTES.md, "Supernet search (issue 15)"):
  python -m jaxnas.main --config=configs/nb201_knas.py:pool=150,n=30,k=4,runs=100 \
      --workdir=runs/nb201_knas

The reference protocol (reference.md §A.4, §B.6): N=300 indices drawn with replacement,
top k=40 by the KNAS statistic (`knas(variant='code')`: the released code's statistic on
the benchmark network C=16/N=5, 50 single-image CIFAR-10 gradients), the pick by the
cell's 12-epoch `cifar10valid_valid_12ep` accuracy (the code reads epoch-20 validation
accuracy; the 12-epoch column of `nb201_acc_12ep_minibench.csv.gz` stands in), the
result reported as 200-epoch test accuracy on the three datasets.

Score once, look up many times: `pool` distinct cells (seeded) are scored once
(`pool_scores.npy` in the workdir, resumable) and each of `runs` runs draws its N cells
from that pool, so runs share the pool's scores. With `pool=15625` (the whole space,
about 8 CPU-hours at 1.9 s per cell) this equals live scoring with one initialisation
per cell; with a smaller pool keep N/pool small (N=30 of 150 here) or every run sees the
same cells. Runtime: pool x ~2-10 s per cell on a shared 2-core CPU, then < 1 s for
all runs (one vmapped program). KNAS reports 93.05 / 68.91 / 34.11 (C10 / C100 / IN16
test; reference.md §C.6, unverified).

Arguments: `:pool=M,n=N,k=K,runs=R,seed=S`.
"""

from jaxnas import configs


def get_config(arg=None):
    args = configs.parse_arg(arg, pool=150, n=300, k=40, runs=100, seed=0)
    config = configs.default_config()
    config.mode = "supernet"
    config.seed = args.seed
    config.proxies = ("knas(variant='code')",)
    config.num_inits = 1
    config.archs_per_call = 8
    config.population.source = "sample"
    config.population.size = args.pool
    configs.use_cifar10_train_images(config.data)
    config.data.batch_size = 50
    config.search.strategy = "knas"
    config.search.num_runs = args.runs
    config.search.params = dict(
        num_samples=args.n,
        top_k=args.k,
        signal_path=configs.shared_path("nasbench201", "nb201_acc_12ep_minibench.csv.gz"),
        signal_column="cifar10valid_valid_12ep",
    )
    config.benchmark.path = configs.NB201_ACCURACIES.path()
    config.benchmark.targets = ("cifar10_test", "cifar100_test", "imagenet16_120_test")
    return config
