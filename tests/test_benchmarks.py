"""Benchmark tables: lookups on the real NB201 table, clear errors."""

import os

import numpy as np
import pytest

from jaxnas import benchmarks, errors
from jaxnas.spaces import nb201

BEST = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)


@pytest.fixture(scope="module")
def nb201_table(shared_data):
    return benchmarks.Benchmark.from_csv(
        os.path.join(shared_data, "nasbench201", "nb201_test_acc_200ep.csv.gz")
    )


def test_nb201_table_covers_the_whole_space_and_has_the_published_optimum(nb201_table):
    assert len(nb201_table) == 15625
    space = nb201.space()
    archs = [space.to_string(g) for g in space.enumerate()]
    accs = nb201_table.lookup("cifar10_test", archs)
    assert not np.isnan(accs).any()
    np.testing.assert_allclose(accs.max(), 94.37, atol=0.005)
    np.testing.assert_allclose(nb201_table.lookup("cifar10_test", [BEST]), [94.363], atol=1e-3)
    np.testing.assert_allclose(nb201_table.by_index("cifar10_test", [6111]), [94.3733], atol=1e-3)


def test_unknown_column_and_architecture_are_named(nb201_table):
    with pytest.raises(errors.BenchmarkError, match="no column 'val_acc'"):
        nb201_table.column("val_acc")
    with pytest.raises(errors.BenchmarkError, match="'bogus' is not in benchmark"):
        nb201_table.lookup("cifar10_test", ["bogus"])


def test_missing_file_is_named(tmp_path):
    path = str(tmp_path / "nope.csv.gz")
    with pytest.raises(errors.BenchmarkError, match="benchmark file not found: .*nope.csv.gz"):
        benchmarks.Benchmark.from_csv(path)


def test_plain_csv_tables_work(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arch_str,acc\na,1.5\nb,\n")
    table = benchmarks.Benchmark.from_csv(str(path))
    np.testing.assert_array_equal(table.lookup("acc", ["a"]), [1.5])
    assert np.isnan(table.lookup("acc", ["b"])[0])
    with pytest.raises(errors.BenchmarkError, match="no 'index' column"):
        table.by_index("acc", [0])
