"""L-SWAG Table 1's LIBRA row (and the field's combiners) on the published Suite-Zero scores.

Command (one benchmark per run; `bench` = nb201_c10 | nb201_c100 | nb201_in16 | nb101 |
nb301):
  python -m jaxnas.main \\
      --config=configs/libra_suitezero.py:bench=nb201_c10 --workdir=runs/libra_nb201_c10

No network is scored: the score matrix is the table's published NAS-Bench-Suite-Zero
proxy columns (every proxy column of the table, flops and params included), so a run
takes seconds. `method=libra` (default) draws the population from the table with the
seed, holds `calibration` of its cells apart for LIBRA-NAS's selection (Alg. 1: best
Spearman; minimum information gain given it among those within 0.1; bias closest to the
accuracy's) and reports Spearman / Kendall of the fused score (rank sum of the three)
against `val_acc` on the other cells only. `combine.json` in the workdir holds the
split, the selection and every quantity it used. `method=log_rank | rank_sum | vote`
combine all columns (no calibration; `vote` uses synflow, jacov, snip as zero-cost-nas).

Cells (population / calibration): nb201_c10 2,000 of the 9,445-cell final release /
1,000; nb201_c100 and nb201_in16 all 725 / 724 cells of the early 3-dataset run / 362;
nb101 250 / 125; nb301 363 / 181. Result (seed 0, held-apart Spearman vs val_acc,
2026-12-02): nb201_c10 0.857 (chose jacov + epe_nas + nwot), nb201_c100 0.848,
nb201_in16 0.810 (nwot + l2_norm + synflow), nb101 0.732 (flops + params + synflow),
nb301 0.524 (nwot + l2_norm + flops); L-SWAG Table 1: 0.89 / 0.90 / 0.87 / 0.77 / 0.74
with its own proxy set (incl. L-SWAG). Other splits move these by 0.01-0.06
(`scripts/combination_report.py`, docs/combination.md).

Arguments: `:bench=B,method=M,fusion=rank_sum|log_rank,calibration=N,size=N,seed=S`.
"""

from jaxnas import configs, errors

SUITE_ZERO = (
    "epe_nas",
    "fisher",
    "flops",
    "grad_norm",
    "grasp",
    "jacov",
    "l2_norm",
    "nwot",
    "params",
    "plain",
    "snip",
    "synflow",
    "zen",
)
# bench -> (table, rows kept, default cells, calibration cells, columns)
BENCHES = {
    "nb201_c10": (configs.NB201_SUITE_ZERO, {}, 2000, 1000, SUITE_ZERO),
    "nb201_c100": (
        configs.NB201_SUITE_ZERO_3DATASETS,
        {"dataset": "cifar100"},
        725,
        362,
        SUITE_ZERO[:-1],
    ),
    "nb201_in16": (
        configs.NB201_SUITE_ZERO_3DATASETS,
        {"dataset": "imagenet16_120"},
        724,
        362,
        SUITE_ZERO[:-1],
    ),
    "nb101": (
        configs.NB101_SUITE_ZERO,
        {},
        250,
        125,
        tuple(p for p in SUITE_ZERO if p not in ("nwot", "zen")),
    ),
    "nb301": (configs.NB301_SUITE_ZERO, {}, 363, 181, SUITE_ZERO[:-1]),
}


def get_config(arg=None):
    args = configs.parse_arg(
        arg,
        bench="nb201_c10",
        method="libra",
        fusion="rank_sum",
        calibration=0,
        size=0,
        seed=0,
    )
    if args.bench not in BENCHES:
        raise errors.ConfigError(f"unknown bench {args.bench!r}; expected {sorted(BENCHES)}")
    table, where, size, calib, columns = BENCHES[args.bench]
    config = configs.default_config()
    config.seed = args.seed
    config.proxies = ()
    configs.draw_cells(config, table, args.size or size)
    config.benchmark.where = where
    config.benchmark.targets = ("val_acc",)
    config.combine.method = args.method
    config.combine.columns = ("synflow", "jacov", "snip") if args.method == "vote" else columns
    config.combine.calibration_size = (args.calibration or calib) if args.method == "libra" else 0
    config.combine.params = "params"
    config.combine.fusion = args.fusion
    config.report.num_bootstrap = 1000
    return config
