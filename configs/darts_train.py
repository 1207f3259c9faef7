"""Train a DARTS cell with the DARTS CIFAR-10 evaluation recipe (`mode=train`).

Recipe (DARTS `cnn/train.py`; `jaxnas.training.RECIPES["darts"]`): network of 36
channels, 20 cells, auxiliary head after the last reduction cell (loss weight 0.4),
affine BN in the ops; SGD momentum 0.9, lr 0.025 cosine to 0 stepped per epoch, weight
decay 3e-4, gradient-norm clipping 5, batch 96, 600 epochs, crop 4 + flip + cutout 16,
DARTS' CIFAR-10 mean/std, drop-path with its rate ramped linearly from 0 to 0.2 over the
epochs (`drop_path_prob = 0.2 * epoch / epochs`, every edge but identities).

Command (needs CIFAR-10 prepared for tfds, or an npz via --config.train.data.*):
  python -m jaxnas.main --config=configs/darts_train.py \
      --config.train.arch='<NASLib compact genotype>' --workdir=runs/train_darts

Expected: 600 epochs are GPU work (DARTS reports ~1.5 GPU-days); on a CPU use it for a
smoke run (`:epochs=1` with `--config.train.data.max_train_examples=192`).

Arguments: `:epochs=N,seed=S,data=tfds|npz`.
"""

from jaxnas import configs, training


def get_config(arg=None):
    args = configs.parse_arg(arg, epochs=600, seed=0, data="tfds")
    config = training.apply_recipe(configs.default_config(), "darts")
    config.mode = "train"
    config.seed = args.seed
    config.space.name = "darts"
    config.train.epochs = args.epochs
    config.train.data.source = args.data
    config.train.data.path = configs.shared_path(*configs.CIFAR10_IMAGES)
    return config
