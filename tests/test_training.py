"""mode=train: one step against xautodl (fixture), end to end on a tiny npz, resume,
two devices, recipes and bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from unittest import mock

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import configs, errors, experiment, train_data, training
from jaxnas.spaces import darts, nb201

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
)


def _unflatten(flat: dict) -> dict:
    tree = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = jnp.asarray(value)
    return tree


def _section(fixture, name: str) -> dict:
    return {k[len(name) + 1 :]: fixture[k] for k in fixture.files if k.startswith(name + "/")}


def _flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, jax.ShapeDtypeStruct) else np.asarray(v)
    return out


def _assert_close(ours: dict, theirs: dict, rtol: float, atol: float, what: str):
    assert sorted(ours) == sorted(theirs), what
    for k in theirs:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=rtol, atol=atol, err_msg=f"{what} {k}")


def test_two_nb201_steps_equal_xautodl():
    """Loss, gradients, parameters and BN statistics of two SGD steps from transplanted
    weights equal xautodl's TinyNetwork trained with its own optimizer and schedule
    (fixture from scripts/torch_train_oracle.py)."""
    fx = np.load(os.path.join(FIXTURES, "train_step_nb201.npz"))
    setup = json.loads(str(fx["provenance"]))["setup"]
    space = nb201.space(channels=setup["channels"], cells_per_stage=setup["cells"])
    model = space.materialize(space.from_string(setup["arch"]))
    config = training.apply_recipe(configs.default_config(), "nb201")
    t = config.train
    t.epochs = setup["epochs"]
    spe = setup["steps_per_epoch"]
    tx, schedule = training.optimizer(t, spe)
    params = _unflatten(_section(fx, "init"))
    stats = {
        k: np.zeros_like(v) if k.endswith("mean") else np.ones_like(v)
        for k, v in _section(fx, "stats1").items()
    }
    state = training.TrainState(
        jnp.zeros((), jnp.int32), params, _unflatten(stats), jax.jit(tx.init)(params)
    )
    batches = [{"x": jnp.asarray(fx["x"][i]), "y": jnp.asarray(fx["y"][i])} for i in range(2)]

    def loss(p):
        return training.loss_fn(model, t, p, state.batch_stats, batches[0], None, 0.0)[0]

    grads = jax.jit(jax.grad(loss))(params)
    _assert_close(_flat(grads), _section(fx, "grad1"), 1e-4, 2e-6, "gradient")

    step = jax.jit(training.make_train_step(model, tx, t, schedule, spe, seed=0))
    for i in range(2):
        state, metrics = step(state, batches[i])
        np.testing.assert_allclose(metrics["loss"], fx["loss"][i], rtol=1e-5)
        np.testing.assert_allclose(metrics["lr"], fx["lr"][i], rtol=1e-6)
        _assert_close(_flat(state.params), _section(fx, f"params{i + 1}"), 1e-4, 1e-6, "params")
        _assert_close(
            _flat(state.batch_stats), _section(fx, f"stats{i + 1}"), 1e-4, 1e-6, "BN stats"
        )


def _seeded_init(shapes: dict, seed: int) -> dict:
    """The oracle's `seeded_init`: PyTorch's default init drawn with NumPy, leaf by leaf
    in sorted name order (kernels and linear biases U(+-1/sqrt(fan_in)), BN 1 / 0)."""
    rng = np.random.default_rng(seed)
    flat = {}
    for name in sorted(shapes):
        shape = tuple(shapes[name])
        prefix, leaf = name.rsplit("/", 1)
        kernel = shapes.get(f"{prefix}/kernel")
        if leaf == "kernel" or (leaf == "bias" and kernel is not None):
            bound = 1.0 / np.sqrt(np.prod(kernel[:-1] if leaf == "bias" else shape[:-1]))
            flat[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
        else:
            flat[name] = (np.ones if leaf == "scale" else np.zeros)(shape, np.float32)
    return flat


def _thin(flat: dict, large: int) -> dict:
    """The oracle's `thin`: big leaves as their norm and 1,024 seeded entries."""
    out = {}
    for name, v in flat.items():
        if v.size > large:
            idx = np.random.default_rng(1).choice(v.size, 1024, replace=False)
            out[f"{name}@norm"] = np.asarray(np.linalg.norm(v.astype(np.float64)), np.float32)
            out[f"{name}@sample"] = v.reshape(-1)[idx]
        else:
            out[name] = v
    return out


@pytest.mark.slow  # compiles a DARTS network with its auxiliary head: minutes on 2 cores
def test_two_darts_steps_equal_the_pytorch_oracle():
    """DARTS' step (main + 0.4 x auxiliary loss, grad-norm clipping, SGD momentum +
    weight decay, per-epoch cosine; drop-path and cutout off) from the same weights and
    batches equals the PyTorch oracle's (fixture from scripts/torch_train_oracle.py)."""
    fx = np.load(os.path.join(FIXTURES, "train_step_darts.npz"))
    info = json.loads(str(fx["provenance"]))
    setup, large = info["setup"], info["large"]
    space = darts.space(
        channels=setup["channels"],
        num_cells=setup["cells"],
        auxiliary=True,
        affine_ops=True,
        pool_bn=False,
    )
    pairs = [setup["normal"], setup["reduce"]]
    genotype = [v for cell in pairs for op, i in cell for v in (i, darts.NB301_OPS.index(op))]
    model = space.materialize(np.asarray(genotype, np.int32))
    config = training.apply_recipe(configs.default_config(), "darts")
    t = config.train
    t.epochs, t.grad_clip, t.drop_path = setup["epochs"], setup["grad_clip"], 0.0
    spe = setup["steps_per_epoch"]
    tx, schedule = training.optimizer(t, spe)
    shapes = {k: tuple(int(d) for d in v) for k, v in _section(fx, "shape").items()}
    x = jnp.zeros((1, setup["size"], setup["size"], 3), jnp.float32)
    ours = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    assert {k: v.shape for k, v in _flat(ours["params"]).items()} == shapes
    params = _unflatten(_seeded_init(shapes, setup["seed"]))
    stats = {
        k: np.zeros_like(v) if k.endswith("mean") else np.ones_like(v)
        for k, v in _section(fx, "stats1").items()
    }
    state = training.TrainState(
        jnp.zeros((), jnp.int32), params, _unflatten(stats), jax.jit(tx.init)(params)
    )
    batches = [{"x": jnp.asarray(fx["x"][i]), "y": jnp.asarray(fx["y"][i])} for i in range(2)]

    @jax.jit
    def loss_and_grad(state, batch):
        return jax.value_and_grad(
            lambda p: training.loss_fn(model, t, p, state.batch_stats, batch, None, 0.0)[0]
        )(state.params)

    _, grads = loss_and_grad(state, batches[0])
    _assert_close(_thin(_flat(grads), large), _section(fx, "grad1"), 1e-4, 2e-6, "gradient")
    norm = np.sqrt(sum(np.sum(np.asarray(g, np.float64) ** 2) for g in jax.tree.leaves(grads)))
    np.testing.assert_allclose(norm, fx["grad_norm"][0], rtol=1e-5)
    assert norm > t.grad_clip  # the clipping acts in this step

    step = jax.jit(training.make_train_step(model, tx, t, schedule, spe, seed=0))
    for i in range(2):
        np.testing.assert_allclose(loss_and_grad(state, batches[i])[0], fx["loss"][i], rtol=1e-5)
        state, metrics = step(state, batches[i])
        np.testing.assert_allclose(metrics["lr"], fx["lr"][i], rtol=1e-6)
        _assert_close(
            _thin(_flat(state.params), large), _section(fx, f"params{i + 1}"), 1e-4, 1e-6, "params"
        )
        _assert_close(
            _flat(state.batch_stats), _section(fx, f"stats{i + 1}"), 1e-4, 1e-6, "BN stats"
        )


def _tiny_npz(path, n_train=128, n_test=40, size=8, seed=0):
    """Learnable data: class k is a colour (k-th of 10) plus noise."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (10, 3))

    def split(n):
        y = rng.integers(0, 10, n)
        noise = rng.normal(0, 20, (n, size, size, 3))
        x = np.clip(colours[y][:, None, None, :] + noise, 0, 255).astype(np.uint8)
        return x, y

    (a, b), (c, d) = split(n_train), split(n_test)
    np.savez(path, train_images=a, train_labels=b, test_images=c, test_labels=d)
    return str(path)


def _config(npz, epochs=5, **train):
    config = training.apply_recipe(configs.default_config(), "nb201")
    config.mode = "train"
    config.space.kwargs = dict(channels=4, cells_per_stage=1)
    t = config.train
    t.arch = ARCH
    t.epochs = epochs
    t.batch_size = 16
    t.eval_batch_size = 16
    t.data.path = npz
    t.plot = False
    t.update(train)
    return config


def _read(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_train_end_to_end_resume_and_report(tmp_path, capsys):
    """The CLI's experiment.run on a tiny npz: per-epoch JSON lines, report, checkpoints;
    a run stopped after epoch 1 and resumed ends bitwise equal to an uninterrupted one."""
    npz = _tiny_npz(tmp_path / "tiny.npz")
    full = str(tmp_path / "full")
    report = experiment.run(_config(npz, plot=True), full)
    try:
        import matplotlib  # noqa: F401  (the optional `plot` extra)

        assert os.path.exists(os.path.join(full, "curves.png"))
    except ImportError:
        assert not os.path.exists(os.path.join(full, "curves.png"))
    rows = _read(os.path.join(full, "metrics.jsonl"))
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
    for r in rows:
        assert {"loss", "acc", "lr", "images_per_second", "test_acc", "test_loss"} <= set(r)
    # NB201's cosine, constant within an epoch: lr_e = 0.05 (1 + cos(pi e / 5)).
    expected = [0.05 * (1 + np.cos(np.pi * e / 5)) for e in range(5)]
    np.testing.assert_allclose([r["lr"] for r in rows], expected, rtol=1e-6)
    assert report["arch"] == ARCH and report["finished"] and report["epochs_done"] == 5
    assert report["test_acc"] == rows[-1]["test_acc"]
    assert report["test_acc"] > 25.0, rows  # colour classes: chance is 10 %
    assert "test accuracy" in capsys.readouterr().out
    epoch, last = training.load_checkpoint(full, "last")
    assert epoch == 5 and int(last["step"]) == 5 * 8
    assert training.load_checkpoint(full, "best")[0] == report["best_epoch"]

    split = str(tmp_path / "split")
    stopped = experiment.run(_config(npz, stop_after_epoch=2), split)
    assert not stopped["finished"] and training.load_checkpoint(split)[0] == 2
    table = tmp_path / "table.csv"
    table.write_text(f"arch_str,cifar10_test\n{ARCH},91.25\n")
    config = _config(npz)
    config.benchmark.path = str(table)
    resumed = experiment.run(config, split)
    out = capsys.readouterr().out
    assert "resuming from the checkpoint of epoch 2" in out
    assert "cifar10_test 91.25" in out and resumed["benchmark"]["cifar10_test"] == 91.25
    assert resumed["finished"]
    resumed_last = training.load_checkpoint(split)[1]
    for a, b in zip(jax.tree.leaves(last), jax.tree.leaves(resumed_last), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(rows, _read(os.path.join(split, "metrics.jsonl")), strict=True):
        for k in ("epoch", "loss", "acc", "lr", "test_acc", "test_loss"):
            assert a[k] == b[k], (k, a, b)

    with pytest.raises(errors.ConfigError, match="another config"):
        experiment.run(_config(npz, lr=0.05), split)


def test_train_reads_a_tfds_dataset(tmp_path):
    """`train.data.source='tfds'` end to end on `tfds.testing.mock_data` (random CIFAR-10
    records through `tfds.data_source`, the reader's real path); only the builder's
    on-disk preparation check is patched, as nothing is prepared."""
    tfds = pytest.importorskip("tensorflow_datasets", reason="tensorflow-datasets is not installed")

    config = _config("", epochs=1)
    config.train.data.update(source="tfds", dataset="cifar10", data_dir=str(tmp_path / "tfds"))
    with (
        tfds.testing.mock_data(num_examples=32, policy=tfds.testing.MockPolicy.USE_CODE),
        mock.patch.object(tfds.core.DatasetBuilder, "is_prepared", return_value=True),
    ):
        report = experiment.run(config, str(tmp_path / "w"))
    (row,) = _read(os.path.join(tmp_path, "w", "metrics.jsonl"))
    assert report["finished"] and row["epoch"] == 1
    assert np.isfinite(row["loss"]) and 0.0 <= row["test_acc"] <= 100.0
    assert int(training.load_checkpoint(str(tmp_path / "w"), "last")[1]["step"]) == 32 // 16


@pytest.mark.slow
def test_a_killed_cli_run_resumes_bitwise(tmp_path):
    """SIGKILL the CLI right after its first checkpoint, rerun the command: the final
    parameters equal those of an uninterrupted run bit for bit."""
    npz = _tiny_npz(tmp_path / "tiny.npz")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}

    def command(workdir):
        config = os.path.join(root, "tests", "fixtures", "tiny_train.py")
        return [
            sys.executable,
            "-m",
            "jaxnas.main",
            f"--config={config}:npz={npz}",
            f"--workdir={workdir}",
        ]

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(command(whole), env=env, check=True, capture_output=True)
    proc = subprocess.Popen(
        command(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    first = killed / "checkpoints" / "last" / "1"
    while not first.exists() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "report.json").exists(), "the run finished before the kill"
    out = subprocess.run(command(killed), env=env, check=True, capture_output=True, text=True)
    assert "resuming from the checkpoint of epoch" in out.stdout
    a, b = training.load_checkpoint(str(whole))[1], training.load_checkpoint(str(killed))[1]
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_from_search_reads_the_best_run(tmp_path):
    runs = [
        {"run": 0, "arch": ARCH, "score": 1.0},
        {"run": 1, "arch": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "score": 3.0},
    ]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs) + '{"cut')
    assert training.chosen_arch(str(tmp_path))[0] == runs[1]["arch"]
    assert training.chosen_arch(str(tmp_path), run=0)[0] == ARCH
    with pytest.raises(errors.DataError, match="no run 5"):
        training.chosen_arch(str(tmp_path), run=5)
    with pytest.raises(errors.DataError, match="no search results"):
        training.chosen_arch(str(tmp_path / "missing"))


def test_bad_train_configs_are_refused(tmp_path):
    npz = _tiny_npz(tmp_path / "tiny.npz", n_train=20, n_test=4)
    cases = {
        "exactly one of train.arch": dict(arch=""),
        "exceeds the 20 training images": dict(batch_size=32),
        "unknown train.optimizer": dict(optimizer="adam"),
        "has no drop-path": dict(drop_path=0.2),
    }
    for message, train in cases.items():
        with pytest.raises(errors.JaxnasError, match=message):
            training.train(_config(npz, **train), str(tmp_path / "w"))
    config = _config(npz)
    config.train.data.path = str(tmp_path / "nope.npz")
    with pytest.raises(errors.DataError, match="not found"):
        training.train(config, str(tmp_path / "w"))
    config = _config(npz)
    config.train.arch = "|bogus~0|"
    with pytest.raises(errors.ArchitectureError):
        training.train(config, str(tmp_path / "w"))
    config = _config(npz)
    config.space.kwargs = dict(channels=4, cells_per_stage=1, num_classes=5)
    with pytest.raises(errors.DataError, match="5 classes; set space.kwargs.num_classes="):
        training.train(config, str(tmp_path / "w"))


def test_drop_path_drops_whole_examples_and_rescales():
    class Dropper(nn.Module):
        @nn.compact
        def __call__(self, x, rate):
            return darts._drop_path(self, x, rate)

    x = jnp.ones((400, 2, 2, 3), jnp.float32)
    y = Dropper().apply({}, x, jnp.float32(0.25), rngs={"dropout": jax.random.key(0)})
    per_example = np.asarray(y).reshape(400, -1)
    assert set(np.unique(per_example)) <= {0.0, np.float32(1 / 0.75)}
    assert (per_example.min(1) == per_example.max(1)).all()  # one draw per example
    assert 0.15 < (per_example[:, 0] == 0).mean() < 0.35


def _primitive_names(jaxpr) -> set[str]:
    """Primitive names of a jaxpr and of every sub-jaxpr (control flow, checkpoints)."""
    names = set()
    for eqn in jaxpr.eqns:
        names.add(str(eqn.primitive))
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            names |= _primitive_names(sub)
    return names


def test_train_step_differentiates_3x3_convolutions_with_xla_rule():
    """The train step's kernel gradients are XLA's own (no checkpointed shifted-window
    products of `functional.conv2d`'s custom rule, which `jax.checkpoint` marks)."""
    from jaxnas.spaces import op_layers

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train=True):
            x = op_layers.ConvBN(3, 4, 3, 1, 1, track_running_stats=True, name="conv")(x, train)
            return nn.Dense(10)(jnp.mean(x, (1, 2)))

    t = training.default_config()
    tx, schedule = training.optimizer(t, 1)
    state = training.init_state(Net(), tx, jax.random.key(0), (8, 8, 3))
    step = training.make_train_step(Net(), tx, t, schedule, 1, 0)
    batch = {"x": jnp.ones((2, 8, 8, 3)), "y": jnp.zeros(2, jnp.int32)}
    names = _primitive_names(jax.make_jaxpr(step)(state, batch).jaxpr)
    assert "conv_general_dilated" in names
    assert not {"checkpoint", "remat2", "custom_jvp_call"} & names, names


def test_recipes_and_schedules():
    darts = training.apply_recipe(configs.default_config(), "darts")
    assert darts.train.batch_size == 96 and darts.train.grad_clip == 5.0
    assert darts.space.kwargs.channels == 36 and darts.space.kwargs.num_cells == 20
    nb101 = training.apply_recipe(configs.default_config(), "nb101").train
    schedule = training.learning_rate(nb101, 10)
    lrs = [float(schedule(jnp.asarray(s))) for s in (0, 1, 540, 1079)]
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(0.2 * 0.5 * (1 + np.cos(np.pi / 1080)))
    assert lrs[2] == pytest.approx(0.1, rel=1e-5) and lrs[3] < 1e-5
    with pytest.raises(errors.ConfigError, match="unknown recipe"):
        training.apply_recipe(configs.default_config(), "nb999")


def test_epoch_batches_are_seeded_and_augmented():
    rng = np.random.default_rng(0)
    split = train_data.Split(
        rng.integers(0, 256, (10, 8, 8, 3)).astype(np.uint8), np.arange(10, dtype=np.int32)
    )
    a = list(train_data.epoch_batches(split, 0, 1, 4, "none", 2, True, 4))
    b = list(train_data.epoch_batches(split, 0, 1, 4, "none", 2, True, 4, start_step=1))
    c = list(train_data.epoch_batches(split, 0, 2, 4, "none", 2, True, 4))
    assert len(a) == 2 and a[0]["x"].shape == (4, 8, 8, 3)
    np.testing.assert_array_equal(a[1]["x"], b[0]["x"])  # a resumed epoch sees the same
    assert not np.array_equal(a[0]["y"], c[0]["y"])  # another epoch, another order
    # crop without padding, no flip, no cutout: the images themselves
    plain = next(train_data.epoch_batches(split, 0, 0, 10, "none"))
    np.testing.assert_allclose(plain["x"] * 255, split.images[plain["y"]], atol=1e-3)
    flipped = train_data.crop_flip(np.random.default_rng(1), split.images, 0, True)
    for img, out in zip(split.images, flipped, strict=True):
        assert np.array_equal(out, img) or np.array_equal(out, img[:, ::-1])
    cut = train_data.cutout(np.random.default_rng(0), np.ones((50, 8, 8, 1), np.float32), 4)
    zeros = (cut == 0).reshape(50, -1).sum(1)
    assert zeros.max() == 16 and zeros.min() >= 4  # a 4x4 square, clipped at the border


def test_two_devices_train_like_one():
    """Five steps on 2 virtual CPU devices equal five on 1 (tests/sharded_training.py)."""
    flags = os.environ.get("XLA_FLAGS", "")
    env = {**os.environ, "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=2"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    script = os.path.join(os.path.dirname(__file__), "sharded_training.py")
    out = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "two devices train like one" in out.stdout
