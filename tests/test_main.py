"""End to end: the experiment runner on tiny configs, and the CLI's error messages."""

import csv
import gzip
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags as absl_flags

from jaxnas import compilation_cache, configs, errors, experiment, inputs, main, proxies

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny(config):
    config.space.kwargs = {"channels": 4, "cells_per_stage": 1}
    config.data.image_size = 8
    config.data.batch_size = 8
    config.report.num_bootstrap = 50
    return config


def test_score_mode_writes_scores_and_correlations(tmp_path, shared_data):
    config = _tiny(configs.default_config())
    config.population.size = 12
    config.archs_per_call = 5  # two full calls and a padded one
    config.num_inits = 2
    config.benchmark.path = os.path.join(shared_data, "nasbench201", "nb201_test_acc_200ep.csv.gz")
    report = experiment.run(config, str(tmp_path))
    rows = [json.loads(line) for line in open(tmp_path / "scores.jsonl")]
    assert len(rows) == 12 and len({r["arch"] for r in rows}) == 12
    assert all(len(r["naswot"]["scores"]) == 2 for r in rows)
    np.testing.assert_allclose(
        rows[0]["naswot"]["score"], np.mean(rows[0]["naswot"]["scores"]), rtol=1e-5
    )
    assert "index" in rows[0]
    r = report["correlations"]["naswot vs cifar10_test"]
    # Spearman worked out here from the table itself (ranks by numpy, no ties expected).
    with gzip.open(config.benchmark.path, "rt") as f:
        accuracy = {row["arch_str"]: float(row["cifar10_test"]) for row in csv.DictReader(f)}
    scores = np.asarray([row["naswot"]["score"] for row in rows])
    truth = np.asarray([accuracy[row["arch"]] for row in rows])
    assert len(set(scores)) == 12 and len(set(truth)) == 12
    ranks = [np.argsort(np.argsort(v)).astype(float) for v in (scores, truth)]
    assert r["n"] == 12
    np.testing.assert_allclose(r["spearman"], np.corrcoef(*ranks)[0, 1], rtol=1e-9)
    saved = json.load(open(tmp_path / "config.json"))
    assert saved["population"]["size"] == 12


def test_search_mode_reports_the_chosen_cells(tmp_path, shared_data):
    config = _tiny(configs.default_config())
    config.mode = "search"
    config.search.num_runs = 2
    config.search.population_size = 6
    config.benchmark.path = os.path.join(shared_data, "nasbench201", "nb201_test_acc_200ep.csv.gz")
    summary = experiment.run(config, str(tmp_path))
    runs = [json.loads(line) for line in open(tmp_path / "runs.jsonl")]
    assert len(runs) == 2
    for run in runs:
        assert run["cifar10_test"] <= run["optimal_in_sample/cifar10_test"]
    assert summary["num_runs"] == 2 and summary["cifar10_test"]["n"] == 2


def test_search_resumes_and_extends_with_the_same_records(tmp_path):
    config = _tiny(configs.default_config())
    config.mode = "search"
    config.search.population_size = 4
    config.search.num_runs = 3
    experiment.run(config, str(tmp_path / "straight"))
    straight = [json.loads(line) for line in open(tmp_path / "straight" / "runs.jsonl")]

    config.search.num_runs = 2
    experiment.run(config, str(tmp_path / "resumed"))
    with open(tmp_path / "resumed" / "runs.jsonl", "a") as f:
        f.write('{"run": 2, "arch": "|nor_')  # an interrupted write
    first = [
        json.loads(line)
        for line in open(tmp_path / "resumed" / "runs.jsonl")
        if line.endswith("\n")
    ]
    config.search.num_runs = 3
    summary = experiment.run(config, str(tmp_path / "resumed"))
    resumed = [json.loads(line) for line in open(tmp_path / "resumed" / "runs.jsonl")]

    assert resumed[:2] == first  # kept verbatim, timings included
    assert [(r["arch"], r["score"]) for r in resumed] == [(r["arch"], r["score"]) for r in straight]
    assert summary["num_runs"] == 3

    config.seed = 1  # a different experiment starts afresh: same records as a clean run
    experiment.run(config, str(tmp_path / "resumed"))
    fresh = [json.loads(line) for line in open(tmp_path / "resumed" / "runs.jsonl")]
    experiment.run(config, str(tmp_path / "clean"))
    clean = [json.loads(line) for line in open(tmp_path / "clean" / "runs.jsonl")]
    assert [(r["arch"], r["score"]) for r in fresh] == [(r["arch"], r["score"]) for r in clean]
    assert [r["arch"] for r in fresh] != [r["arch"] for r in resumed]


def test_a_second_run_loads_its_traced_programs_and_scores_the_same(tmp_path):
    cache = tmp_path / "xla"
    runs = [tmp_path / name for name in ("first", "second", "uncached")]
    for run, flag in zip(runs, (cache, cache, "none")):
        result = _cli(run, f"--compilation_cache={flag}")
        assert result.returncode == 0, result.stderr
        assert "re-tracing" not in result.stdout
    # The scorer's two programs: the shared initialisations and the scoring.
    assert len(list((cache / compilation_cache.TRACED).iterdir())) == 2
    scores = [(run / "scores.jsonl").read_text() for run in runs]
    assert scores[0] == scores[1] == scores[2]


def _cli(tmp_path, *overrides):
    cmd = [
        sys.executable,
        "-m",
        "jaxnas.main",
        "--config=configs/nb201_naswot.py:size=4",
        f"--workdir={tmp_path}",
        *overrides,
    ]
    env = {**os.environ, "PYTHONPATH": ROOT, "JAXNAS_COMPILATION_CACHE": str(tmp_path / "xla")}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            [
                "--config.population.source=list",
                "--config.population.archs=('|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|',)",
            ],
            "unknown op 'conv_7x7'",
        ),
        (
            ["--config.population.source=list", "--config.population.archs=('|none~0|+|none~0|',)"],
            "malformed NB201 string",
        ),
        (["--config.benchmark.path=/nonexistent/table.csv.gz"], "benchmark file not found"),
        (["--config.data.source=npz", "--config.data.path=NCHW"], "channels first"),
        (
            ["--config.data.source=npz", "--config.data.path=C100"],
            "labels go up to 99 but the network has 10 classes; set space.kwargs.num_classes=100",
        ),
        (["--config.proxies=('nwot',)"], "unknown proxy 'nwot'"),
    ],
)
def test_cli_bad_input_gives_one_line_error(tmp_path, overrides, message):
    overrides = [
        o.replace("NCHW", str(tmp_path / "nchw.npz")).replace("C100", str(tmp_path / "c100.npz"))
        for o in overrides
    ]
    np.savez(
        tmp_path / "nchw.npz",
        images=np.zeros((70, 3, 32, 32), np.uint8),
        labels=np.zeros(70, np.int64),
    )
    # CIFAR-100 labels for NB201's 10-class network.
    np.savez(
        tmp_path / "c100.npz",
        images=np.zeros((100, 32, 32, 3), np.uint8),
        labels=np.arange(100),
    )
    result = _cli(tmp_path, *overrides)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1], result.stderr
    assert "Traceback" not in result.stderr
    command = (tmp_path / "command.txt").read_text()
    assert command.startswith("python -m jaxnas.main --config=configs/nb201_naswot.py:size=4 ")


def test_score_mode_resumes_from_the_scores_saved_per_call(tmp_path):
    config = _tiny(configs.default_config())
    config.population.size = 9
    config.archs_per_call = 3
    experiment.run(config, str(tmp_path))
    assert not list(tmp_path.glob("partial.*"))  # removed once scores.jsonl is written
    scores = _naswot_scores(tmp_path)
    # As if the run had stopped after two calls, with recognisable saved scores.
    np.save(tmp_path / "partial.naswot.npy", scores[:6] + 1000.0)
    experiment.run(config, str(tmp_path))
    resumed = _naswot_scores(tmp_path)
    np.testing.assert_allclose(resumed[:6], scores[:6] + 1000.0)
    np.testing.assert_allclose(resumed[6:], scores[6:], rtol=1e-6)
    # Another config does not resume.
    np.save(tmp_path / "partial.naswot.npy", scores[:6] + 1000.0)
    config.seed = 1
    experiment.run(config, str(tmp_path))
    assert np.max(_naswot_scores(tmp_path)) < 1000.0


def _naswot_scores(workdir):
    """f32[P, K] from scores.jsonl (a singular kernel's -inf is written as "-inf")."""
    rows = [json.loads(line)["naswot"]["scores"] for line in open(workdir / "scores.jsonl")]
    return np.asarray(rows, np.float32)


@pytest.mark.slow
def test_score_mode_with_a_batch_per_arch_scores_each_cell_on_its_own_batch(tmp_path):
    config = _tiny(configs.default_config())
    config.population.size = 5
    config.archs_per_call = 2  # two full calls and a padded one
    config.data.batch_per_arch = True
    experiment.run(config, str(tmp_path / "per_arch"))
    per_arch = _naswot_scores(tmp_path / "per_arch")
    config.data.batch_per_arch = False
    experiment.run(config, str(tmp_path / "shared"))
    assert not np.allclose(per_arch, _naswot_scores(tmp_path / "shared"))

    space = inputs.space(config)
    _, key_data, key_init = jax.random.split(jax.random.key(config.seed), 3)
    images = inputs.Images(config)
    rows = [json.loads(line) for line in open(tmp_path / "per_arch" / "scores.jsonl")]
    for i, row in enumerate(rows):
        genotype = jnp.asarray([row["genotype"]])
        batch = images.batch(jax.random.fold_in(key_data, i + 1))
        alone = proxies.score_population(
            proxies.get_proxy("naswot"), space, genotype, batch, jax.random.split(key_init, 1)
        )
        np.testing.assert_allclose(per_arch[i], alone[0], rtol=1e-5)

    config.mode = "search"
    config.data.batch_per_arch = True
    with pytest.raises(errors.ConfigError, match="batch_per_arch is for score mode"):
        experiment.run(config, str(tmp_path / "search"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config=configs/nb201_naswot.py:size=4", "--config.foo=1"], "'config.foo' does not"),
        (["--config=configs/nb201_naswot.py:size=-5"], "config.population.size must be"),
        (
            ["--config=configs/nb201_naswot.py:size=4", "--config.data.batch_size=0"],
            "config.data.batch_size must be an integer >= 1, got 0",
        ),
        (["--config=configs/no_such.py"], "config file not found: configs/no_such.py"),
        (
            ["--config=configs/nb201_naswot.py:size=4", "--config.num_inits=0"],
            "config.num_inits must be an integer >= 1, got 0",
        ),
        (["--config=configs/nb201_naswot.py:sise=4"], "unknown config argument 'sise'"),
        (["--config=configs/nb201_naswot.py", "--config.num_inits=two"], "--config.num_inits=two"),
    ],
)
def test_cli_bad_config_gives_one_line_error_before_any_work(tmp_path, args, message, capsys):
    argv = ["jaxnas.main", *args, f"--workdir={tmp_path / 'run'}"]
    flag_values = main.define_flags(absl_flags.FlagValues(), argv)
    with pytest.raises(SystemExit) as info:
        main.parse_flags(argv, flag_values)
    assert info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "run").exists()  # stopped before writing anything


def test_cli_bad_config_end_to_end(tmp_path):
    """The same through `python -m jaxnas.main` (absl's app.run): no traceback."""
    cmd = [
        sys.executable,
        "-m",
        "jaxnas.main",
        "--config=configs/nb201_naswot.py:size=4",
        "--config.foo=1",
        f"--workdir={tmp_path / 'run'}",
    ]
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "error: config field 'config.foo' does not exist; the fields are those of "
        "jaxnas.configs.default_config"
    )


def test_out_of_memory_is_one_line_naming_the_settings(tmp_path, monkeypatch, capsys):
    def exhausted(config, workdir):
        raise jax.errors.JaxRuntimeError(
            "RESOURCE_EXHAUSTED: Out of memory allocating 45639099712 bytes."
        )

    monkeypatch.setattr(experiment, "run", exhausted)
    config = configs.default_config()
    config.num_inits = 32
    config.init_chunk_size = 8
    with pytest.raises(SystemExit) as info:
        main.run_cli(config, str(tmp_path), cache="none")
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: out of memory (45.6 GB asked for): ")
    # The default config's chunk_size 0 resolves to 1 under switch dispatch (CPU).
    assert "(here 1 x 8 x 128)" in err[0]
    assert err[0].endswith("lower one of them or set concurrent_calls=1")


def test_other_runtime_errors_are_not_called_out_of_memory(tmp_path, monkeypatch):
    def broken(config, workdir):
        raise jax.errors.JaxRuntimeError("INTERNAL: something else")

    monkeypatch.setattr(experiment, "run", broken)
    with pytest.raises(jax.errors.JaxRuntimeError, match="INTERNAL"):
        main.run_cli(configs.default_config(), str(tmp_path), cache="none")


def test_ctrl_c_says_how_to_resume(tmp_path, monkeypatch, capsys):
    def interrupted(config, workdir):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "run", interrupted)
    with pytest.raises(SystemExit) as info:
        main.run_cli(configs.default_config(), str(tmp_path))
    assert info.value.code == 130
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"interrupted: the scores saved in {tmp_path} are kept; run the same command again "
        "to resume"
    ]
