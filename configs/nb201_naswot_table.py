"""A NASWOT score table of every NAS-Bench-201 cell, for searches by lookup.

Command (resumable: rerun the same command after a stop and it goes on):
  nice python -m jaxnas.main --config=configs/nb201_naswot_table.py --workdir=runs/naswot_table

Scores all 15,625 cells (`population.source="all"`) with NASWOT under K = `inits`
initialisations (default 4) on one seeded batch of 128 real CIFAR-10 training images
(NB201 normalisation, as configs/nb201_naswot_search.py), writing `scores.jsonl` with the
K scores of each cell. Searches then read it with `search.fitness.source="table"`
(`configs/nb201_naswot_search.py:table=runs/naswot_table`, `configs/nb201_rea.py:area,
table=runs/naswot_table`), drawing one of the K scores per evaluation.

Measured on a quiet 2-core CPU: 0.285 s per cell and initialisation after a 30 s
compile, so 74 min for `inits=1` and ~5 h for K=4 (WORKSPACE_NOTES.md, "Search (issue
15)", has the table's correlations and the NASWOT N = 10 / 100 / 1000 searches on it).
At NASWOT's speed benchmark batch, `:inits=1,batch=64`, the whole space took 20 min
19 s on 2026-12-06 (77 ms per cell; docs/performance.md).

Arguments: `:inits=K,seed=S,batch=B`.
"""

from jaxnas import configs


def get_config(arg=None):
    args = configs.parse_arg(arg, inits=4, seed=0, batch=128)
    config = configs.default_config()
    config.mode = "score"
    config.seed = args.seed
    config.num_inits = args.inits
    config.population.source = "all"
    config.archs_per_call = 125
    config.benchmark.path = configs.NB201_ACCURACIES.path()
    config.benchmark.targets = ("cifar10_test", "cifar100_test", "imagenet16_120_test")
    configs.use_cifar10_train_images(config.data)
    config.data.batch_size = args.batch
    return config
