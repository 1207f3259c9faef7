"""REA and AREA on NAS-Bench-201 by benchmark lookup (NASWOT Table 2a's REA and AREA rows).

Commands:
  python -m jaxnas.main --config=configs/nb201_rea.py --workdir=runs/rea
  python -m jaxnas.main --config=configs/nb201_rea.py:area --workdir=runs/area

REA as NB201 runs it (shared/docs/reference.md §B.3): population 10, tournament 3, one
child per cycle (a one-position mutation), fitness = the 12-epoch `cifar10-valid`
validation accuracy (`nb201_acc_12ep_minibench.csv.gz`, column `cifar10valid_valid_12ep`),
looked up on device; the answer is the fittest cell of the history. NB201 stops at 12,000
simulated seconds; the shared tables have no training-time column, so this stops at a
fixed evaluation budget instead (`evals`, default 150 evaluations including the initial
10). R = 100 seeds run as one vmapped program (seconds on a CPU).

AREA (`:area`, NASWOT Alg. 2, §B.2): the initial 10 are the top 10 of M = `m` (default
20, the paper's) random cells by a live NASWOT score (one seeded batch of 128 real
CIFAR-10 training images and one initialisation per run, as NASWOT's search), then the
same REA. The NASWOT scores are not counted as evaluations. Live scoring makes AREA one
compiled program per run: about 0.5 s per scored cell on a quiet 2-core CPU (~10 s a run).
With `:area,table=WORKDIR` the warm-up reads a NASWOT score table instead (a score-mode
run over all 15,625 cells, configs/nb201_naswot_table.py), and with `:area,warmup=nwot`
NAS-Bench-Suite-Zero's published NASWOT scores (`nwot` of
`nb201_zc_suitezero_cifar10_9445.csv.gz`; its 9,445 cells, one per isomorphism class: a
drawn cell outside them reads NaN and ranks last); both by lookup, all runs one program.

Reports (runs.jsonl, summary.json, curve.png): the chosen cells' 200-epoch test accuracy
and NASLib's validation accuracy on CIFAR-10, CIFAR-100 and ImageNet16-120 (mean +- std,
95 % CI), beside NASWOT Table 2a's row (500 runs, 12,000 s budget).

Arguments: `:runs=R,evals=E,seed=S,tournament=T,area,m=M,table=DIR,warmup=nwot,batch=B`.
"""

from jaxnas import configs


def get_config(arg=None):
    args = configs.parse_arg(
        arg,
        runs=100,
        evals=150,
        seed=0,
        tournament=3,
        area=False,
        m=20,
        table="",
        warmup="",
        batch=128,
    )
    config = configs.default_config()
    config.mode = "search"
    config.seed = args.seed
    s = config.search
    s.strategy = "rea"
    s.population_size = 10
    s.num_generations = args.evals
    s.num_runs = args.runs
    s.params = {"tournament_size": args.tournament, "children_per_step": 1}
    twelve = configs.shared_path("nasbench201", "nb201_acc_12ep_minibench.csv.gz")
    s.fitness.source = "benchmark"
    s.fitness.path = twelve
    s.fitness.column = "cifar10valid_valid_12ep"
    config.benchmark.path = configs.NB201_ACCURACIES.path()
    config.benchmark.extra_paths = (
        configs.shared_path("nasbench201", "nb201_val_acc_zen_suitezero.csv.gz"),
    )
    config.benchmark.targets = (
        "cifar10_test",
        "cifar100_test",
        "imagenet16_120_test",
        "cifar10_val_acc",
        "cifar100_val_acc",
        "imagenet16_120_val_acc",
    )
    row = {  # NASWOT Table 2a (shared/docs/reference.md §C.3)
        "cifar10_test": (93.92, 0.30),
        "cifar100_test": (71.84, 0.99),
        "imagenet16_120_test": (45.54, 1.03),
        "cifar10_val_acc": (91.19, 0.31),
        "cifar100_val_acc": (71.81, 1.12),
        "imagenet16_120_val_acc": (45.15, 0.89),
    }
    config.report.published_source = "NASWOT Table 2a, REA (500 runs, 12000 s)"
    if args.area:
        s.warmup.size = args.m
        s.warmup.source = "table" if args.table else "proxy"
        s.warmup.table = args.table
        if args.warmup:
            s.warmup.source = "benchmark"
            s.warmup.path = configs.shared_path(
                "nasbench201", "nb201_zc_suitezero_cifar10_9445.csv.gz"
            )
            s.warmup.column = args.warmup
        config.proxies = ("naswot",)
        configs.use_cifar10_train_images(config.data)
        config.data.batch_size = args.batch
        config.archs_per_call = args.m
        row = {  # AREA has no test columns in Table 2a
            "cifar10_val_acc": (91.20, 0.27),
            "cifar100_val_acc": (71.95, 0.99),
            "imagenet16_120_val_acc": (45.70, 1.05),
        }
        config.report.published_source = "NASWOT Table 2a, AREA (500 runs, 12000 s)"
    config.report.published = row
    return config
