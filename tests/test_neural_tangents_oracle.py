"""The NTK proxy against neural-tangents' empirical NTK (written by others).

The fixture is written by `scripts/neural_tangents_oracle.py` (neural-tangents 0.6.5 on
jax 0.4.23, not needed here: it does not import with this project's jax; provenance
inside the file): a BatchNorm-free CNN built with `neural_tangents.stax`, its weights,
the float64 empirical NTK of the per-sample logit sum with respect to the weights (not
the biases) for 8 images, and its -log condition number. Here the same weights go into
a Linen CNN wrapped with `network.from_linen` (the bring-your-own-model path). Our
float32 logits equal the oracle's to atol 1e-5; our NTK (both `NtkImpl`s, batched and
per-example, which coincide without BatchNorm) equals it to rtol 1e-5 of its largest
entry; the registered `ntk_cond` proxy equals its -log condition number to rtol 1e-4
(float32 `eigvalsh` against float64).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import oracle_checks
import pytest
from flax import traverse_util

from jaxnas import network, proxies
from jaxnas.proxies import gradients, ntk

FIXTURE = "neural_tangents_golden.npz"


class SmallCNN(nn.Module):
    """The oracle's stax network: conv (no bias), ReLU, stride-2 conv, ReLU, mean, dense."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(8, (3, 3), padding="SAME", use_bias=False, name="conv0")(x))
        x = nn.relu(nn.Conv(8, (3, 3), strides=2, padding="SAME", name="conv1")(x))
        return nn.Dense(10, name="classifier")(jnp.mean(x, axis=(1, 2)))


def _case():
    fixture = oracle_checks.load(FIXTURE)
    flat = {
        k[len("params/") :]: jnp.asarray(v) for k, v in fixture.items() if k.startswith("params/")
    }
    x = jnp.asarray(fixture["x_nhwc"])
    shapes = jax.eval_shape(SmallCNN().init, jax.random.key(0), x)["params"]
    expected = traverse_util.flatten_dict(shapes, sep="/")
    assert {k: v.shape for k, v in flat.items()} == {k: v.shape for k, v in expected.items()}
    return (
        network.from_linen(SmallCNN()),
        {"params": traverse_util.unflatten_dict(flat, sep="/")},
        x,
    )


def test_provenance_names_the_package_and_the_current_script():
    oracle_checks.assert_provenance(
        oracle_checks.load(FIXTURE),
        "scripts/neural_tangents_oracle.py",
        **{"neural-tangents": "0.6.5"},
    )


def test_logits_equal_the_stax_network():
    net, variables, x = _case()
    np.testing.assert_allclose(
        net.apply(variables, x), oracle_checks.load(FIXTURE)["logits"], atol=1e-5
    )


@pytest.mark.parametrize("impl", list(ntk.NtkImpl))
@pytest.mark.parametrize("per_example", [False, True])
def test_ntk_equals_neural_tangents_empirical_ntk(impl, per_example):
    net, variables, x = _case()
    sel = gradients.Selection(net, variables, gradients.is_weight)
    assert sorted(sel.names) == [
        ("params", "classifier", "kernel"),
        ("params", "conv0", "kernel"),
        ("params", "conv1", "kernel"),
    ]

    def logit_sum(leaves, inputs):
        return ntk.logit_sum(net)(sel.merge(leaves), inputs)

    kernel = jax.jit(ntk.ntk_fn(logit_sum, impl=impl, per_example=per_example))(sel.leaves, x)
    expected = oracle_checks.load(FIXTURE)["ntk"]
    np.testing.assert_allclose(kernel, expected, atol=1e-5 * np.abs(expected).max())


def test_ntk_cond_proxy_equals_the_condition_number_of_neural_tangents_ntk():
    net, variables, x = _case()
    score = jax.jit(lambda v: proxies.get_proxy("ntk_cond")(net, v, {"x": x}, None))(variables)
    np.testing.assert_allclose(score, oracle_checks.load(FIXTURE)["neg_log_condition"], rtol=1e-4)
