"""L-SWAG Table 1's LIBRA rows from jaxnas' own proxy scores: NB201 (three datasets), NB101.

Command:
  nice -n 10 python -m jaxnas.main --config=configs/libra.py --workdir=runs/nb201_libra

Scores `size` NB201 cells (drawn from `nb201_test_acc_200ep.csv.gz` with the seed) with
the candidate pool below, then runs LIBRA-NAS (`combine.method = "libra"`, Alg. 1 of
L-SWAG: best Spearman; minimum information gain among those within 0.1 of it; bias
closest to the accuracy's) once per dataset, on `calibration` labelled cells held apart,
and reports the fused score's Spearman on the other cells against the 200-epoch CIFAR-10,
CIFAR-100 and ImageNet16-120 test accuracies. `combine.json` holds the split, each
dataset's selection and every quantity it used; `report.json` every proxy's own
correlations on all cells.

Candidate pool: every NB201 proxy of jaxnas that scores the benchmark network (C=16,
N=5) in about 1 s per cell or less on the 2-core CPU here, so that the run fits one
session: naswot, jacob_cov, snip, grad_norm, l2_norm, params, flops (one fused program:
they share the forward pass and one loss and one input gradient), synflow, and MeCo with
AZ-NAS's expressivity, progressivity and trainability. Left out for cost: grasp, zico,
lswag, swap, ntk_cond, knas, epe_nas, fisher, zen, plain (1.5-12 s per cell here, or
Suite-Zero columns that never entered a LIBRA selection in docs/combination.md). The
proxies see one seeded batch of real CIFAR-10 training images (64, plain CIFAR-10
normalisation) through a 10-class head for all three datasets; the AZ-NAS components
draw their own Gaussian inputs and MeCo reads one image.

Result (seed 0, 2026-12-03): held-apart Spearman 0.891 [0.875, 0.903] on CIFAR-10 (chose
meco + naswot + params), 0.876 on CIFAR-100 (meco + jacob_cov + naswot), 0.848 on
ImageNet16-120 (meco + naswot + jacob_cov); L-SWAG Table 1: 0.89 / 0.90 / 0.87. MeCo
alone on the same evaluation cells: 0.917 / 0.912 / 0.872. Cost: 97 min on the 2-core
CPU beside other runs (WORKSPACE_NOTES.md, "Proxy combination and LIBRA-NAS").

NB101 (`bench=nb101`): the same pool on the 250 cells of the NAS-Bench-Suite-Zero NB101
table LIBRA's NB101 row uses, against its `val_acc` (L-SWAG Table 1: LIBRA 0.77), half of
them held apart for calibration; the network is NB101's with a `stem`-channel stem
(default 16, NASWOT's variant: the benchmark's 128 costs ~60x the FLOPs).

Result NB101 (`:bench=nb101`, seed 0, 2026-12-04, 29 min on the 2-core CPU): LIBRA chose
meco + params + az_expressivity on the 125 calibration cells (Spearman there 0.753 /
0.728 / 0.718; band: flops, params, az_expressivity); held-apart Spearman **0.897**
[0.850, 0.926] on the other 125 (L-SWAG Table 1: 0.77); on the same evaluation cells MeCo
alone 0.782, params 0.710, az_expressivity 0.801 (WORKSPACE_NOTES.md).

Arguments: `:bench=nb201|nb101,size=N,calibration=N,seed=S,batch=B,stem=C,
fusion=rank_sum|log_rank,fuse=0|1` (defaults nb201, 1,500 / 250 cells, 500 / 125
calibration cells, seed 0, batch 64, stem 16, rank_sum, fused).
"""

from jaxnas import configs

# bench -> (table, default number of cells, default calibration cells, accuracy columns)
BENCHES = {
    "nb201": (
        configs.NB201_ACCURACIES,
        1500,
        500,
        ("cifar10_test", "cifar100_test", "imagenet16_120_test"),
    ),
    "nb101": (configs.NB101_SUITE_ZERO, 250, 125, ("val_acc",)),
}

POOL = (
    "naswot",
    "jacob_cov",
    "snip",
    "grad_norm",
    "l2_norm",
    "params",
    "flops",
    "synflow",
    "meco",
    "az_expressivity",
    "az_progressivity",
    "az_trainability",
)


def get_config(arg=None):
    args = configs.parse_arg(
        arg,
        bench="nb201",
        size=0,
        calibration=0,
        seed=0,
        batch=64,
        stem=16,
        fusion="rank_sum",
        fuse=True,
    )
    config, (_, _, calibration, _) = configs.bench_scores(args, BENCHES, POOL)
    configs.use_cifar10_train_images(config.data)
    config.combine.method = "libra"
    config.combine.calibration_size = args.calibration or calibration
    config.combine.params = "params"
    config.combine.fusion = args.fusion
    config.report.num_bootstrap = 1000
    return config
