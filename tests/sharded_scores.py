"""Run by test_sharding.py in a process with two virtual CPU devices (XLA_FLAGS).

Scores one tiny NB201 population over a two-device mesh and over one device, in each
of score_population's modes and with the CLI's scorer, and exits non-zero naming the
first mode that differs.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import proxies, scoring
from jaxnas.spaces import nb201

TINY = dict(channels=4, cells_per_stage=1)
P, K, B = 5, 2, 8  # P odd: the two-device run pads the population


def main():
    assert jax.local_device_count() == 2, jax.devices()
    space = nb201.space(**TINY)
    population = space.sample(jax.random.key(1), P)
    key_x, key_y = jax.random.split(jax.random.key(42))
    x = jax.random.normal(key_x, (P, B, 8, 8, 3), jnp.float32)
    y = jax.random.randint(key_y, (P, B), 0, 10, jnp.int32)
    keys = jax.random.split(jax.random.key(0), K)
    own_keys = jax.random.split(jax.random.key(5), (P, K))
    naswot = proxies.get_proxy("naswot")
    modes = {
        "shared keys, chunks of 2": (naswot, {"x": x[0]}, keys, {"chunk_size": 2}),
        "own keys and batches": (naswot, {"x": x}, own_keys, {"batch_per_arch": True}),
        "a gradient proxy": (proxies.get_proxy("snip"), {"x": x[0], "y": y[0]}, keys, {}),
    }
    one = proxies.population_mesh(jax.devices()[:1])
    for mode, (proxy, batch, mode_keys, kwargs) in modes.items():

        def score(population, mesh, proxy=proxy, batch=batch, mode_keys=mode_keys, kwargs=kwargs):
            return proxies.score_population(
                proxy, space, population, batch, mode_keys, mesh=mesh, **kwargs
            )

        jaxpr = str(jax.make_jaxpr(lambda p, score=score: score(p, None))(population))
        if "shard_map" not in jaxpr:
            sys.exit(f"{mode}: the default mesh did not shard over the two devices")
        sharded = np.asarray(jax.jit(lambda p, score=score: score(p, None))(population))
        single = np.asarray(jax.jit(lambda p, score=score: score(p, one))(population))
        if sharded.shape != single.shape or sharded.shape[:2] != (P, K):
            sys.exit(f"{mode}: shapes {sharded.shape} (two devices) vs {single.shape} (one)")
        if not np.allclose(sharded, single, rtol=1e-5, equal_nan=True):
            sys.exit(f"{mode}: two devices {sharded.tolist()} != one device {single.tolist()}")
    # The CLI's scorer: its initialisation program's draws are replicated over the mesh.
    snip, batch = proxies.get_proxy("snip"), {"x": x[0], "y": y[0]}
    sharded = np.asarray(scoring.make_scorer(snip, space)(population, batch, keys))
    single = np.asarray(scoring.make_scorer(snip, space, mesh=one)(population, batch, keys))
    if not np.allclose(sharded, single, rtol=1e-5):
        sys.exit(f"scorer: two devices {sharded.tolist()} != one device {single.tolist()}")
    print("sharded scores equal single-device scores")


if __name__ == "__main__":
    main()
