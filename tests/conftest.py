"""Shared fixtures and the numerical policy of the test suite."""

import importlib.util
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import benchmarks, compilation_cache, proxies
from jaxnas.proxies import zen
from jaxnas.spaces import autoformer, base, nb201

# Surface silent broadcasting and dtype promotion bugs (equinox / neural-tangents policy).
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")
# No persistent compilation cache in tests, theirs or the CLI runs they start: the CLI
# turns it on by default, and a test that runs it in-process left it on for every later
# test of its worker, writing executables to the user's cache folder (tests that need the
# cache pass their own folder).
os.environ[compilation_cache.ENV_VAR] = compilation_cache.OFF

TINY = dict(channels=4, cells_per_stage=1)  # an NB201 net that compiles in seconds
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A tiny AutoFormer space: every dimension masked below a larger supernet.
TINY_VIT = autoformer.ViTSpace(
    "tiny_vit",
    embed_dims=(8, 12),
    depths=(1, 2),
    num_heads=(1, 2),
    mlp_ratios=(1.0, 2.5),
    head_dim=4,
    supernet_embed_dim=16,
    supernet_num_heads=3,
    supernet_mlp_ratio=2.5,
)


def load_config(path: str, arg: str | None = None):
    """`get_config(arg)` of the config file at `path` (relative to the repository root),
    the config the CLI builds from `--config=path:arg`."""
    spec = importlib.util.spec_from_file_location("config_under_test", os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


# CI sets this: a data-dependent test that would skip fails instead, so a run without
# the shared data can never pass for one with it.
REQUIRE_DATA_ENV = "JAXNAS_REQUIRE_DATA"


@pytest.fixture(scope="module")
def fast_compile():
    """Compiles with XLA's optimisations off for one test module (`pytestmark =
    pytest.mark.usefixtures("fast_compile")`), then restores the setting."""
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


@pytest.fixture(scope="module", autouse=True)
def release_compiled_programs():
    """Drops JAX's compiled executables when a test module ends.

    XLA:CPU maps every compiled kernel into its own memory regions (about 15 per small
    program, thousands for a DARTS network), and a worker that ran hundreds of tests
    kept them all: it passed Linux's 65,530 mappings per process (`vm.max_map_count`)
    and LLVM segfaulted in the next compile. A module's programs are not reused by the
    next module (`--dist loadfile` gives whole files to a worker in no fixed order).
    """
    yield
    jax.clear_caches()


@pytest.fixture(scope="session")
def shared_data():
    """The shared ground-truth directory; tests needing it skip when it is absent
    (fail with $JAXNAS_REQUIRE_DATA=1)."""
    path = benchmarks.shared_data_dir()
    if not os.path.isdir(path):
        message = f"shared data not found at {path} (set $JAXNAS_SHARED_DATA)"
        if os.environ.get(REQUIRE_DATA_ENV) == "1":
            pytest.fail(f"{message}; ${REQUIRE_DATA_ENV}=1 requires it", pytrace=False)
        pytest.skip(message)
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


def materialised_variables(model, params, x):
    """Variables of a materialised `model`: the supernet `params` restricted to its
    shapes, running statistics 1 (not read in train mode). Shapes come from `eval_shape`
    (Linen's eager init draws per leaf, tens of seconds)."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    return {
        "params": base.restrict_params(params["params"], shapes["params"]),
        "batch_stats": jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes["batch_stats"]),
    }


def probe_scores(batch, mixed):
    """`scores(net, variables) -> (fisher, flops, zen)`: fisher and flops on `batch`,
    the Zen-score of `batch["x"]` against the perturbed images `mixed`."""
    fisher, flops = proxies.get_proxy("fisher"), proxies.get_proxy("flops")

    def scores(net, variables):
        return (
            fisher(net, variables, batch, None),
            flops(net, variables, batch, None),
            zen.zen_score(net, variables, batch["x"], mixed),
        )

    return scores
