"""Population sharding over devices (`score_population(mesh=...)`)."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from jaxnas import errors, proxies

HERE = os.path.dirname(os.path.abspath(__file__))


def test_two_devices_give_the_single_device_scores():
    # A fresh process: the device count is fixed when JAX starts.
    flags = os.environ.get("XLA_FLAGS", "")
    env = {**os.environ, "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=2"}
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "sharded_scores.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sharded scores equal single-device scores" in result.stdout


def test_a_mesh_without_a_population_axis_is_refused(tiny_space, tiny_batch):
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("data",))
    population = tiny_space.sample(jax.random.key(0), 2)
    with pytest.raises(errors.ConfigError, match="'population'"):
        proxies.score_population(
            proxies.get_proxy("naswot"),
            tiny_space,
            population,
            tiny_batch,
            jax.random.split(jax.random.key(1), 1),
            mesh=mesh,
        )
