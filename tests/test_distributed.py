"""Several processes on one run (`jaxnas.distributed`): two CLI processes on localhost."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxnas import distributed, errors, experiment

from conftest import ROOT, load_config

CONFIG = "tests/fixtures/tiny_nb201.py"


def _load_config(arg):
    """The fixture config, as the CLI builds it."""
    return load_config(CONFIG, arg)


def _start(workdir, arg, *flags):
    """One CLI process with a single CPU device; its output goes to a log beside it."""
    env = {**os.environ, "PYTHONPATH": ROOT, "XLA_FLAGS": ""}
    log = open(f"{workdir}.{'_'.join(f.lstrip('-') for f in flags) or 'one'}.log", "w")
    cmd = [sys.executable, "-m", "jaxnas.main", f"--config={CONFIG}:{arg}", f"--workdir={workdir}"]
    return subprocess.Popen(
        [*cmd, *flags], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
    ), log.name


def _wait(process, log, timeout=240):
    assert process.wait(timeout=timeout) == 0, open(log).read()[-3000:]
    return open(log).read()


def _scores(workdir):
    return [json.loads(line) for line in open(os.path.join(workdir, "scores.jsonl"))]


def _naswot(rows):
    """f32[P, K] NASWOT scores of scores.jsonl rows (a singular kernel's "-inf" included)."""
    return np.asarray([r["naswot"]["scores"] for r in rows], np.float32)


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("num, count", [(9, 2), (4, 3), (2, 4), (423_624, 7)])
def test_host_ranges_cover_the_population_in_order(num, count):
    ranges = [distributed.host_range(num, i, count) for i in range(count)]
    assert ranges[0][0] == 0 and ranges[-1][1] == num
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    sizes = [stop - start for start, stop in ranges]
    assert max(sizes) - min(sizes) <= 1


def test_setup_refuses_inconsistent_flags():
    with pytest.raises(errors.ConfigError, match="process_id=2 is not in 0..1"):
        distributed.setup(num_processes=2, process_id=2)
    with pytest.raises(errors.ConfigError, match="needs --process_id"):
        distributed.setup(num_processes=2)
    with pytest.raises(errors.ConfigError, match="needs --num_processes and --process_id"):
        distributed.setup(coordinator_address="localhost:1")
    with pytest.raises(errors.ConfigError, match="could not join JAX's multi-process runtime"):
        distributed.setup(coordinator_address="auto")  # no cluster here to detect
    assert distributed.hosts() == distributed.Hosts()


def test_a_search_without_the_runtime_is_refused_on_other_hosts(tmp_path):
    shards_only = distributed.Hosts(index=1, count=2)
    with pytest.raises(errors.ConfigError, match="--coordinator_address"):
        distributed.host_files(str(tmp_path), "search", shards_only)
    assert distributed.host_files(str(tmp_path), "score", shards_only) == (
        str(tmp_path),
        "config.host1of2.json",
    )


def test_a_host_resumes_its_checkpoint_and_process_0_merges_the_shards(tmp_path):
    calls = []

    def score(start, stop, checkpoint, previous):
        calls.append((start, stop, None if previous is None else previous.tolist()))
        done = 0 if previous is None else len(previous)
        fresh = np.arange(start + done, stop, dtype=np.float32)[:, None]
        return fresh if previous is None else np.concatenate([previous, fresh])

    host = [distributed.Hosts(i, 2) for i in range(2)]
    checkpoint = distributed.shard_path(str(tmp_path), "naswot", 1, 2, partial=True)
    distributed.save_whole(checkpoint, np.asarray([[-5.0]], np.float32))  # host 1 died
    with pytest.raises(errors.JaxnasError, match=r"no shard from host\(s\) \[0, 1\]"):
        distributed.merge_shards(str(tmp_path), "naswot", 2, poll_seconds=0.01, timeout=0.05)
    distributed.score_shard(score, 5, str(tmp_path), "naswot", True, host[1])
    assert calls == [(3, 5, [[-5.0]])] and not os.path.exists(checkpoint)
    # A restarted host whose shard is complete scores nothing again.
    distributed.score_shard(score, 5, str(tmp_path), "naswot", True, host[1])
    distributed.score_shard(score, 5, str(tmp_path), "naswot", False, host[0])
    assert calls[1:] == [(0, 3, None)]
    merged = distributed.merge_shards(str(tmp_path), "naswot", 2, poll_seconds=0.01, timeout=1)
    np.testing.assert_array_equal(merged[:, 0], [0, 1, 2, -5, 4])


@pytest.mark.slow  # four compiles in five processes: about a minute on two cores
def test_two_processes_over_the_runtime_score_and_search_as_one(tmp_path):
    one = tmp_path / "one"
    experiment.run(_load_config("mode=score,size=9,per_call=2"), str(one))
    experiment.run(_load_config("mode=search,runs=2"), str(tmp_path / "one_search"))
    for mode, arg in [("score", "mode=score,size=9,per_call=2"), ("search", "mode=search,runs=2")]:
        workdir = tmp_path / f"two_{mode}"
        address = f"--coordinator_address=localhost:{_free_port()}"
        started = [
            _start(workdir, arg, address, "--num_processes=2", f"--process_id={i}")
            for i in range(2)
        ]
        logs = [_wait(*p) for p in started]
        assert "process 1 of 2 (in JAX's runtime): 1 of 2 devices" in logs[1]
        if mode == "score":
            ours, theirs = _scores(workdir), _scores(one)
            assert [r["arch"] for r in ours] == [r["arch"] for r in theirs]
            np.testing.assert_allclose(_naswot(ours), _naswot(theirs), rtol=1e-5)
            assert "host 1 of 2" in logs[1]
            assert not list(workdir.glob("shard.*")) and not list(workdir.glob("partial.*"))
        else:
            runs = {
                name: [json.loads(line) for line in open(path / "runs.jsonl")]
                for name, path in [
                    ("one", tmp_path / "one_search"),
                    ("host 0", workdir),
                    ("host 1", workdir / "host1"),
                ]
            }
            chosen = {name: [r["arch"] for r in records] for name, records in runs.items()}
            assert chosen["host 0"] == chosen["host 1"] == chosen["one"], chosen
            np.testing.assert_allclose(
                [r["score"] for r in runs["host 0"]], [r["score"] for r in runs["one"]], rtol=1e-5
            )


@pytest.mark.slow  # three compiles in four processes: about a minute on two cores
def test_a_killed_host_resumes_its_shard_and_nothing_is_lost(tmp_path):
    # One cell per call: host 1's 200 calls leave time to kill it between two of them.
    arg = "mode=score,size=400,per_call=1"
    one = tmp_path / "one"
    experiment.run(_load_config(arg), str(one))
    workdir = tmp_path / "two"
    hosts = ["--num_processes=2", "--process_id=0"], ["--num_processes=2", "--process_id=1"]
    first, first_log = _start(workdir, arg, *hosts[0])
    second, _ = _start(workdir, arg, *hosts[1])
    deadline = time.monotonic() + 240
    while not list(workdir.glob("partial.naswot.*.host1of2.npy")):
        assert second.poll() is None and time.monotonic() < deadline, "host 1 saved nothing"
        time.sleep(0.01)
    second.send_signal(signal.SIGKILL)
    second.wait()
    assert not list(workdir.glob("shard.naswot.*.host1of2.npy"))
    (checkpoint,) = workdir.glob("partial.naswot.*.host1of2.npy")
    saved = np.load(checkpoint).shape[0]
    assert first.poll() is None  # host 0 waits for host 1's shard

    restarted, restarted_log = _start(workdir, arg, *hosts[1])
    log = _wait(restarted, restarted_log)
    assert 0 < saved < 200
    assert f"resuming naswot: {saved} of 200 already scored" in log
    _wait(first, first_log)
    ours, theirs = _scores(workdir), _scores(one)
    np.testing.assert_allclose(_naswot(ours), _naswot(theirs), rtol=1e-5)
