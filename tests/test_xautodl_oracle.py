"""NB201 against the benchmark authors' own network code (xautodl `TinyNetwork`).

The fixture is written by `scripts/xautodl_nb201_oracle.py` (torch and xautodl, not
needed here; provenance inside the file). Its weights are transplanted into our
materialised networks (`space.materialize`), which must then give the same logits
(atol 1e-5), NASWOT and log synflow (rtol 1e-5) and snip (rtol 1e-4, a float32 sum of
|w * g| against float64 torch sums).
"""

import oracle_checks
import pytest

from jaxnas.spaces import nb201

FIXTURE = "xautodl_nb201_golden.npz"


def _model(i, batch_norm=True):
    space = nb201.space(channels=4, cells_per_stage=1)
    arch = str(oracle_checks.load(FIXTURE)["archs"][i])
    return space.materialize(space.from_string(arch), batch_norm=batch_norm)


def test_provenance_names_the_package_and_the_current_script():
    oracle_checks.assert_provenance(
        oracle_checks.load(FIXTURE), "scripts/xautodl_nb201_oracle.py", xautodl="1.0.0"
    )


@pytest.mark.parametrize("i", range(3))
def test_logits_and_naswot_equal_the_authors_network(i):
    oracle_checks.assert_logits_and_naswot(_model(i), oracle_checks.load(FIXTURE), i)


@pytest.mark.parametrize("i", range(3))
def test_snip_and_synflow_equal_the_authors_network(i):
    fixture = oracle_checks.load(FIXTURE)
    oracle_checks.assert_snip(_model(i), fixture, i)
    oracle_checks.assert_synflow(_model(i, batch_norm=False), fixture, i)
