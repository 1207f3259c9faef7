"""NDS ResNet / ResNeXt against the NDS authors' own network code (pycls `AnyNet`).

The fixture is written by `scripts/pycls_nds_oracle.py` (torch and pycls 0.1.1, not
needed here; provenance inside the file): one ResNet (identity and projection shortcuts,
a two-block stage) and one ResNeXt-A network (groups 1, 2, 4; pycls' group width is
w_b // g). The weights are transplanted into `nds.space(name).materialize(genotype)`,
which must then give the same logits (atol 1e-5), NASWOT and log synflow (rtol 1e-5)
and snip (rtol 1e-4, a float32 sum of |w * g| against float64 torch sums).
"""

import oracle_checks
import pytest

from jaxnas.spaces import nds

FIXTURE = "pycls_nds_golden.npz"


def _model(i, batch_norm=True):
    fixture = oracle_checks.load(FIXTURE)
    space = nds.space(str(fixture["spaces"][i]))
    genotype = space.from_string(str(fixture["archs"][i]))
    return space.materialize(genotype, batch_norm=batch_norm)


def test_provenance_names_the_package_and_the_current_scripts():
    fixture = oracle_checks.load(FIXTURE)
    oracle_checks.assert_provenance(fixture, "scripts/pycls_nds_oracle.py", pycls="0.1.1")
    assert oracle_checks.provenance(fixture)["oracle"] == "pycls.models.anynet.AnyNet"


@pytest.mark.parametrize("i", range(2))
def test_logits_and_naswot_equal_pycls(i):
    oracle_checks.assert_logits_and_naswot(_model(i), oracle_checks.load(FIXTURE), i)


@pytest.mark.parametrize("i", range(2))
def test_snip_and_synflow_equal_pycls(i):
    fixture = oracle_checks.load(FIXTURE)
    oracle_checks.assert_snip(_model(i), fixture, i)
    oracle_checks.assert_synflow(_model(i, batch_norm=False), fixture, i)
