"""NDS cell spaces against an implementation by others (Microsoft NNI's NDS networks).

The fixture is written by `scripts/nni_nds_oracle.py` (torch and nni 3.0, not needed
here; provenance inside the file): one genotype per space (`nds_nasnet`, `nds_amoeba`,
`nds_pnas`, `nds_enas`, `nds_darts`) with random inputs and every candidate op of NNI's
space (`nds_darts` without `none`, which NNI's DARTS space lacks), in a C=4 network of
three cells (normal, reduction, reduction), BatchNorm parameters redrawn. The weights
are transplanted into `nds_cells.space(name, channels=4, num_cells=3).materialize(g)`,
which must then give the same logits (atol 1e-5), NASWOT and log synflow (rtol 1e-5)
and snip (rtol 1e-4, a float32 sum of |w * g| against float64 torch sums); snip and
synflow of all but `nds_nasnet` run with `-m slow`.
"""

import numpy as np
import oracle_checks
import pytest

from jaxnas.spaces import nds_cells

FIXTURE = "nni_nds_golden.npz"
SPACES = ("nds_nasnet", "nds_amoeba", "nds_pnas", "nds_enas", "nds_darts")


def _model(i, batch_norm=True):
    fixture = oracle_checks.load(FIXTURE)
    space = nds_cells.space(str(fixture["spaces"][i]), channels=4, num_cells=3)
    genotype = space.from_string(str(fixture["genotypes"][i]))
    return space.materialize(genotype, batch_norm=batch_norm)


def test_provenance_names_the_package_and_the_current_scripts():
    fixture = oracle_checks.load(FIXTURE)
    oracle_checks.assert_provenance(fixture, "scripts/nni_nds_oracle.py", nni="3.0")
    assert oracle_checks.provenance(fixture)["oracle"].startswith("nni.nas.hub.pytorch.nasnet")
    assert tuple(fixture["spaces"]) == SPACES


def test_every_candidate_op_of_each_space_occurs():
    fixture = oracle_checks.load(FIXTURE)
    for i, name in enumerate(SPACES):
        ops = nds_cells.CELLS[name][0]
        space = nds_cells.space(name, channels=4, num_cells=3)
        genotype = space.from_string(str(fixture["genotypes"][i]))
        used = {ops[o] for o in np.asarray(genotype).reshape(-1, 2)[:, 1]}
        assert used == set(ops) - {"none"}, name


@pytest.mark.parametrize("i", range(len(SPACES)), ids=SPACES)
def test_logits_and_naswot_equal_nni(i):
    oracle_checks.assert_logits_and_naswot(_model(i), oracle_checks.load(FIXTURE), i)


# snip's gradient compiles slowly on XLA:CPU (25-75 s a space on a loaded 2-core
# machine), so by default only nds_nasnet, the space with the most ops (13); the other
# four run with `-m slow`.
@pytest.mark.parametrize(
    "i",
    [0] + [pytest.param(i, marks=pytest.mark.slow) for i in range(1, len(SPACES))],
    ids=SPACES,
)
def test_snip_and_synflow_equal_nni(i):
    fixture = oracle_checks.load(FIXTURE)
    oracle_checks.assert_snip(_model(i), fixture, i)
    oracle_checks.assert_synflow(_model(i, batch_norm=False), fixture, i)
