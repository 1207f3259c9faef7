"""Shared fixtures and the numerical policy of the test suite."""

import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import benchmarks, proxies
from jaxnas.spaces import nb201

# Surface silent broadcasting and dtype promotion bugs (equinox / neural-tangents policy).
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

TINY = dict(channels=4, cells_per_stage=1)  # an NB201 net that compiles in seconds


@pytest.fixture(scope="session")
def shared_data():
    """The shared ground-truth directory; tests needing it skip when it is absent."""
    path = benchmarks.shared_data_dir()
    if not os.path.isdir(path):
        pytest.skip(f"shared data not found at {path} (set $JAXNAS_SHARED_DATA)")
    return path


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture(scope="session")
def tiny_space():
    return nb201.space(**TINY)


@pytest.fixture(scope="session")
def tiny_batch():
    key_x, key_y = jax.random.split(jax.random.key(42))
    return {
        "x": jax.random.normal(key_x, (8, 8, 8, 3), jnp.float32),
        "y": jax.random.randint(key_y, (8,), 0, 10, jnp.int32),
    }


def assert_scoring_compiles_once(space, x, num=3):
    """NASWOT on two populations of `space` (images `x` f32[B, H, W, C]) through one
    jitted `score_population`: a single trace, finite f32[P, K] scores that differ."""
    chex.clear_trace_counter()
    proxy = proxies.get_proxy("naswot")

    @jax.jit
    @chex.assert_max_traces(n=1)
    def score(population, keys):
        return proxies.score_population(proxy, space, population, {"x": x}, keys)

    keys = jax.random.split(jax.random.key(0), 2)
    first = score(space.sample(jax.random.key(1), num), keys)
    second = score(space.sample(jax.random.key(2), num), keys)
    chex.assert_shape([first, second], (num, 2))
    chex.assert_tree_all_finite(first)
    assert not np.allclose(first, second)
