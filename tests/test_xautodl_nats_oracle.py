"""NATS-Bench size space against the benchmark authors' own network code (xautodl
`DynamicShapeTinyNet`, built as the benchmark's API builds it).

The fixture is written by `scripts/xautodl_nats_oracle.py` (torch and xautodl, not needed
here; provenance inside the file): three width settings whose cells keep their width
(identity skip edge), narrow it and widen it (the skip edge becomes a 1x1 conv + BN).
The weights are transplanted into `nats_sss.space().materialize(genotype)`, which must
then give the same logits (atol 1e-5), NASWOT and log synflow (rtol 1e-5) and snip
(rtol 1e-4, a float32 sum of |w * g| against float64 torch sums). The data-driven
(channel-masked) network is held equal to the materialised one by `test_nats_sss.py`.
"""

import oracle_checks
import pytest

from jaxnas.spaces import nats_sss

FIXTURE = "xautodl_nats_golden.npz"


def _model(i, batch_norm=True):
    space = nats_sss.space()
    arch = str(oracle_checks.load(FIXTURE)["archs"][i])
    return space.materialize(space.from_string(arch), batch_norm=batch_norm)


def test_provenance_names_the_package_and_the_current_scripts():
    fixture = oracle_checks.load(FIXTURE)
    oracle_checks.assert_provenance(fixture, "scripts/xautodl_nats_oracle.py", xautodl="1.0.0")
    assert oracle_checks.provenance(fixture)["oracle"] == (
        "xautodl.models.shape_infers.DynamicShapeTinyNet"
    )


@pytest.mark.parametrize("i", range(3))
def test_logits_and_naswot_equal_the_authors_network(i):
    oracle_checks.assert_logits_and_naswot(_model(i), oracle_checks.load(FIXTURE), i)


@pytest.mark.parametrize("i", range(3))
def test_snip_and_synflow_equal_the_authors_network(i):
    fixture = oracle_checks.load(FIXTURE)
    oracle_checks.assert_snip(_model(i), fixture, i)
    oracle_checks.assert_synflow(_model(i, batch_norm=False), fixture, i)
