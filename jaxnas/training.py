"""`mode=train`: train one architecture of a space with optax, data-parallel, resumable.

The network is `space.materialize(genotype)`; its parameters and BatchNorm statistics,
the optimizer state and the step count form a `TrainState`. Every local device holds
a replica of the state and a slice of each batch (`jax.sharding`: batch sharded over
the mesh axis "data", everything else replicated); XLA sums the gradients and the
BatchNorm moments over the whole global batch, so N devices compute what one device
computes on the same batch (up to the order of floating-point sums).

Recipes (`recipe_config`) are presets of the `train` config block; every field can be
overridden on the command line (`--config.train.lr=0.05`). Epoch `e`'s batches depend on
`(seed, e)` only and each step's dropout key on `(seed, step)`, so a run resumed from its
last checkpoint ends with exactly the parameters of an uninterrupted run.

Workdir layout: `metrics.jsonl` (one JSON line per epoch: loss, accuracy, lr, images/s,
test loss and accuracy), `curves.png` (needs the `plot` extra), `report.json`,
`checkpoints/last` and `checkpoints/best` (orbax), `train_config.json` (the config a
resumed run must match).
"""

import functools
import inspect
import json
import math
import os
import sys
import time
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnas import benchmarks, errors, inputs, losses, run_files, spaces, train_data
from jaxnas.progress import Progress
from jaxnas.spaces import functional

# ----------------------------------------------------------------------------- config


def default_config() -> ml_collections.ConfigDict:
    """The `train` block: the generic recipe (SGD momentum 0.9, lr 0.1 cosine, wd 5e-4)."""
    t = ml_collections.ConfigDict()
    t.arch = ""  # the architecture in the space's notation
    t.from_search = ""  # or: a search workdir; its chosen architecture is trained
    t.from_search_run = -1  # which run's choice (-1: the run with the best proxy score)
    t.recipe = "generic"  # name recorded in the report; presets via `recipe_config`
    t.epochs = 200
    t.batch_size = 256
    t.optimizer = "sgd"  # sgd | rmsprop
    t.lr = 0.1
    t.lr_min = 0.0
    t.schedule = "cosine"  # cosine | constant
    t.schedule_unit = "step"  # step: lr changes every step; epoch: constant in an epoch
    t.zero_lr_first_step = False  # NB101: lr 0 at step 0
    t.momentum = 0.9
    t.nesterov = False
    t.rmsprop_decay = 0.9
    t.rmsprop_eps = 1.0
    t.rmsprop_initial_scale = 1.0
    t.weight_decay = 5e-4  # L2 on every parameter, added to the gradient (PyTorch SGD)
    t.grad_clip = 0.0  # global-norm clipping of the loss gradient; 0 = off
    t.label_smoothing = 0.0
    t.aux_weight = 0.0  # auxiliary-head loss weight (needs space.kwargs.auxiliary=True)
    t.drop_path = 0.0  # final drop-path rate, ramped linearly from 0 over the epochs
    t.eval_every = 1  # epochs between test evaluations (the last epoch always)
    t.eval_batch_size = 500
    t.checkpoint_every = 1  # epochs between checkpoints (the last epoch always)
    t.stop_after_epoch = 0  # > 0: stop (checkpointed) after this epoch; rerun to go on
    t.plot = True  # curves.png when matplotlib is installed
    d = t.data = ml_collections.ConfigDict()
    d.source = "npz"  # npz | tfds
    d.path = ""
    d.train_images_key = "train_images"
    d.train_labels_key = "train_labels"
    d.test_images_key = "test_images"
    d.test_labels_key = "test_labels"
    d.dataset = "cifar10"  # tfds: cifar10 | cifar100 | imagenet16-120
    d.train_split = "train"
    d.test_split = "test"
    d.data_dir = ""
    d.max_train_examples = 0  # 0 = all
    d.max_test_examples = 0
    d.normalization = "cifar10"
    d.crop_padding = 4
    d.flip = True
    d.cutout = 0
    return t


RECIPES = {
    # NAS-Bench-201 (xautodl `configs/nas-benchmark/hyper-opts/200E.config`): SGD
    # Nesterov 0.9, lr 0.1 cosine to 0, wd 5e-4, batch 256, 200 epochs, crop 4 + flip, no
    # label smoothing. xautodl's `CosineAnnealingLR` is updated every iteration but its
    # `get_lr` reads only the epoch, so the lr is constant within an epoch.
    "nb201": dict(
        train=dict(
            epochs=200,
            batch_size=256,
            optimizer="sgd",
            lr=0.1,
            momentum=0.9,
            nesterov=True,
            weight_decay=5e-4,
            schedule_unit="epoch",
        ),
        data=dict(normalization="cifar10", crop_padding=4, flip=True, cutout=0),
        space={},
    ),
    # DARTS `cnn/train.py`: 36 channels, 20 cells, auxiliary head (weight 0.4), SGD
    # momentum 0.9, lr 0.025 cosine to 0 stepped per epoch, wd 3e-4, grad-norm clip 5,
    # batch 96, 600 epochs, crop 4 + flip + cutout 16, drop-path 0.2 (ramped).
    "darts": dict(
        train=dict(
            epochs=600,
            batch_size=96,
            optimizer="sgd",
            lr=0.025,
            momentum=0.9,
            nesterov=False,
            weight_decay=3e-4,
            schedule_unit="epoch",
            grad_clip=5.0,
            aux_weight=0.4,
            drop_path=0.2,
        ),
        data=dict(normalization="cifar10-naslib", crop_padding=4, flip=True, cutout=16),
        space=dict(channels=36, num_cells=20, auxiliary=True, affine_ops=True, pool_bn=False),
    ),
    # NAS-Bench-101 (`nasbench/lib/config.py`, `model_builder.py`, `cifar.py`): RMSProp
    # (decay 0.9, momentum 0.9, epsilon 1.0 inside the square root, mean square
    # starting at 1: TF1 `RMSPropOptimizer`), base lr 0.1 x 2 TPU shards = 0.2, cosine by
    # step to 0 with lr 0 at step 0, L2 1e-4 on every variable (`1e-4 * sum l2_loss`,
    # gradient 1e-4 w), batch 256, 108 epochs, crop 4 + flip, NB101's RGB mean/std.
    "nb101": dict(
        train=dict(
            epochs=108,
            batch_size=256,
            optimizer="rmsprop",
            lr=0.2,
            momentum=0.9,
            rmsprop_decay=0.9,
            rmsprop_eps=1.0,
            rmsprop_initial_scale=1.0,
            weight_decay=1e-4,
            schedule_unit="step",
            zero_lr_first_step=True,
        ),
        data=dict(normalization="cifar10-nb101", crop_padding=4, flip=True, cutout=0),
        space={},
    ),
    "generic": dict(train={}, data={}, space={}),
}


def apply_recipe(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
    """Sets `config.train` (and the space settings the recipe needs) to recipe `name`."""
    if name not in RECIPES:
        raise errors.ConfigError(f"unknown recipe {name!r}; available: {sorted(RECIPES)}")
    recipe = RECIPES[name]
    config.train = default_config()
    config.train.recipe = name
    config.train.update(recipe["train"])
    config.train.data.update(recipe["data"])
    config.space.kwargs.update(recipe["space"])
    return config


# ------------------------------------------------------------------------- optimizer


def learning_rate(t: ml_collections.ConfigDict, steps_per_epoch: int):
    """`step -> lr`: cosine from `t.lr` to `t.lr_min` over the run, per step or per epoch."""
    total = t.epochs * steps_per_epoch

    def schedule(step):
        if t.schedule == "constant":
            lr = jnp.full((), t.lr, jnp.float32)
        else:
            if t.schedule_unit == "epoch":
                progress = (step // steps_per_epoch).astype(jnp.float32) / t.epochs
            else:
                progress = step.astype(jnp.float32) / total
            lr = t.lr_min + (t.lr - t.lr_min) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        if t.zero_lr_first_step:
            lr = jnp.where(step == 0, 0.0, lr)
        return lr

    return schedule


def optimizer(t: ml_collections.ConfigDict, steps_per_epoch: int):
    """The recipe's optax transformation: [clip] -> [+ wd * w] -> SGD or RMSProp.

    Weight decay is added to the (clipped) gradient as PyTorch's SGD `weight_decay` and
    TF's L2 loss term do, so momentum and RMS scaling see it.
    """
    _check_recipe(t)
    schedule = learning_rate(t, steps_per_epoch)
    parts = []
    if t.grad_clip > 0:
        parts.append(optax.clip_by_global_norm(t.grad_clip))
    if t.weight_decay > 0:
        parts.append(optax.add_decayed_weights(t.weight_decay))
    if t.optimizer == "sgd":
        parts.append(optax.sgd(schedule, t.momentum or None, t.nesterov))
    else:
        parts.append(
            optax.rmsprop(
                schedule,
                decay=t.rmsprop_decay,
                eps=t.rmsprop_eps,
                initial_scale=t.rmsprop_initial_scale,
                eps_in_sqrt=True,
                momentum=t.momentum or None,
                nesterov=t.nesterov,
            )
        )
    return optax.chain(*parts), schedule


def _check_recipe(t):
    checks = [
        (t.epochs > 0, f"train.epochs must be positive, got {t.epochs}"),
        (t.lr >= 0, f"train.lr must be >= 0, got {t.lr}"),
        (t.optimizer in ("sgd", "rmsprop"), f"unknown train.optimizer {t.optimizer!r}"),
        (t.schedule in ("cosine", "constant"), f"unknown train.schedule {t.schedule!r}"),
        (t.schedule_unit in ("step", "epoch"), f"unknown train.schedule_unit {t.schedule_unit!r}"),
        (0 <= t.drop_path < 1, f"train.drop_path must be in [0, 1), got {t.drop_path}"),
        (t.eval_every > 0, f"train.eval_every must be positive, got {t.eval_every}"),
        (
            t.checkpoint_every > 0,
            f"train.checkpoint_every must be positive, got {t.checkpoint_every}",
        ),
        (t.eval_batch_size > 0, f"train.eval_batch_size must be positive, got {t.eval_batch_size}"),
    ]
    for ok, message in checks:
        if not ok:
            raise errors.ConfigError(message)


# ------------------------------------------------------------------------------ steps


class TrainState(flax.struct.PyTreeNode):
    """Everything a checkpoint holds: `step` int32[], params, BN statistics, optimizer."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


def init_state(model, tx, key: jax.Array, image_shape: tuple[int, ...]) -> TrainState:
    """Initial state of `model` (Linen init with `key`) for images of `image_shape`
    `(H, W, C)`, with `tx`'s optimizer state."""
    x = jnp.zeros((1, *image_shape), jnp.float32)
    variables = model.init(key, x, train=False)
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
    )


_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def loss_fn(model, t, params, batch_stats, batch, dropout_key, drop_path_rate):
    """Mean cross-entropy (+ `aux_weight` x the auxiliary head's) of one batch.

    Returns `(loss f32[], (new batch_stats, logits f32[B, classes]))`.
    """
    mutable = ["batch_stats", "intermediates"] if t.aux_weight > 0 else ["batch_stats"]
    kwargs = {}
    if t.drop_path > 0:
        kwargs = dict(drop_path=drop_path_rate, rngs={"dropout": dropout_key})
    logits, updates = model.apply(
        {"params": params, "batch_stats": batch_stats},
        batch["x"],
        train=True,
        mutable=mutable,
        **kwargs,
    )
    loss = losses.cross_entropy(logits, batch["y"], t.label_smoothing)
    if t.aux_weight > 0:
        aux = updates.get("intermediates", {}).get("aux_logits")
        if aux is None:
            raise errors.ConfigError(
                "train.aux_weight > 0 needs a network with an auxiliary head "
                "(space.kwargs.auxiliary=True)"
            )
        loss = loss + t.aux_weight * losses.cross_entropy(aux[0], batch["y"], t.label_smoothing)
    return loss, (updates.get("batch_stats", batch_stats), logits)


def make_train_step(model, tx, t, schedule, steps_per_epoch: int, seed: int):
    """`(state, batch) -> (state, metrics)` for one optimizer step (not jitted).

    metrics: loss f32[] (the main head's cross-entropy), correct int32[] (top-1 hits),
    lr f32[] (the learning rate this step used).
    """
    dropout_base = jax.random.fold_in(jax.random.key(seed), 1)

    def step(state: TrainState, batch):
        epoch = state.step // steps_per_epoch
        # DARTS: drop_path_prob = drop_path * epoch / epochs, set at each epoch's start.
        rate = t.drop_path * epoch.astype(jnp.float32) / t.epochs
        key = jax.random.fold_in(dropout_base, state.step)
        grad_fn = jax.value_and_grad(
            lambda p: loss_fn(model, t, p, state.batch_stats, batch, key, rate), has_aux=True
        )
        # A materialised network has no control flow around its convolutions (keep the
        # step itself out of `lax.scan` too: XLA's rule is slow in loop bodies).
        with functional.xla_conv_gradients():
            (_, (batch_stats, logits)), grads = grad_fn(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": losses.cross_entropy(logits, batch["y"]),
            "correct": jnp.sum(jnp.argmax(logits, -1) == batch["y"]).astype(jnp.int32),
            "lr": schedule(state.step),
        }
        new = TrainState(state.step + 1, params, batch_stats, opt_state)
        return new, metrics

    return step


def make_eval_step(model):
    """`(state, batch, weight f32[B]) -> (loss sum f32[], correct f32[])` in eval mode."""

    def step(state: TrainState, batch, weight):
        logits = model.apply(
            {"params": state.params, "batch_stats": state.batch_stats}, batch["x"], train=False
        )
        per_example = losses.cross_entropies(logits, batch["y"])
        hits = (jnp.argmax(logits, -1) == batch["y"]).astype(jnp.float32)
        return jnp.sum(per_example * weight), jnp.sum(hits * weight)

    return step


def data_mesh(devices=None) -> Mesh:
    """A one-axis mesh ("data") over `devices` (default: all local devices)."""
    devices = jax.local_devices() if devices is None else devices
    return Mesh(np.asarray(devices), ("data",))


# ----------------------------------------------------------------------- architecture


def chosen_arch(search_dir: str, run: int = -1) -> tuple[str, dict]:
    """The architecture a search workdir chose, and its `runs.jsonl` record.

    `run` >= 0 picks that run's choice; -1 the choice with the highest proxy `score`
    (the first on ties). Records name the architecture under `arch`.

    Raises:
      DataError: no readable `runs.jsonl`, no record, or no such run.
    """
    path = os.path.join(search_dir, "runs.jsonl")
    if not os.path.exists(path):
        raise errors.DataError(f"no search results at {path} (train.from_search)")
    records = [
        record
        for record in run_files.read_json_lines(path)
        if isinstance(record, dict) and isinstance(record.get("arch"), str)
    ]
    if not records:
        raise errors.DataError(f"{path} holds no record with an 'arch'")
    if run >= 0:
        chosen = [r for r in records if r.get("run") == run]
        if not chosen:
            found = [r.get("run") for r in records]
            raise errors.DataError(f"{path} has no run {run}; runs: {found}")
        return chosen[0]["arch"], chosen[0]

    def score(record):
        value = record.get("score")
        return value if isinstance(value, (int, float)) else -math.inf

    best = max(records, key=score)
    return best["arch"], best


def _architecture(config, space) -> tuple[str, np.ndarray, dict | None]:
    t = config.train
    if bool(t.arch) == bool(t.from_search):
        raise errors.ConfigError("mode=train needs exactly one of train.arch, train.from_search")
    record = None
    arch = t.arch
    if t.from_search:
        saved = os.path.join(t.from_search, "config.json")
        if os.path.exists(saved):
            searched = json.load(open(saved)).get("space", {}).get("name")
            if searched and searched != config.space.name:
                raise errors.ConfigError(
                    f"{t.from_search} searched space {searched!r} but space.name is "
                    f"{config.space.name!r}"
                )
        arch, record = chosen_arch(t.from_search, t.from_search_run)
    genotype = space.validate(space.from_string(arch))
    return space.to_string(genotype), genotype, record


# ------------------------------------------------------------------------------- run


def _space(config):
    if config.space.name not in spaces.SPACES:
        raise errors.ConfigError(
            f"unknown space {config.space.name!r}; available: {sorted(spaces.SPACES)}"
        )
    try:
        return spaces.SPACES[config.space.name](**config.space.kwargs)
    except TypeError as exc:
        raise errors.ConfigError(f"space {config.space.name!r}: {exc}") from exc


def _resume_key(config) -> dict:
    """The config fields a resumed run must share with the run it continues."""
    c = json.loads(config.to_json_best_effort())
    c["train"] = {**c["train"], "stop_after_epoch": None, "plot": None}
    return {k: c[k] for k in ("seed", "space", "train")}


def _train_key(t) -> str:
    """The `train` fields the compiled programs depend on, as a hashable string."""
    c = json.loads(t.to_json_best_effort())
    c.update(stop_after_epoch=None, plot=None, arch=None, from_search=None, from_search_run=None)
    return json.dumps(c, sort_keys=True)


@functools.lru_cache(maxsize=8)
def _programs(model, train_key: str, spe: int, seed: int, devices: tuple, image_shape: tuple):
    """Compiled `(init, train step, eval step)`, cached so that runs of one config in a
    process (a resumed run, tests) compile once."""
    t = ml_collections.ConfigDict(json.loads(train_key))
    tx, schedule = optimizer(t, spe)
    mesh = data_mesh(list(devices))
    replicated = NamedSharding(mesh, PartitionSpec())
    sharded = NamedSharding(mesh, PartitionSpec("data"))

    def init(key):
        return init_state(model, tx, key, image_shape)

    # Linen draws every leaf with its own threefry call: XLA's optimising backend takes
    # minutes on a large network for a program run once; unoptimised it gives the same
    # bits in a fraction of the time.
    init = (
        jax.jit(init, out_shardings=replicated).lower(jax.random.key(seed)).compile(_FAST_COMPILE)
    )
    train_step = jax.jit(
        make_train_step(model, tx, t, schedule, spe, seed),
        in_shardings=(replicated, sharded),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )
    eval_step = jax.jit(
        make_eval_step(model),
        in_shardings=(replicated, sharded, sharded),
        out_shardings=replicated,
    )
    return init, train_step, eval_step


def load_checkpoint(workdir: str, which: str = "last") -> tuple[int, dict]:
    """`(epoch, state)` of a training workdir's `last` or `best` checkpoint; `state` is a
    dict with `step`, `params`, `batch_stats` and `opt_state` (nested arrays).

    Raises:
      DataError: no such checkpoint.
    """
    import orbax.checkpoint as ocp

    if which not in ("last", "best"):
        raise errors.ConfigError(f"which must be 'last' or 'best', got {which!r}")
    path = os.path.abspath(os.path.join(workdir, "checkpoints", which))
    with ocp.CheckpointManager(path) as manager:
        epoch = manager.latest_step()
        if epoch is None:
            raise errors.DataError(f"no {which} checkpoint under {path}")
        restored = manager.restore(epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return epoch, restored["state"]


class _Checkpoints:
    """orbax managers for the last and the best (test accuracy) state."""

    def __init__(self, workdir: str):
        import orbax.checkpoint as ocp

        self.ocp = ocp
        root = os.path.abspath(os.path.join(workdir, "checkpoints"))
        options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
        self.last = ocp.CheckpointManager(os.path.join(root, "last"), options=options)
        self.best = ocp.CheckpointManager(os.path.join(root, "best"), options=options)

    def save(self, manager, epoch: int, state: TrainState, meta: dict) -> None:
        args = self.ocp.args
        manager.save(
            epoch,
            args=args.Composite(state=args.StandardSave(state), meta=args.JsonSave(meta)),
            force=True,
        )
        manager.wait_until_finished()

    def restore_last(self, like: TrainState, sharding) -> tuple[int, TrainState, dict] | None:
        epoch = self.last.latest_step()
        if epoch is None:
            return None
        abstract = jax.tree.map(
            lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding), like
        )
        args = self.ocp.args
        restored = self.last.restore(
            epoch,
            args=args.Composite(state=args.StandardRestore(abstract), meta=args.JsonRestore()),
        )
        return epoch, restored["state"], restored["meta"]

    def close(self):
        self.last.close()
        self.best.close()


def train(config: ml_collections.ConfigDict, workdir: str, devices=None) -> dict:
    """Trains `config.train`'s architecture; returns (and writes) the report.

    The batch is sharded over `devices` (default: all local devices). Resumes from
    `workdir/checkpoints/last` when the workdir holds a run of the same
    config (`train.stop_after_epoch` and `train.plot` may differ).

    Raises:
      ConfigError / DataError / ArchitectureError: bad config, data or architecture.
    """
    t = config.train
    space = _space(config)
    arch, genotype, record = _architecture(config, space)
    train_split, test_split = train_data.load(config)
    image_shape = train_split.images.shape[1:]
    if test_split.images.shape[1:] != image_shape:
        raise errors.DataError(
            f"train images {image_shape} and test images {test_split.images.shape[1:]} differ"
        )
    labels = np.concatenate([train_split.labels, test_split.labels])
    bench = _benchmark(config)
    spe = train_data.steps_per_epoch(train_split.images.shape[0], t.batch_size)
    _check_recipe(t)
    mesh = data_mesh(devices)
    n_dev = mesh.devices.size
    if t.batch_size % n_dev:
        raise errors.ConfigError(
            f"train.batch_size {t.batch_size} is not divisible by the {n_dev} devices"
        )
    eval_bs = -(-t.eval_batch_size // n_dev) * n_dev
    model = space.materialize(genotype)
    if t.drop_path > 0 and "drop_path" not in _call_arguments(model):
        raise errors.ConfigError(
            f"space {config.space.name!r} has no drop-path; set train.drop_path=0"
        )
    inputs.check_labels(labels, getattr(model, "num_classes", None), "space.kwargs.num_classes")

    replicated = NamedSharding(mesh, PartitionSpec())
    sharded = NamedSharding(mesh, PartitionSpec("data"))
    init, train_step, eval_step = _programs(
        model, _train_key(t), spe, config.seed, tuple(mesh.devices.flat), image_shape
    )
    state = init(jax.random.key(config.seed))

    os.makedirs(workdir, exist_ok=True)
    key_path = os.path.join(workdir, "train_config.json")
    resume_key = _resume_key(config)
    ckpt = _Checkpoints(workdir)
    start_epoch, best = 0, {"test_acc": -1.0, "epoch": 0}
    history = []
    if ckpt.last.latest_step() is not None:
        previous = json.load(open(key_path)) if os.path.exists(key_path) else None
        if previous != resume_key:
            ckpt.close()
            raise errors.ConfigError(
                f"{workdir} holds a training run of another config; use a new workdir "
                f"(or the same config to resume)"
            )
        start_epoch, state, meta = ckpt.restore_last(state, replicated)
        best = meta["best"]
        history = _read_history(os.path.join(workdir, "metrics.jsonl"), start_epoch)
        print(f"resuming from the checkpoint of epoch {start_epoch} in {workdir}")
    with open(key_path, "w") as f:
        json.dump(resume_key, f, indent=2, sort_keys=True)

    print(
        f"training {config.space.name} {arch} ({_count(state.params):,} parameters), "
        f"recipe {t.recipe}, {t.epochs} epochs x {spe} steps of {t.batch_size} images "
        f"on {n_dev} {jax.devices()[0].platform} device(s)"
    )
    stop = t.epochs if t.stop_after_epoch <= 0 else min(t.epochs, t.stop_after_epoch)
    progress = Progress(t.epochs * spe, "train", unit="step", done=start_epoch * spe)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    _write_history(metrics_path, history)
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, stop):
            start = time.perf_counter()
            out = []
            for batch in train_data.epoch_batches(
                train_split,
                config.seed,
                epoch,
                t.batch_size,
                t.data.normalization,
                t.data.crop_padding,
                t.data.flip,
                t.data.cutout,
            ):
                state, m = train_step(state, jax.device_put(batch, sharded))
                out.append(m)
                progress.update(1)
            out = jax.device_get(out)
            seconds = time.perf_counter() - start
            row = {
                "epoch": epoch + 1,
                "loss": float(np.mean([m["loss"] for m in out])),
                "acc": 100.0 * sum(int(m["correct"]) for m in out) / (spe * t.batch_size),
                "lr": float(out[0]["lr"]),
                "seconds": seconds,
                "images_per_second": spe * t.batch_size / seconds,
            }
            last = epoch + 1 == t.epochs
            if (epoch + 1) % t.eval_every == 0 or last:
                row.update(_evaluate(eval_step, state, test_split, eval_bs, t, sharded))
            history.append(row)
            _write_history(metrics_path, history, append=True)
            print(_epoch_line(row, t.epochs, progress))
            if row.get("test_acc", -1.0) > best["test_acc"]:
                best = {"test_acc": row["test_acc"], "epoch": epoch + 1}
                ckpt.save(ckpt.best, epoch + 1, state, {"best": best})
            if (epoch + 1) % t.checkpoint_every == 0 or epoch + 1 == stop:
                ckpt.save(ckpt.last, epoch + 1, state, {"best": best})
    except KeyboardInterrupt:
        done = ckpt.last.latest_step() or 0
        ckpt.close()
        print(
            f"\ninterrupted in epoch {epoch + 1}; the last checkpoint is epoch {done}. "
            f"Rerun the same command with --workdir={workdir} to resume.",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    ckpt.close()
    if t.plot:
        _plot(history, os.path.join(workdir, "curves.png"))
    report = _report(config, arch, genotype, record, bench, history, best, stop, n_dev)
    with open(os.path.join(workdir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    _print_report(report)
    return report


def _evaluate(eval_step, state, split, batch_size, t, sharded) -> dict:
    loss = hits = 0.0
    for batch, real in train_data.eval_batches(split, batch_size, t.data.normalization):
        weight = (np.arange(batch_size) < real).astype(np.float32)
        out = eval_step(state, jax.device_put(batch, sharded), jax.device_put(weight, sharded))
        loss += float(out[0])
        hits += float(out[1])
    n = split.images.shape[0]
    return {"test_loss": loss / n, "test_acc": 100.0 * hits / n}


def _call_arguments(model) -> tuple[str, ...]:
    return tuple(inspect.signature(type(model).__call__).parameters)


def _count(params) -> int:
    return int(sum(np.prod(v.shape) for v in jax.tree.leaves(params)))


def _benchmark(config):
    if not config.benchmark.path:
        return None
    b = config.benchmark
    bench = benchmarks.Benchmark.from_csv(
        b.path, key=b.key, key_columns=tuple(b.key_columns), separator=b.key_separator
    )
    for column in b.targets:
        bench.column(column)
    return bench


def _read_history(path: str, epochs: int) -> list[dict]:
    """The rows of epochs 1..`epochs` of an earlier `metrics.jsonl`."""
    rows = [row for row in run_files.read_json_lines(path) if row.get("epoch", 0) <= epochs]
    return rows[:epochs]


def _write_history(path: str, history: list[dict], append: bool = False) -> None:
    if append:
        with open(path, "a") as f:
            f.write(json.dumps(history[-1]) + "\n")
    else:
        with open(path, "w") as f:
            for row in history:
                f.write(json.dumps(row) + "\n")


def _epoch_line(row: dict, epochs: int, progress: Progress) -> str:
    rate = progress.rate()
    remaining = progress.total - progress.done
    eta = remaining / rate if rate == rate and rate > 0 else float("nan")
    test = f"  test {row['test_acc']:.2f}%" if "test_acc" in row else ""
    eta_s = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta == eta else "--:--"
    return (
        f"epoch {row['epoch']}/{epochs}  loss {row['loss']:.4f}  acc {row['acc']:.2f}%{test}  "
        f"lr {row['lr']:.5f}  {row['images_per_second']:.0f} img/s  ETA {eta_s}"
    )


def _plot(history: list[dict], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: no curves.png (pip install 'jaxnas[plot]' for matplotlib)")
        return
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.6))
    ax_loss.plot(epochs, [r["loss"] for r in history], label="train")
    tested = [r for r in history if "test_loss" in r]
    ax_loss.plot([r["epoch"] for r in tested], [r["test_loss"] for r in tested], label="test")
    ax_acc.plot(epochs, [r["acc"] for r in history], label="train")
    ax_acc.plot([r["epoch"] for r in tested], [r["test_acc"] for r in tested], label="test")
    ax_lr.plot(epochs, [r["lr"] for r in history])
    for ax, name in ((ax_loss, "loss"), (ax_acc, "accuracy (%)"), (ax_lr, "lr (epoch start)")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
    ax_loss.legend()
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _report(config, arch, genotype, record, bench, history, best, stop, n_dev) -> dict:
    t = config.train
    tested = [r for r in history if "test_acc" in r]
    report = {
        "space": config.space.name,
        "arch": arch,
        "genotype": [int(v) for v in np.asarray(genotype).reshape(-1)],
        "recipe": t.recipe,
        "epochs_done": stop,
        "epochs": t.epochs,
        "finished": stop == t.epochs,
        "devices": n_dev,
        "test_acc": tested[-1]["test_acc"] if tested else None,
        "test_acc_epoch": tested[-1]["epoch"] if tested else None,
        "best_test_acc": best["test_acc"] if best["test_acc"] >= 0 else None,
        "best_epoch": best["epoch"] or None,
        "images_per_second": float(np.median([r["images_per_second"] for r in history[1:]]))
        if len(history) > 1
        else (history[0]["images_per_second"] if history else None),
    }
    if t.from_search:
        report["from_search"] = {"dir": t.from_search, "record": record}
    if bench is not None:
        report["benchmark"] = {"table": bench.name, "in_table": arch in bench}
        if arch in bench:
            for target in config.benchmark.targets:
                report["benchmark"][target] = float(bench.lookup(target, [arch])[0])
    return report


def _print_report(report: dict) -> None:
    if not report["finished"]:
        print(
            f"stopped after epoch {report['epochs_done']} of {report['epochs']}; "
            "rerun without train.stop_after_epoch to go on"
        )
    line = f"{report['space']} {report['arch']}: test accuracy "
    line += "n/a" if report["test_acc"] is None else f"{report['test_acc']:.2f}%"
    line += f" after epoch {report['test_acc_epoch']} (recipe {report['recipe']})"
    print(line)
    b = report.get("benchmark")
    if b is not None:
        if not b["in_table"]:
            print(f"benchmark {b['table']}: this architecture is not in the table")
        else:
            values = ", ".join(
                f"{k} {v:.2f}" for k, v in b.items() if k not in ("table", "in_table")
            )
            print(f"benchmark {b['table']} for it: {values}")
