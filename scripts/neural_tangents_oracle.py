"""Oracle by others for the NTK proxy: neural-tangents' empirical NTK of a small CNN.

Builds a BatchNorm-free CNN with `neural_tangents.stax` in the standard
parameterization (3x3 conv 3 -> 8 without bias, ReLU, 3x3 conv 8 -> 8 stride 2 with
bias, ReLU, global average pool, dense 8 -> 10 with bias), initialised by stax from a
fixed key, and computes with `neural_tangents.empirical_ntk_fn` (not our code) the
empirical NTK Theta = J J^T (f64[B, B]) of TE-NAS's per-sample output, the sum of each
sample's logits, with respect to the weights only (conv and dense kernels; the biases are
held fixed, as TE-NAS and our `ntk_cond` differentiate "weights"), for 8 random 8x8
images. Without BatchNorm the samples do not interact, so the batched and per-example
NTKs coincide. All three of neural-tangents' implementations (Jacobian contraction,
NTK-vector products, structured derivatives) are computed and must agree to 1e-10; the
fixture records the first, its -log condition number (float64 `eigvalsh`), the logits
and the weights under the names of `tests/test_neural_tangents_oracle.py`'s Linen model.
Computed in float64 from the float32 weights and images stored in the fixture.

neural-tangents 0.6.5 does not import with this project's jax (it imports names that
`jax.core` no longer has) and its structured-derivatives NTK needs a jax of its time (on
jax 0.4.30 it fails: `jax.interpreters.ad` has no `source_info_util`), so it runs in its
own environment and the test reads the fixture; it is never a dependency of jaxnas or of
its tests. The fixture was written with jax 0.4.23 (recorded in its provenance):
  python -m venv ../venv-nt
  ../venv-nt/bin/pip install "jax[cpu]==0.4.23" "numpy<2" neural-tangents==0.6.5

Usage:
  ../venv-nt/bin/python scripts/neural_tangents_oracle.py \
      --out tests/fixtures/neural_tangents_golden.npz
"""

import argparse
import hashlib
import json
import sys
from importlib import metadata

import jax
import jax.numpy as jnp
import neural_tangents as nt
import numpy as np
from neural_tangents import stax

BATCH, SIZE, CLASSES = 8, 8, 10


def network():
    """stax (init_fn, apply_fn) of the CNN; parameters in stax's (W, b) per layer."""
    return stax.serial(
        stax.Conv(8, (3, 3), padding="SAME", parameterization="standard", b_std=None),
        stax.Relu(),
        stax.Conv(8, (3, 3), (2, 2), padding="SAME", parameterization="standard", b_std=1.0),
        stax.Relu(),
        stax.GlobalAvgPool(),
        stax.Dense(CLASSES, parameterization="standard", b_std=1.0),
    )[:2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    init_fn, apply_fn = network()
    key_x, key_init = jax.random.split(jax.random.PRNGKey(0))
    x32 = np.asarray(jax.random.normal(key_x, (BATCH, SIZE, SIZE, 3), jnp.float32))
    _, params32 = init_fn(key_init, x32.shape)
    params32 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params32)

    jax.config.update("jax_enable_x64", True)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params32)
    x = jnp.asarray(x32, jnp.float64)
    layers = (0, 2, 5)  # indices of the conv, conv and dense layers in `params`

    def with_weights(weights):
        full = list(params)
        for layer, w in zip(layers, weights):
            full[layer] = (w, params[layer][1])
        return full

    def logit_sum(weights, inputs):
        return jnp.sum(apply_fn(with_weights(weights), inputs), axis=-1)

    weights = tuple(params[layer][0] for layer in layers)
    kernels = [
        np.asarray(
            nt.empirical_ntk_fn(logit_sum, trace_axes=(), vmap_axes=0, implementation=impl)(
                x, None, weights
            )
        )
        for impl in nt.NtkImplementation
        if impl != nt.NtkImplementation.AUTO
    ]
    for other in kernels[1:]:
        np.testing.assert_allclose(other, kernels[0], rtol=1e-10, atol=1e-10)
    kernel = kernels[0]
    eig = np.linalg.eigvalsh(kernel)
    out = {
        "x_nhwc": x32,
        "logits": np.asarray(apply_fn(params, x)),
        "ntk": kernel,
        "neg_log_condition": np.float64(-np.log(eig[-1] / eig[0])),
        "params/conv0/kernel": params32[0][0],
        "params/conv1/kernel": params32[2][0],
        "params/conv1/bias": params32[2][1].reshape(-1),
        "params/classifier/kernel": params32[5][0],
        "params/classifier/bias": params32[5][1].reshape(-1),
    }
    with open(__file__, "rb") as f:
        script_sha256 = hashlib.sha256(f.read()).hexdigest()
    out["provenance"] = np.asarray(
        json.dumps(
            {
                "oracle": "neural_tangents.empirical_ntk_fn",
                "neural-tangents": metadata.version("neural-tangents"),
                "jax": jax.__version__,
                "script": "scripts/neural_tangents_oracle.py",
                "script_sha256": script_sha256,
                "command": " ".join(["python", *sys.argv]),
            }
        )
    )
    np.savez_compressed(args.out, **out)


if __name__ == "__main__":
    main()
