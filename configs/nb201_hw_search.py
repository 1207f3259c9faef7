"""Latency-aware search on NAS-Bench-201 x HW-NAS-Bench (edge GPU by default).

Commands:
  python -m jaxnas.main --config=configs/nb201_hw_search.py --workdir=runs/hw_pareto
  python -m jaxnas.main --config=configs/nb201_hw_search.py:mode=constrained \
      --workdir=runs/hw_constrained
  python -m jaxnas.main --config=configs/nb201_hw_search.py:fitness=nwot --workdir=runs/hw_nwot

`mode=pareto` (default): NSGA-II (population 50, 20 generations = 1,000 evaluations)
over (fitness, -latency), latency = HW-NAS-Bench `edgegpu_latency` (ms, CIFAR-10 file,
looked up on device). Each run's front is the non-dominated set of its history; it is
scored by its hypervolume in (200-epoch CIFAR-10 test accuracy, latency) relative to the
true front of all 15,625 cells (reference point: the worst accuracy and the largest
latency of the space).
`mode=constrained`: Zen-NAS / ZiCo-style evolution (population 50, one child per step,
lowest score evicted), children over `budget` ms (default 5, about the median cell)
rejected, 1,000 evaluations.
In both modes the report gives the fittest evaluated cell under `budget` beside the best
cell of the space under it.

`fitness`: `12ep` (default; 12-epoch cifar10-valid validation accuracy), or a proxy's
published score from NAS-Bench-Suite-Zero (`nwot`, `synflow`, ... columns of
`nb201_zc_suitezero_cifar10_9445.csv.gz`: the 9,445 cells Suite-Zero kept, one per
isomorphism class; the other 6,180 read NaN and never win), or `table=WORKDIR` for our
own score table of `proxy=NAME` (a score-mode run over all cells). 20 runs take about a
minute on a 2-core CPU (one vmapped program). Figures: WORKSPACE_NOTES.md, "Search".

Arguments: `:mode=pareto|constrained,fitness=F,runs=R,evals=E,budget=MS,device=COLUMN,
seed=S,table=DIR,proxy=NAME`.
"""

from jaxnas import configs, errors


def get_config(arg=None):
    args = configs.parse_arg(
        arg,
        mode="pareto",
        fitness="12ep",
        runs=20,
        evals=1000,
        budget=5.0,
        device="edgegpu_latency",
        seed=0,
        table="",
        proxy="naswot",
        population=50,
    )
    if args.mode not in ("pareto", "constrained"):
        raise errors.ConfigError(f"mode must be pareto or constrained; got {args.mode!r}")
    config = configs.default_config()
    config.mode = "search"
    config.seed = args.seed
    s = config.search
    s.num_runs = args.runs
    s.population_size = args.population
    if args.mode == "pareto":
        s.strategy = "nsga2"
        s.num_generations = max(args.evals // args.population, 1)
        s.cost.objective = True
    else:
        s.strategy = "evolution"
        s.params = {"children_per_step": 1}
        s.num_generations = args.evals
    s.cost.path = configs.shared_path("hwnasbench", "nb201_hw_nas_bench_cifar10.csv.gz")
    s.cost.column = args.device
    s.cost.budget = args.budget
    if args.table:
        s.fitness.source = "table"
        s.fitness.table = args.table
        config.proxies = (args.proxy,)
    elif args.fitness == "12ep":
        s.fitness.source = "benchmark"
        s.fitness.path = configs.shared_path("nasbench201", "nb201_acc_12ep_minibench.csv.gz")
        s.fitness.column = "cifar10valid_valid_12ep"
    else:
        s.fitness.source = "benchmark"
        s.fitness.path = configs.NB201_SUITE_ZERO.path()
        s.fitness.column = args.fitness
    config.benchmark.path = configs.NB201_ACCURACIES.path()
    config.benchmark.targets = ("cifar10_test", "cifar100_test", "imagenet16_120_test")
    return config
