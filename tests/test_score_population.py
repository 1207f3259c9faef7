"""score_population: shapes, compile once, key semantics, chunking; the chunked scoring
loop (`scoring.score_chunks`)."""

import io
import threading
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import dispatch, errors, proxies, scoring
from jaxnas.progress import Progress
from jaxnas.spaces import nb201

from conftest import TINY


def test_scores_have_shape_p_by_k_and_do_not_retrace_for_a_new_population(tiny_space, tiny_batch):
    chex.clear_trace_counter()
    proxy = proxies.get_proxy("naswot")

    @jax.jit
    @chex.assert_max_traces(n=1)
    def score(population, batch, keys):
        return proxies.score_population(proxy, tiny_space, population, batch, keys)

    keys = jax.random.split(jax.random.key(0), 3)
    dims = chex.Dimensions(P=4, K=3)
    first = score(tiny_space.sample(jax.random.key(1), 4), tiny_batch, keys)
    second = score(tiny_space.sample(jax.random.key(2), 4), tiny_batch, keys)
    chex.assert_shape([first, second], dims["PK"])
    chex.assert_tree_all_finite(first)
    assert not np.allclose(first, second)


def test_shared_keys_equal_scoring_each_network_on_its_own(tiny_space, tiny_batch):
    proxy = proxies.get_proxy("naswot")
    population = tiny_space.sample(jax.random.key(3), 3)
    keys = jax.random.split(jax.random.key(4), 2)
    shared = jax.jit(lambda p: proxies.score_population(proxy, tiny_space, p, tiny_batch, keys))(
        population
    )
    per_arch = jax.jit(
        lambda p: proxies.score_population(
            proxy, tiny_space, p, tiny_batch, jnp.broadcast_to(keys, (3, 2))
        )
    )(population)
    single = jax.jit(
        lambda g, k: proxies.score_network(proxy, tiny_space.network(g), tiny_batch, k)
    )
    np.testing.assert_allclose(shared, per_arch, rtol=1e-6)
    for p in range(3):
        for k in range(2):
            np.testing.assert_allclose(shared[p, k], single(population[p], keys[k]), rtol=1e-6)


@pytest.mark.parametrize("own_keys", [False, True])
def test_a_batch_per_architecture_equals_scoring_each_on_its_batch(
    tiny_space, tiny_batch, own_keys
):
    proxy = proxies.get_proxy("naswot")
    population = tiny_space.sample(jax.random.key(7), 3)
    keys = jax.random.split(jax.random.key(8), 2)
    keys = jnp.broadcast_to(keys, (3, 2)) if own_keys else keys
    # Three different batches: the original, its images reversed, and negated.
    batches = [tiny_batch, jax.tree.map(lambda v: v[::-1], tiny_batch)]
    batches.append({"x": -tiny_batch["x"], "y": tiny_batch["y"]})
    stacked = jax.tree.map(lambda *v: jnp.stack(v), *batches)
    scores = jax.jit(
        lambda p, b: proxies.score_population(proxy, tiny_space, p, b, keys, batch_per_arch=True)
    )(population, stacked)
    chex.assert_shape(scores, (3, 2))
    for p in range(3):
        alone = proxies.score_population(
            proxy,
            tiny_space,
            population[p : p + 1],
            batches[p],
            keys[p : p + 1] if own_keys else keys,
        )
        np.testing.assert_allclose(scores[p], alone[0], rtol=1e-6)
    shared = proxies.score_population(proxy, tiny_space, population, tiny_batch, keys)
    assert not np.allclose(scores[2], shared[2])
    with pytest.raises(errors.ShapeError, match=r"f32\[P=3, B, H, W, C\]"):
        proxies.score_population(
            proxy, tiny_space, population, tiny_batch, keys, batch_per_arch=True
        )


def test_chunked_vmap_with_mask_dispatch_equals_sequential_switch(tiny_batch):
    proxy = proxies.get_proxy("naswot")
    switch = nb201.space(**TINY)
    mask = nb201.space(**TINY, dispatch="mask")
    population = switch.sample(jax.random.key(5), 4)
    keys = jax.random.split(jax.random.key(6), 2)
    sequential = jax.jit(lambda p: proxies.score_population(proxy, switch, p, tiny_batch, keys))(
        population
    )
    chunked = jax.jit(
        lambda p: proxies.score_population(proxy, mask, p, tiny_batch, keys, chunk_size=2)
    )(population)
    np.testing.assert_allclose(chunked, sequential, rtol=1e-5)


def test_bad_inputs_raise_clear_errors(tiny_space, tiny_batch):
    proxy = proxies.get_proxy("naswot")
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(errors.ArchitectureError, match=r"int32\[P, 6\]"):
        proxies.score_population(proxy, tiny_space, jnp.zeros((2, 5), jnp.int32), tiny_batch, keys)
    nchw = {"x": jnp.zeros((8, 3, 8, 8)), "y": tiny_batch["y"]}
    with pytest.raises(errors.ShapeError, match=r"channels first\?"):
        proxies.score_population(proxy, tiny_space, jnp.zeros((2, 6), jnp.int32), nchw, keys)
    with pytest.raises(errors.ShapeError, match="keys must be"):
        proxies.score_population(
            proxy, tiny_space, jnp.zeros((2, 6), jnp.int32), tiny_batch, keys.reshape(1, 2, 1)
        )


def test_aggregate_propagates_nan_and_keeps_minus_infinity():
    scores = jnp.asarray([[1.0, 3.0], [jnp.nan, 1.0], [-jnp.inf, 2.0]])
    agg = proxies.aggregate(scores, "mean")
    np.testing.assert_array_equal(agg[0], 2.0)
    assert np.isnan(agg[1]) and agg[2] == -np.inf
    with pytest.raises(errors.ConfigError, match="unknown aggregate"):
        proxies.aggregate(scores, "mode")


def test_a_concrete_invalid_population_is_refused_before_scoring(tiny_space, tiny_batch):
    population = np.zeros((2, 6), np.int32)
    population[1, 3] = 9  # NB201 has 5 ops per edge
    with pytest.raises(errors.ArchitectureError, match="value 9 at position 3"):
        proxies.score_population(
            proxies.get_proxy("naswot"),
            tiny_space,
            population,
            tiny_batch,
            jax.random.split(jax.random.key(0), 1),
        )


@pytest.mark.parametrize("own_keys", [False, True])
def test_initialisations_in_chunks_equal_all_at_once(tiny_space, tiny_batch, own_keys):
    proxy = proxies.get_proxy("snip")
    population = tiny_space.sample(jax.random.key(9), 2)
    keys = jax.random.split(jax.random.key(10), 3)
    keys = jnp.broadcast_to(keys, (2, 3)) if own_keys else keys

    def scores(init_chunk_size):
        return jax.jit(
            lambda p: proxies.score_population(
                proxy, tiny_space, p, tiny_batch, keys, init_chunk_size=init_chunk_size
            )
        )(population)

    together = scores(3)
    chex.assert_shape(together, (2, 3))
    assert len(np.unique(np.asarray(together))) == 6
    # One at a time (the CPU default), chunks of 2 with a remainder of 1, and more than K.
    for size in (0, 1, 2, 5):
        np.testing.assert_allclose(scores(size), together, rtol=1e-5, err_msg=f"chunk {size}")


@pytest.mark.parametrize("own_keys", [False, True])
@pytest.mark.parametrize("batch_per_arch", [False, True])
def test_the_scorer_equals_score_population_with_its_initialisations_drawn_apart(
    tiny_space, tiny_batch, own_keys, batch_per_arch
):
    proxy = proxies.get_proxy("snip")
    population = tiny_space.sample(jax.random.key(11), 3)
    keys = jax.random.split(jax.random.key(12), 2)
    keys = jnp.broadcast_to(keys, (3, 2)) if own_keys else keys
    batch = tiny_batch
    if batch_per_arch:
        batch = jax.tree.map(lambda v: jnp.stack([v, v[::-1], v]), tiny_batch)
    expected = jax.jit(
        lambda p: proxies.score_population(
            proxy, tiny_space, p, batch, keys, batch_per_arch=batch_per_arch
        )
    )(population)
    scorer = scoring.make_scorer(proxy, tiny_space, batch_per_arch=batch_per_arch)
    np.testing.assert_allclose(scorer(population, batch, keys), expected, rtol=1e-6)
    compiled = scorer.compile(population, batch, keys)
    np.testing.assert_allclose(compiled(population, batch, keys), expected, rtol=1e-6)
    if own_keys:
        return
    # The draws are the initialisation program's alone: the scoring program takes them.
    init = scorer.init(population, batch, keys)
    assert "random_bits" in str(jax.make_jaxpr(scorer.init)(population, batch, keys))
    assert "random_bits" not in str(jax.make_jaxpr(scorer.score)(population, batch, keys, init))


def test_proxies_with_the_same_network_share_one_initialisation_program(tiny_space, tiny_batch):
    population = tiny_space.sample(jax.random.key(16), 2)
    keys = jax.random.split(jax.random.key(17), 2)

    def init_program(name):
        scorer = scoring.make_scorer(proxies.get_proxy(name), tiny_space)
        return scorer.init.lower(population, tiny_batch, keys).as_text()

    # The persistent cache keys compiled programs by this text: one entry for both.
    assert init_program("snip") == init_program("grad_norm")
    # synflow overrides its network (no BatchNorm): both programs build that network.
    synflow = proxies.get_proxy("synflow")
    assert proxies.network_overrides(synflow)
    expected = proxies.score_population(synflow, tiny_space, population, tiny_batch, keys)
    scores = scoring.make_scorer(synflow, tiny_space)(population, tiny_batch, keys)
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_initialisations_that_do_not_match_the_keys_are_refused(tiny_space, tiny_batch):
    proxy = proxies.get_proxy("naswot")
    population = tiny_space.sample(jax.random.key(14), 2)
    keys = jax.random.split(jax.random.key(15), 2)
    three = proxies.shared_initialisations(
        proxy, tiny_space, population, tiny_batch, jax.random.split(jax.random.key(15), 3)
    )
    with pytest.raises(errors.ShapeError, match=r"expected float32\[2, .*K=2 draws"):
        proxies.score_population(
            proxy, tiny_space, population, tiny_batch, keys, initialisations=three
        )
    wider = proxies.shared_initialisations(
        proxy, nb201.space(**{**TINY, "channels": 8}), population, tiny_batch, keys
    )
    with pytest.raises(errors.ShapeError, match=r"initialisations\[.*expected float32\[2, "):
        proxies.score_population(
            proxy, tiny_space, population, tiny_batch, keys, initialisations=wider
        )
    with pytest.raises(errors.ShapeError, match="not this network's parameters"):
        proxies.score_population(
            proxy,
            tiny_space,
            population,
            tiny_batch,
            keys,
            initialisations={"params": {"w": jnp.zeros((2, 3))}},
        )
    with pytest.raises(errors.ShapeError, match="key\\[P, K\\] draws its own"):
        proxies.score_population(
            proxy,
            tiny_space,
            population,
            tiny_batch,
            jnp.broadcast_to(keys, (2, 2)),
            initialisations=three,
        )


@pytest.mark.parametrize("concurrent_calls", [0, 1, 3])
def test_chunked_calls_keep_their_order_checkpoint_and_resume(
    tiny_space, tiny_batch, tmp_path, concurrent_calls
):
    population = np.asarray(tiny_space.sample(jax.random.key(20), 7))
    keys = jax.random.split(jax.random.key(21), 2)
    scorer = scoring.make_scorer(proxies.get_proxy("naswot"), tiny_space)
    expected = np.asarray(scorer(population, tiny_batch, keys))
    checkpoint = str(tmp_path / "scores.npy")
    progress = Progress(7, "test", stream=io.StringIO())
    scores = scoring.score_chunks(
        scorer,
        population,
        tiny_batch,
        keys,
        2,
        progress,
        checkpoint,
        concurrent_calls=concurrent_calls,
    )
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    np.testing.assert_array_equal(np.load(checkpoint), scores)
    assert progress.done == 7
    resumed = scoring.score_chunks(
        scorer,
        population,
        tiny_batch,
        keys,
        2,
        Progress(7, "test", stream=io.StringIO()),
        previous=scores[:3],
        concurrent_calls=concurrent_calls,
    )
    np.testing.assert_allclose(resumed, scores, rtol=1e-6)


_first_gene = jax.jit(lambda population: population[:, :1].astype(jnp.float32))


class _ProbeScorer:
    """A fake scorer: its third and fourth calls (auto's pair of calls at once, after the
    first and one alone) wait for each other, then take `together_s`; the others
    `alone_s`, twice that for odd calls after the probe. Records how many calls ran at
    once after the probe."""

    def __init__(self, temp_bytes, alone_s=0.0, together_s=0.0, timeout=30.0):
        self.calls = self.active = self.most_after_probe = 0
        self.lock = threading.Lock()
        self.meeting = threading.Barrier(2, timeout=timeout)
        self.times = alone_s, together_s
        self._temp_bytes = temp_bytes

    def __call__(self, population, batch, keys):
        with self.lock:
            self.calls += 1
            self.active += 1
            index = self.calls
            if index > 4:
                self.most_after_probe = max(self.most_after_probe, self.active)
        if index in (3, 4):
            self.meeting.wait()
        # After the probe, odd calls take longer: a call started later finishes first.
        time.sleep(self.times[index in (3, 4)] * (1 + (index > 4 and index % 2)))
        with self.lock:
            self.active -= 1
        return _first_gene(population)

    def temp_bytes(self, population, batch, keys):
        return self._temp_bytes


@pytest.fixture
def on_a_cpu(monkeypatch):
    """Auto chooses as on a CPU wherever the suite runs."""
    monkeypatch.setattr(dispatch.jax, "default_backend", lambda: "cpu")


def _score_fake(scorer, concurrent_calls=0):
    population = np.arange(32, dtype=np.int32).reshape(16, 2)
    keys = jax.random.split(jax.random.key(0), 1)
    batch = {"x": jnp.zeros((1, 2, 2, 1))}
    progress = Progress(16, "test", stream=io.StringIO())
    scores = scoring.score_chunks(
        scorer, population, batch, keys, 2, progress, concurrent_calls=concurrent_calls
    )
    np.testing.assert_array_equal(scores[:, 0], population[:, 0])


def test_auto_keeps_two_calls_at_once_where_they_are_faster(on_a_cpu):
    scorer = _ProbeScorer(dispatch.CONCURRENT_TEMP_BYTES, alone_s=0.1, together_s=0.05)
    _score_fake(scorer)
    assert scorer.most_after_probe == 2


def test_auto_goes_back_to_one_call_where_two_at_once_are_slower(on_a_cpu):
    scorer = _ProbeScorer(dispatch.CONCURRENT_TEMP_BYTES, alone_s=0.01, together_s=0.3)
    _score_fake(scorer)
    assert scorer.most_after_probe == 1


def test_large_programs_and_bad_counts_run_no_calls_at_once(on_a_cpu):
    # The probe's two calls never meet: a program with larger temporaries runs alone.
    scorer = _ProbeScorer(dispatch.CONCURRENT_TEMP_BYTES + 1, timeout=1.0)
    with pytest.raises(threading.BrokenBarrierError):
        _score_fake(scorer)
    scorer = _ProbeScorer(dispatch.CONCURRENT_TEMP_BYTES)
    with pytest.raises(errors.ConfigError, match="concurrent_calls must be 0"):
        _score_fake(scorer, concurrent_calls=-1)
    assert scorer.calls == 0
