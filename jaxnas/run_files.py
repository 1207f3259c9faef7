"""The files a run writes (its config, strict JSON, JSON lines) and reads back to resume."""

import json
import os

import ml_collections
import numpy as np


def write_config(config: ml_collections.ConfigDict, path: str) -> bool:
    """Saves the resolved config at `path` (`config.json`); returns whether the one saved
    there before equals it, except perhaps `search.num_runs` (the run may resume)."""
    previous = json.load(open(path)) if os.path.exists(path) else None
    text = config.to_json_best_effort(indent=2, sort_keys=True)
    with open(path, "w") as f:
        f.write(text)
    return previous is not None and _without_num_runs(previous) == _without_num_runs(
        json.loads(text)
    )


def _without_num_runs(config: dict) -> dict:
    return {**config, "search": {**config.get("search", {}), "num_runs": None}}


def read_json_lines(path: str) -> list:
    """The records at the head of a JSON-lines file, up to the first line that does not
    parse (one cut by an interrupted write); none when the file does not exist."""
    records = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break
    return records


def completed_runs(path: str, num_runs: int) -> list[dict]:
    """The records 0, 1, ..., k-1 at the head of an earlier `runs.jsonl` (a partial last
    line from an interrupted write is dropped)."""
    runs = []
    for record in read_json_lines(path):
        if record.get("run") != len(runs) or len(runs) == num_runs:
            break
        runs.append(record)
    return runs


def jsonable(value):
    """Strict JSON: non-finite floats become null / "inf" / "-inf", tuples lists, NumPy
    scalars Python numbers, dict keys strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return json_float(value)
    return value


def json_float(value):
    """A float for strict JSON: NaN -> None, ±inf -> "inf" / "-inf"."""
    value = float(value)
    if np.isnan(value):
        return None
    if np.isinf(value):
        return "-inf" if value < 0 else "inf"
    return value
