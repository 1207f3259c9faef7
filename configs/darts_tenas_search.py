"""TE-NAS pruning-by-importance on the DARTS space, CIFAR-10 (reference.md §B.4).

Command:
  python -m jaxnas.main --config=configs/darts_tenas_search.py:runs=1 \
      --workdir=runs/darts_tenas_search

The supernet is TE-NAS's (`jaxnas.spaces.darts_supernet`): C=1, one normal and one
reduction cell of 4 nodes, 14 edges each, the 7 DARTS ops on every edge (`none` off
from the start). Op pruning scores, for every active op of both cells, the supernet
without it against the supernet: the NTK condition number on the C=1 network with a
stem and 14 real CIFAR-10 training images, the linear-region count on the thin C=1
network without a stem on 3000 random 3x3 crops, `repeats`=3 initialisations each;
dkappa and dR are ranked at 3 significant figures, the ranks summed, and 3 ops per
edge with the smallest sums pruned (`prune_number=3`, CIFAR-10): 7 -> 4 -> 1 ops in two
rounds. Edge pruning then keeps 2 of the 2-5 input edges of every node by the same rank
sum, node by node (nodes with 2 inputs are kept whole). Each run writes the cell in the
`darts` space's notation (NAS-Bench-301's ops; `none` is never kept), its rounds and
edge groups, and its seconds. No benchmark scores arbitrary DARTS cells, so there is
no accuracy: TE-NAS reports 2.63 % CIFAR-10 test error after training its cell for
600 epochs (3.8 M parameters), at 0.05 GPU-days of search; each run here records its
cell's size in that network (`params_eval_network`, C=36, 20 cells, no auxiliary head).

Runtime on a quiet 2-core CPU (WORKSPACE_NOTES.md, "Supernet search"): with
`:repeats=1,ntk_batch=4` 112 s per run after a 5 min compile, 7.5 GB peak memory;
the full protocol (3 repeats, 14 images) had not finished its first run after 24 min,
as the NTK's cost grows as the square of the batch. Use an accelerator for it.

Arguments: `:runs=R,seed=S,repeats=3,ntk_batch=14,crops=3000`.
"""

from jaxnas import configs
from jaxnas.spaces import darts_supernet


def get_config(arg=None):
    args = configs.parse_arg(
        arg, runs=1, seed=0, repeats=3, ntk_batch=darts_supernet.TENAS_NTK_BATCH, crops=3000
    )
    config = configs.tenas_search(args, darts_supernet.TENAS_PRUNE_NUMBER)
    config.space.name = "darts"
    return config
