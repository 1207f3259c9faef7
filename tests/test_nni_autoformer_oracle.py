"""AutoFormer against an implementation by others (Microsoft NNI's `AutoFormer` space).

The fixture is written by `scripts/nni_autoformer_oracle.py` (torch and nni 3.0, not
needed here; provenance inside the file): two subnets of a tiny AutoFormer space
(embed dims 16 / 24, depths 2 / 3, 1 or 2 heads of width 64, MLP ratios 2 / 3.5, 16x16
images in 4x4 patches, relative positions clipped at 4, LayerNorm parameters redrawn).
The weights are transplanted into our materialised subnet, which must then give the
same logits (atol 1e-5), NASWOT over the GELU inputs (rtol 1e-5) and snip (rtol 1e-4,
a float32 sum of |w * g| against float64 torch sums).

log synflow by its definition (|theta|, one all-ones image, S = sum theta * dR/dtheta
over the conv / linear kernels) on our network equals NNI's (rtol 1e-5), and so does
the registered `synflow` proxy. Its overflow-safe input-and-bias rescaling assumes a
positively homogeneous network, which LayerNorm, GELU and the unscaled class token and
position embedding are not (it returned 37.45 and 36.50 where the definition gives 2.00
and 1.11); the proxy now detects that from its outputs and scores such networks by the
definition.
"""

import jax
import jax.numpy as jnp
import numpy as np
import oracle_checks
import pytest
from flax import traverse_util

from jaxnas.spaces import autoformer

FIXTURE = "nni_autoformer_golden.npz"
VIT = autoformer.ViTSpace("autoformer-nni-oracle", (16, 24), (2, 3), (1, 2), (2.0, 3.5))


def _model(i):
    space = autoformer.space(vit=VIT, patch_size=4, num_classes=10, max_relative_position=4)
    genotype = space.from_string(str(oracle_checks.load(FIXTURE)["archs"][i]))
    return space.materialize(genotype)


def test_provenance_names_the_package_and_the_current_scripts():
    fixture = oracle_checks.load(FIXTURE)
    oracle_checks.assert_provenance(fixture, "scripts/nni_autoformer_oracle.py", nni="3.0")
    assert oracle_checks.provenance(fixture)["oracle"] == "nni.nas.hub.pytorch.AutoFormer"


@pytest.mark.parametrize("i", range(2))
def test_logits_and_naswot_equal_nni(i):
    oracle_checks.assert_logits_and_naswot(_model(i), oracle_checks.load(FIXTURE), i)


@pytest.mark.parametrize("i", range(2))
def test_snip_equals_nni(i):
    oracle_checks.assert_snip(_model(i), oracle_checks.load(FIXTURE), i)


@pytest.mark.parametrize("i", range(2))
def test_synflow_by_definition_equals_nni(i):
    fixture = oracle_checks.load(FIXTURE)
    model = _model(i)
    positive = jax.tree.map(jnp.abs, oracle_checks.transplant(model, fixture, i))
    ones = jnp.ones((1, *fixture["x_nhwc"].shape[1:]), jnp.float32)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, ones))))(positive)
    w, g = (traverse_util.flatten_dict(t["params"], sep="/") for t in (positive, grads))
    total = sum(float(jnp.sum(w[k] * g[k])) for k in w if k.endswith("kernel"))
    np.testing.assert_allclose(np.log(total), fixture[f"synflow_{i}"], rtol=1e-5)


@pytest.mark.parametrize("i", range(2))
def test_registered_synflow_equals_nni(i):
    oracle_checks.assert_synflow(_model(i), oracle_checks.load(FIXTURE), i)
