"""Train an NB101 cell with the NAS-Bench-101 recipe (`mode=train`).

Recipe, as google-research/nasbench sets it (`nasbench/lib/config.py` defaults,
`model_builder.py`, `cifar.py`; `jaxnas.training.RECIPES["nb101"]`):
  * optimizer: TF1 `RMSPropOptimizer(lr, decay=0.9, momentum=0.9, epsilon=1.0)` (mean
    square starting at 1, epsilon inside the square root; optax `rmsprop` with
    `initial_scale=1, eps_in_sqrt=True`);
  * schedule: COSINE_BY_STEP, lr = 0.5 base (1 + cos(pi step / total)) with base lr
    0.1 x 2 TPU shards = 0.2, total = epochs x steps per epoch, lr 0 at step 0;
  * epochs 108, batch 256, weight decay 1e-4 as an L2 loss on every variable (gradient
    1e-4 w);
  * data: pad 4 + random crop + random flip, per-channel mean/std (125.31, 122.95,
    113.87) / (62.99, 62.09, 66.70); NB101 trained on 40,000 of the 50,000 CIFAR-10
    training images (`--config.train.data.max_train_examples=40000` for that split).
  * BatchNorm running statistics with nasbench's decay 0.997 (`base_ops.BN_MOMENTUM`;
    the space's `bn_momentum` = 0.003 in PyTorch's convention).
Differences that remain: the initialiser is jaxnas' NB101 rule (that of the PyTorch NB101
models the proxies' references score), not TF's variance scaling; the last partial
batch of an epoch is dropped.

Command:
  python -m jaxnas.main --config=configs/nb101_train.py \
      --config.train.arch='<rows>;<ops>' --workdir=runs/train_nb101

Expected: 108 epochs of CIFAR-10 are GPU work; on a CPU use `:epochs=1` and an npz.

Arguments: `:epochs=N,seed=S,data=tfds|npz`.
"""

from jaxnas import configs, training


def get_config(arg=None):
    args = configs.parse_arg(arg, epochs=108, seed=0, data="tfds")
    config = training.apply_recipe(configs.default_config(), "nb101")
    config.mode = "train"
    config.seed = args.seed
    config.space.name = "nb101"
    config.train.epochs = args.epochs
    config.train.data.source = args.data
    config.train.data.path = configs.shared_path(*configs.CIFAR10_IMAGES)
    return config
