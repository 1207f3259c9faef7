"""Shared fixtures and the numerical policy of the test suite."""

import os

import jax
import jax.numpy as jnp
import pytest

from jaxnas import benchmarks
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
