"""NASWOT search on NAS-Bench-201 (Mellor et al. 2021, Table 2a protocol).

Command:
  python -m jaxnas.main --config=configs/nb201_naswot_search.py --workdir=runs/search

R = 100 independent runs (seed s: run r uses `fold_in(key(s), r)`). Each run samples
N = 100 cells uniformly with replacement, draws one batch of 128 real CIFAR-10 training
images (from the 1,280 in `images/cifar10_jpeg_yoongikim_train1280_test1000.npz`, NB201
normalisation, no augmentation) shared by all its candidates, scores each with NASWOT
under one fresh initialisation (per run, shared by that run's candidates), and keeps the
arg-max. Reports the chosen cells' 200-epoch test accuracies on CIFAR-10, CIFAR-100 and
ImageNet16-120 (mean +- std over runs) and the optimum within each run's sample.

Paper (500 runs, N=100): CIFAR-10 test 92.81 +- 0.99. Expected on a 2-core CPU: about
0.4 s per candidate, ~70 min for 100 x 100. Measured figures are in WORKSPACE_NOTES.md.

Score once, search many (`:table=WORKDIR`): the same search by lookup in a NASWOT score
table of all 15,625 cells (configs/nb201_naswot_table.py), each evaluation drawing one of
the table's K initialisations; all R runs are one vmapped program (seconds). NASWOT
Table 2a's three rows, 500 runs each:
  python -m jaxnas.main \
      --config=configs/nb201_naswot_search.py:runs=500,n=10,table=runs/naswot_table \
      --workdir=runs/naswot_n10
  (and n=100, n=1000). This differs from the live search in one way: the table scored every
cell on one seeded batch, where the live search draws a batch per run.

Arguments: `:runs=R,n=N,seed=S,batch=B,table=DIR`.
"""

from jaxnas import configs


def get_config(arg=None):
    args = configs.parse_arg(arg, runs=100, n=100, seed=0, batch=128, table="")
    config = configs.default_config()
    config.mode = "search"
    config.seed = args.seed
    config.search.num_runs = args.runs
    config.search.population_size = args.n
    config.archs_per_call = 20
    config.benchmark.path = configs.NB201_ACCURACIES.path()
    config.benchmark.targets = ("cifar10_test", "cifar100_test", "imagenet16_120_test")
    configs.use_cifar10_train_images(config.data)
    config.data.batch_size = args.batch
    if args.table:
        config.search.fitness.source = "table"
        config.search.fitness.table = args.table
    config.report.published_source = "NASWOT Table 2a (500 runs)"
    config.report.published = PUBLISHED.get(args.n, {})
    return config


PUBLISHED = {  # NASWOT Table 2a test columns (shared/docs/reference.md §C.3)
    10: {
        "cifar10_test": (92.44, 1.13),
        "cifar100_test": (68.62, 2.04),
        "imagenet16_120_test": (41.31, 4.11),
    },
    100: {
        "cifar10_test": (92.81, 0.99),
        "cifar100_test": (69.48, 1.70),
        "imagenet16_120_test": (43.10, 3.16),
    },
    1000: {
        "cifar10_test": (92.96, 0.81),
        "cifar100_test": (69.98, 1.22),
        "imagenet16_120_test": (44.44, 2.10),
    },
}
