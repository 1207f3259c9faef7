"""DARTS cells against an implementation by others (xautodl's `NASNetonCIFAR`).

The fixture is written by `scripts/xautodl_darts_oracle.py` (torch and xautodl, not
needed here; provenance inside the file): the DARTS paper's genotype and one using
every DARTS op, in a C=4 network of three cells (normal, reduction, reduction), with
xautodl's extra BN + ReLU before pooling removed (DARTS' own network has none; see the
script). The weights are transplanted into the DARTS evaluation network
(`affine_ops=True, pool_bn=False`), which must then give the same logits (atol 1e-5),
NASWOT and log synflow (rtol 1e-5) and snip (rtol 1e-4, a float32 sum of |w * g|
against float64 torch sums).
"""

import oracle_checks
import pytest

from jaxnas.spaces import darts

FIXTURE = "xautodl_darts_golden.npz"


def _model(i, batch_norm=True):
    space = darts.space(
        channels=4, num_cells=3, cell_ops=darts.DARTS_OPS, affine_ops=True, pool_bn=False
    )
    genotype = space.from_string(str(oracle_checks.load(FIXTURE)["genotypes"][i]))
    return space.materialize(genotype, batch_norm=batch_norm)


def test_provenance_names_the_package_and_the_current_scripts():
    fixture = oracle_checks.load(FIXTURE)
    oracle_checks.assert_provenance(fixture, "scripts/xautodl_darts_oracle.py", xautodl="1.0.0")
    assert oracle_checks.provenance(fixture)["oracle"] == (
        "xautodl.models.cell_infers.nasnet_cifar.NASNetonCIFAR"
    )


@pytest.mark.parametrize("i", range(2))
def test_logits_and_naswot_equal_xautodl(i):
    oracle_checks.assert_logits_and_naswot(_model(i), oracle_checks.load(FIXTURE), i)


@pytest.mark.parametrize("i", range(2))
def test_snip_and_synflow_equal_xautodl(i):
    fixture = oracle_checks.load(FIXTURE)
    oracle_checks.assert_snip(_model(i), fixture, i)
    oracle_checks.assert_synflow(_model(i, batch_norm=False), fixture, i)
