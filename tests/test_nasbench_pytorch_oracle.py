"""NB101 against an implementation by others (`nasbench-pytorch` 1.3.1 on PyPI, a PyTorch
port of google-research/nasbench's model builder).

The fixture is written by `scripts/nasbench_pytorch_oracle.py` (torch and the package,
not needed here; provenance inside the file): an 8-channel stem, 3 stacks of 1 cell, on
four cells: 7 vertices and 9 edges with a truncated vertex, a 7x7 matrix that pruning
reduces, and the pruned 3- and 2-vertex forms (projections only). The weights are
transplanted into `nb101.space(...).materialize(nb101.from_spec(matrix, ops))`, which
must then give the same logits (atol 1e-5), NASWOT and log synflow (rtol 1e-5) and snip
(rtol 1e-4, a float32 sum of |w * g| against float64 torch sums). The package's
BatchNorm momentum differs from the reference's (see the script); train mode, compared
here, does not read running statistics.
"""

import oracle_checks
import pytest

from jaxnas.spaces import nb101

FIXTURE = "nasbench_pytorch_golden.npz"


def _model(i, batch_norm=True):
    fixture = oracle_checks.load(FIXTURE)
    space = nb101.space(stem_channels=8, num_stacks=3, cells_per_stack=1)
    genotype = nb101.from_spec(fixture[f"matrix_{i}"], [str(o) for o in fixture[f"ops_{i}"]])
    return space.materialize(genotype, batch_norm=batch_norm)


def test_provenance_names_the_package_and_the_current_scripts():
    fixture = oracle_checks.load(FIXTURE)
    oracle_checks.assert_provenance(
        fixture, "scripts/nasbench_pytorch_oracle.py", **{"nasbench-pytorch": "1.3.1"}
    )
    assert oracle_checks.provenance(fixture)["oracle"] == "nasbench_pytorch.model.Network"


@pytest.mark.parametrize("i", range(4))
def test_logits_and_naswot_equal_nasbench_pytorch(i):
    oracle_checks.assert_logits_and_naswot(_model(i), oracle_checks.load(FIXTURE), i)


@pytest.mark.parametrize("i", range(4))
def test_snip_and_synflow_equal_nasbench_pytorch(i):
    fixture = oracle_checks.load(FIXTURE)
    oracle_checks.assert_snip(_model(i), fixture, i)
    oracle_checks.assert_synflow(_model(i, batch_norm=False), fixture, i)
