"""The Suite-Zero config end to end on a tiny network: paired references and augmentation."""

import importlib.util
import json
import os

from jaxnas import experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(arg):
    path = os.path.join(ROOT, "configs", "nb201_suitezero_proxies.py")
    spec = importlib.util.spec_from_file_location("suitezero_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


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
