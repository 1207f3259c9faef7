"""Zero-Cost-PT on the NB201 supernet (Xiang et al., arXiv 2106.06799).

Commands (scorer = zico | naswot | meco):
  python -m jaxnas.main --config=configs/nb201_zcpt.py:proxy=zico,runs=10 \
      --workdir=runs/nb201_zcpt_zico

The untrained supernet ("mask" dispatch, all 5 ops at weight 1/5) is discretised edge
by edge in a random order: on each edge the supernet with one op removed is scored for
every op and the op whose removal lowers the proxy most is kept. `pool` such
proposals (random edge orders) are validated as stand-alone networks of the same size
on `rounds` batches each and the best summed score wins (reference pipeline
`zerocostpt_nb201_pipeline.sh`: pool 10, 100 rounds of 256 images, supernet and
validated networks C=16/N=5). Real CIFAR-10 training images;
`batch` images per proxy call (ZiCo splits them into 2 mini-batches).

Expected: ZiCo paper Table 8 gives Zero-Cost-PT with ZiCo 94.15 +- 0.22 / 72.77 / 46.39
(C10 / C100 / IN16 test) at 0.12 GPU-h. Runtime here: the reference settings are
several CPU-hours per run on the shared 2-core machine; `channels`, `cells`, `batch`,
`pool` and `rounds` shrink it (they are recorded in summary.json's params; the figures
in WORKSPACE_NOTES.md state the settings used).

Arguments: `:proxy=zico,runs=R,seed=S,pool=10,rounds=100,batch=64,channels=16,cells=5`.
"""

from jaxnas import configs, errors

SCORERS = {"zico": "zico", "naswot": "naswot", "meco": "meco"}


def get_config(arg=None):
    args = configs.parse_arg(
        arg, proxy="zico", runs=10, seed=0, pool=10, rounds=100, batch=64, channels=16, cells=5
    )
    if args.proxy not in SCORERS:
        raise errors.ConfigError(
            f"unknown Zero-Cost-PT scorer {args.proxy!r}; expected one of {sorted(SCORERS)}"
        )
    config = configs.default_config()
    config.mode = "supernet"
    config.seed = args.seed
    config.proxies = (SCORERS[args.proxy],)
    configs.use_cifar10_train_images(config.data)
    config.data.batch_size = args.batch
    config.search.strategy = "zc_pt"
    config.search.num_runs = args.runs
    config.search.params = dict(
        pool_size=args.pool,
        validate_rounds=args.rounds,
        supernet=dict(channels=args.channels, cells_per_stage=args.cells),
        cell=dict(channels=args.channels, cells_per_stage=args.cells),
    )
    config.benchmark.path = configs.NB201_ACCURACIES.path()
    config.benchmark.targets = ("cifar10_test", "cifar100_test", "imagenet16_120_test")
    return config
