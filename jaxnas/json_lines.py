"""JSON-lines files that runs append to and resumed runs read back."""

import json
import os


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
