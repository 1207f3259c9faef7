"""The Suite-Zero config end to end on a tiny network: paired references and augmentation."""

import json
import os
import subprocess
import sys

import jax
import pytest

from jaxnas import errors, experiment, inputs
from jaxnas.spaces import nb201

from conftest import ROOT, load_config


def _config(arg, name="nb201_suitezero_proxies.py"):
    return load_config(os.path.join("configs", name), arg)


def test_every_published_column_is_paired_with_a_registered_proxy():
    config = _config(None)
    assert len(config.proxies) == 13
    assert dict(config.benchmark.reference_of)["jacob_cov"] == "jacov"
    assert dict(config.benchmark.reference_of)["naswot"] == "nwot"
    assert config.data.augment and config.data.normalization == "cifar10-naslib"


def test_scores_cells_against_val_acc_and_their_own_columns(tmp_path, shared_data):
    config = _config("size=5,batch=8,proxies=params+synflow")
    config.space.kwargs = {"channels": 4, "cells_per_stage": 1}
    config.report.num_bootstrap = 20
    report = experiment.run(config, str(tmp_path))
    correlations = report["correlations"]
    assert set(correlations) == {
        "params vs val_acc",
        "params vs reference params",
        "synflow vs val_acc",
        "synflow vs reference synflow",
        "reference params vs val_acc",
        "reference synflow vs val_acc",
    }
    rows = [json.loads(line) for line in open(tmp_path / "scores.jsonl")]
    assert len(rows) == 5 and all(r["synflow"]["score"] is not None for r in rows)


def test_fused_proxies_score_as_one_by_one(tmp_path, shared_data):
    rows, timings = {}, {}
    for fuse in (0, 1):
        config = _config(f"size=3,batch=8,proxies=params+synflow+l2_norm,fuse={fuse}")
        config.space.kwargs = {"channels": 4, "cells_per_stage": 1}
        config.report.num_bootstrap = 20
        workdir = tmp_path / str(fuse)
        timings[fuse] = set(experiment.run(config, str(workdir))["timing"])
        rows[fuse] = [json.loads(line) for line in open(workdir / "scores.jsonl")]
    assert timings == {0: {"params", "synflow", "l2_norm"}, 1: {"params+l2_norm", "synflow"}}
    assert rows[0] == rows[1]


def test_report_rebuild_renders_the_listed_runs_next_to_the_published_columns(
    tmp_path, shared_data
):
    config = _config("size=5,batch=8,proxies=params+l2_norm")
    config.space.kwargs = {"channels": 4, "cells_per_stage": 1}
    config.report.num_bootstrap = 20
    run = tmp_path / "run"
    experiment.run(config, str(run))
    (run / "command.txt").write_text("the command of this run")
    # A saved score file of the script: naswot on five NB201 cells, ranked as the targets.
    archs = [nb201.to_string(g) for g in nb201.space().enumerate()[:5]]
    saved = {
        "meta": {"command": "scripts/proxy_report.py --made-up", "date": "-", "machine": "-"},
        "archs": archs,
        "targets": {ds: [1.0, 2.0, 3.0, 4.0, 5.0] for ds in ("cifar10", "cifar100")},
        "scores": {"naswot": {"cifar100": {"scores": [5, 6, 7, 8, 9], "seconds_per_arch": 1}}},
    }
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps(saved))
    inputs = tmp_path / "inputs.txt"
    inputs.write_text(f"# a comment\n{scores}\n{run}\n{tmp_path / 'absent_run'}  # never made\n")
    out = tmp_path / "report.md"
    command = [
        sys.executable,
        os.path.join(ROOT, "scripts", "proxy_report.py"),
        "--rebuild",
        "--inputs",
        str(inputs),
        "--out",
        str(out),
        "--png",
        "",
        "--bootstrap",
        "20",
    ]
    env = {**os.environ, "JAXNAS_SHARED_DATA": str(shared_data)}
    done = subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    assert f"missing input {tmp_path / 'absent_run'}" in done.stdout
    text = out.read_text()
    assert "Rebuild: `python scripts/proxy_report.py --rebuild`" in text
    assert f"`{inputs}`" in text and f"`{tmp_path / 'absent_run'}`" in text
    assert "### `nb201_zc_suitezero_cifar10_9445.csv.gz` (nb201 space, batch 8)" in text
    # params of the (reduced) network against the full network's column: same ranks.
    params_row = next(
        line for line in text.splitlines() if line.startswith("| params | shared, 8 | val_acc")
    )
    assert "| 5 | 0 |" in params_row and "`params`" in params_row
    assert params_row.endswith("| `the command of this run` |")
    naswot_row = next(line for line in text.splitlines() if line.startswith("| naswot | 5 |"))
    assert "| 1.000 [" in naswot_row and naswot_row.endswith(
        "`scripts/proxy_report.py --made-up` |"
    )
    assert (
        "| ntk_cond | channels=3, cells_per_stage=1; 72 images; K=3 | reference.md §A.2 |" in text
    )

    # Nothing listed exists: an error, and nothing written.
    inputs.write_text(f"{tmp_path / 'absent_run'}\n")
    out.unlink()
    failed = subprocess.run(command, env=env, capture_output=True, text=True)
    assert failed.returncode == 2 and "none of the inputs listed" in failed.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "name, arg, message",
    [
        ("nb101_suitezero_proxies.py", "proxies=naswot", "no published column for \\['naswot'\\]"),
        ("darts_suitezero_proxies.py", "proxies=zen", "no published column for \\['zen'\\]"),
    ],
)
def test_suite_zero_configs_name_proxies_without_a_published_column(name, arg, message):
    with pytest.raises(errors.ConfigError, match=message):
        _config(arg, name)


@pytest.mark.parametrize("name", ["nb101_suitezero_proxies.py", "darts_suitezero_proxies.py"])
def test_suite_zero_configs_draw_cells_of_their_table(name, shared_data):
    config = _config("size=4", name)
    space = inputs.space(config)
    bench = inputs.benchmark(config)
    population = inputs.population(config, space, bench, jax.random.key(0))
    assert population.shape[0] == 4
    assert all(space.to_string(g) in bench for g in population)
