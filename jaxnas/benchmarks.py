"""Ground-truth lookup over benchmark tables.

A `Benchmark` is a table of architectures (rows keyed by the benchmark's architecture
string and, where present, its integer index) with numeric target columns such as
`cifar10_test` or `val_acc`. It reads plain CSV tables (optionally gzip-compressed) with
an `arch_str` column, e.g. the NAS-Bench-201 tables in `../shared/data/nasbench201/`.
It is used at the edge (reports, search evaluation), never inside jitted code.
"""

import csv
import gzip
import os
from collections.abc import Sequence

import numpy as np

from jaxnas import errors

SHARED_DATA_ENV = "JAXNAS_SHARED_DATA"


def shared_data_dir() -> str:
    """`$JAXNAS_SHARED_DATA`, else `../shared/data` beside the repository."""
    default = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "shared", "data")
    return os.path.normpath(os.environ.get(SHARED_DATA_ENV, default))


class Benchmark:
    """A ground-truth table with lookups by architecture string or benchmark index."""

    def __init__(self, columns: dict[str, np.ndarray], name: str, key: str = "arch_str"):
        if key not in columns:
            raise errors.BenchmarkError(
                f"benchmark {name!r} has no {key!r} column; it has {sorted(columns)}"
            )
        self.name = name
        self.key = key
        self.columns = columns
        self._row_of = {k: i for i, k in enumerate(columns[key])}
        self._row_of_index = (
            {int(v): i for i, v in enumerate(columns["index"])} if "index" in columns else None
        )

    @classmethod
    def from_csv(
        cls,
        path: str,
        key: str = "arch_str",
        key_columns: Sequence[str] = (),
        separator: str = ";",
        where: dict[str, str] | None = None,
    ) -> "Benchmark":
        """Reads a CSV table (`.csv` or `.csv.gz`); numeric columns become float64.

        Args:
          path: the table.
          key: the column holding each row's architecture in the space's notation.
          key_columns: when given, the `key` column is built by joining these columns
            with `separator`, e.g. NB101's `adjacency_rows` and `ops` into the NB101
            notation `ROWS;OPS` (`jaxnas.spaces.nb101.to_string`).
          separator: see `key_columns`.
          where: keep only the rows whose column (the key) holds the value, e.g.
            `{"dataset": "cifar100"}` for a table of several datasets.
        """
        if not os.path.exists(path):
            raise errors.BenchmarkError(
                f"benchmark file not found: {path} (a CSV table with an {key!r} column; "
                f"the NB201 tables live in ../shared/data/nasbench201/)"
            )
        opener = gzip.open if path.endswith(".gz") else open
        try:
            with opener(path, "rt", newline="") as f:
                rows = list(csv.reader(f))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise errors.BenchmarkError(f"cannot read benchmark table {path}: {exc}") from exc
        if len(rows) < 2:
            raise errors.BenchmarkError(f"benchmark table {path} has no data rows")
        header, body = rows[0], rows[1:]
        for name, value in (where or {}).items():
            if name not in header:
                raise errors.BenchmarkError(
                    f"benchmark table {path} has no column {name!r} to select rows by"
                )
            body = [r for r in body if r[header.index(name)] == str(value)]
            if not body:
                raise errors.BenchmarkError(f"no row of {path} has {name} == {value!r}")
        columns = {}
        for j, name in enumerate(header):
            values = [r[j] if j < len(r) else "" for r in body]
            columns[name] = _as_column(values)
        if key_columns:
            missing = [name for name in key_columns if name not in columns]
            if missing:
                raise errors.BenchmarkError(
                    f"benchmark table {path} has no key column(s) {missing}; it has "
                    f"{sorted(columns)}"
                )
            parts = zip(*(columns[name].astype(str) for name in key_columns))
            columns[key] = np.asarray([separator.join(p) for p in parts], dtype=object)
        return cls(columns, name=os.path.basename(path), key=key)

    def __len__(self) -> int:
        return len(self.columns[self.key])

    def __contains__(self, arch: str) -> bool:
        return arch in self._row_of

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise errors.BenchmarkError(
                f"benchmark {self.name!r} has no column {name!r}; it has {sorted(self.columns)}"
            )
        return self.columns[name]

    def rows(self, archs: Sequence[str]) -> np.ndarray:
        """Row numbers of architecture strings; raises naming the first unknown one."""
        try:
            return np.asarray([self._row_of[a] for a in archs], np.int64)
        except KeyError as exc:
            raise errors.BenchmarkError(
                f"architecture {exc.args[0]!r} is not in benchmark {self.name!r}"
            ) from None

    def lookup(self, column: str, archs: Sequence[str]) -> np.ndarray:
        """Values of `column` for the given architecture strings."""
        return self.column(column)[self.rows(archs)]

    def by_index(self, column: str, indices: Sequence[int]) -> np.ndarray:
        """Values of `column` for benchmark indices (needs an `index` column)."""
        if self._row_of_index is None:
            raise errors.BenchmarkError(f"benchmark {self.name!r} has no 'index' column")
        try:
            rows = [self._row_of_index[int(i)] for i in indices]
        except KeyError as exc:
            raise errors.BenchmarkError(
                f"index {exc.args[0]} is not in benchmark {self.name!r}"
            ) from None
        return self.column(column)[rows]


def _as_column(values: list[str]) -> np.ndarray:
    try:
        return np.asarray([float(v) if v != "" else np.nan for v in values], np.float64)
    except ValueError:
        return np.asarray(values, dtype=object)
