"""The CLI's `combine` section: LIBRA held apart on a Suite-Zero table, live proxies combined."""

import json
import os

import numpy as np
import pytest
from scipy import stats

from jaxnas import benchmarks, configs, errors, experiment, spaces
from jaxnas.proxies import combine

from conftest import load_config


def _config(arg, name="libra_suitezero.py"):
    return load_config(os.path.join("configs", name), arg)


def test_libra_run_calibrates_and_evaluates_on_disjoint_cells(tmp_path, shared_data):
    config = _config("bench=nb101")
    config.report.num_bootstrap = 20
    report = experiment.run(config, str(tmp_path))
    saved = json.load(open(tmp_path / "combine.json"))
    calibration, evaluation = saved["split"]["calibration"], saved["split"]["evaluation"]
    assert len(calibration) == 125 and len(evaluation) == 125
    assert not set(calibration) & set(evaluation)
    assert list(saved["selection"]) == ["val_acc"]
    selection = saved["selection"]["val_acc"]
    assert len(set(selection["names"])) == 3 and selection["num_calibration"] == 125
    # The reported correlation is over the evaluation cells only, and recomputes.
    table = benchmarks.Benchmark.from_csv(
        config.benchmark.path, key="arch", key_columns=("adjacency_rows", "ops")
    )
    combined = np.asarray([saved["scores"]["val_acc"][a] for a in evaluation])
    r = report["combine"]["correlations"]["combined libra vs val_acc"]
    assert r["n"] == 125
    assert r["spearman"] == pytest.approx(
        stats.spearmanr(combined, table.lookup("val_acc", evaluation))[0]
    )
    # The selection is the one libra_select makes on the calibration rows alone.
    columns = [c.removeprefix("table:") for c in saved["proxies"]]
    direct = combine.libra_select(
        np.stack([table.lookup(c, calibration) for c in columns], axis=1),
        table.lookup("val_acc", calibration),
        table.lookup("params", calibration),
        saved["proxies"],
    )
    assert list(direct.names) == selection["names"]


def test_libra_selects_once_per_target(tmp_path):
    # Two accuracy columns that follow different proxy columns: each target gets its
    # own selection, led by the column it follows, on the same calibration cells.
    space = spaces.nb201.space()
    archs = [space.to_string(g) for g in space.enumerate()[:60]]
    rng = np.random.default_rng(0)
    cols = {name: rng.normal(size=60) for name in ("a", "b", "c", "d")}
    cols["params"] = rng.normal(size=60)
    cols["acc_a"] = cols["a"] + 0.1 * rng.normal(size=60)
    cols["acc_d"] = cols["d"] + 0.1 * rng.normal(size=60)
    path = tmp_path / "table.csv"
    with open(path, "w") as f:
        f.write("arch_str," + ",".join(cols) + "\n")
        for i, arch in enumerate(archs):
            f.write(arch + "," + ",".join(f"{v[i]:.6f}" for v in cols.values()) + "\n")
    config = configs.default_config()
    config.proxies = ()
    config.population.source = "benchmark"
    config.population.size = 60
    config.benchmark.path = str(path)
    config.benchmark.targets = ("acc_a", "acc_d")
    config.combine.method = "libra"
    config.combine.columns = ("a", "b", "c", "d")
    config.combine.calibration_size = 30
    config.report.num_bootstrap = 10
    report = experiment.run(config, str(tmp_path / "run"))
    saved = json.load(open(tmp_path / "run" / "combine.json"))
    assert list(saved["selection"]) == ["acc_a", "acc_d"]
    assert saved["selection"]["acc_a"]["names"][0] == "table:a"
    assert saved["selection"]["acc_d"]["names"][0] == "table:d"
    evaluation = saved["split"]["evaluation"]
    for target in ("acc_a", "acc_d"):
        r = report["combine"]["correlations"][f"combined libra vs {target}"]
        combined = [saved["scores"][target][a] for a in evaluation]
        assert r["n"] == 30
        assert r["spearman"] == pytest.approx(
            stats.spearmanr(combined, [cols[target][archs.index(a)] for a in evaluation])[0]
        )


def test_rows_of_one_dataset_are_selected_with_where(tmp_path, shared_data):
    config = _config("bench=nb201_c100,method=log_rank")
    config.report.num_bootstrap = 20
    report = experiment.run(config, str(tmp_path))
    r = report["combine"]["correlations"]["combined log_rank vs val_acc"]
    assert r["n"] == 725 and r["spearman"] > 0.5


def test_live_proxies_are_combined(tmp_path):
    config = configs.default_config()
    config.space.kwargs = {"channels": 4, "cells_per_stage": 1}
    config.data.image_size = 8
    config.data.batch_size = 8
    config.population.size = 6
    config.proxies = ("params", "l2_norm")
    config.combine.method = "rank_sum"
    report = experiment.run(config, str(tmp_path))
    saved = json.load(open(tmp_path / "combine.json"))
    rows = [json.loads(line) for line in open(tmp_path / "scores.jsonl")]
    matrix = np.asarray([[r["params"]["score"], r["l2_norm"]["score"]] for r in rows])
    expected = np.asarray(combine.rank_sum(matrix))
    np.testing.assert_allclose([saved["scores"][r["arch"]] for r in rows], expected)
    assert report["combine"]["proxies"] == ["params", "l2_norm"]


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("method", "mean", "unknown combine.method"),
        ("calibration_size", 0, "calibration_size >= 3"),
        ("fusion", "max", "unknown combine.fusion"),
    ],
)
def test_bad_combine_settings_fail_before_scoring(tmp_path, field, value, match):
    config = configs.default_config()
    config.benchmark.path = "unused.csv"
    config.combine.method = "libra"
    config.combine.calibration_size = 10
    config.combine[field] = value
    with pytest.raises(errors.ConfigError, match=match):
        experiment.run(config, str(tmp_path))


def test_unknown_bench_is_a_config_error():
    with pytest.raises(errors.ConfigError, match="unknown bench"):
        _config("bench=nb999")


def test_where_keeps_one_dataset_and_names_bad_filters(shared_data):
    path = os.path.join(shared_data, "nasbench201", "nb201_zc_suitezero_subset725_3datasets.csv.gz")
    table = benchmarks.Benchmark.from_csv(path, where={"dataset": "imagenet16_120"})
    assert len(table) == 724 and set(table.column("dataset")) == {"imagenet16_120"}
    with pytest.raises(errors.BenchmarkError, match="no column 'split'"):
        benchmarks.Benchmark.from_csv(path, where={"split": "x"})
    with pytest.raises(errors.BenchmarkError, match="no row"):
        benchmarks.Benchmark.from_csv(path, where={"dataset": "mnist"})
