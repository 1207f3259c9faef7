"""TE-NAS pruning-by-importance on the NB201 supernet (reference.md §B.4).

Command:
  python -m jaxnas.main --config=configs/nb201_tenas_search.py:runs=10 \
      --workdir=runs/nb201_tenas_search

The supernet starts with every op but `none` on all 6 edges (op weights 1/4, "mask"
dispatch). Each round scores, for every active op, the supernet without it against the
supernet: the NTK condition number on TE-NAS's C=3/N=1 network with 72 real CIFAR-10
training images (`ntk_cond`) and the linear-region count on the thin C=1 network with
3000 random 3x3 single-channel crops (`linear_regions`), `repeats`=3 initialisations
(each with its own batch and crops; TE-NAS's loader also augments the NTK batch, ours
does not);
dkappa and dR are ranked at 3 significant figures, the ranks summed, and one op per
edge with the smallest sum pruned (`prune_number=1`): 3 rounds, 54 candidates, one
cell. Each run writes the cell, its rounds (active ops, deltas) and its 200-epoch test
accuracies on the three NB201 datasets.

Published: TE-NAS reports 93.9 / 71.24 / 42.38 (C10 / C100 / IN16, 4 seeds) at 1,558
GPU-seconds per run (reference.md §C.5), each column searched on that dataset's own
images. This config searches on CIFAR-10 images and reports the one chosen cell on all
three datasets, so its C100 and IN16 columns are transfers (only 20 CIFAR-100 and no
ImageNet16-120 training images are at hand; for a search on another dataset pass its
images as `data.path` with `--config.data.num_classes=100` or 120).

Measured (`results/nb201_tenas_search/`, this command, 10 runs from seed 0, 2026-12-05/06
on a 2-core CPU): 93.11 +- 0.28 / 69.93 +- 0.60 / 44.25 +- 1.19 (mean +- std over runs;
95 % CI half-widths 0.19 / 0.39 / 0.78), about 2,000-2,300 s per run on the quiet machine.
A run makes ~170 NTK calls, whose cost grows as the square of the batch
(batch-statistics BN couples the images): `:ntk_batch=24` took 4.7 min per run
(`scripts/bench_tenas_supernet.py`: 0.27 s per call at 8 images, 1.9 s at 24), and
`:repeats=1,ntk_batch=8,crops=300` takes 7 s per run. `ntk_batch`, `crops` and
`repeats` trade faithfulness for time (stated in the record's params); use an
accelerator for the protocol.

Arguments: `:runs=R,seed=S,repeats=3,ntk_batch=72,crops=3000`.
"""

from jaxnas import configs, proxies
from jaxnas.strategies import tenas

# TE-NAS's protocols of its two proxies (72 images, 3000 crops, K=3).
NTK, REGIONS = (proxies.PROXIES[name].protocol for name in ("ntk_cond", "linear_regions"))


def get_config(arg=None):
    args = configs.parse_arg(
        arg,
        runs=10,
        seed=0,
        repeats=NTK.num_inits,
        ntk_batch=NTK.batch_size,
        crops=REGIONS.batch_size,
    )
    config = configs.tenas_search(args, tenas.NB201_PRUNE_NUMBER)
    config.benchmark.path = configs.NB201_ACCURACIES.path()
    config.benchmark.targets = ("cifar10_test", "cifar100_test", "imagenet16_120_test")
    return config
