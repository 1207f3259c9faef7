"""Dispatch mode and chunk size chosen by backend (`jaxnas.dispatch`)."""

import types

import pytest

from jaxnas import configs, dispatch, errors, inputs, spaces


@pytest.mark.parametrize(
    "backend, mode, chunk", [("cpu", "switch", 1), ("gpu", "mask", 16), ("tpu", "mask", 16)]
)
def test_auto_picks_switch_on_cpu_and_chunked_mask_on_accelerators(backend, mode, chunk):
    for name in ("nb201", "nb101", "nds_resnet"):
        kwargs, size = dispatch.resolve(spaces.SPACES[name], {}, per_call=64, backend=backend)
        assert kwargs == {"dispatch": mode} and size == chunk, name
    _, size = dispatch.resolve(spaces.SPACES["nb201"], {}, per_call=4, backend=backend)
    assert size == min(chunk, 4)


def test_explicit_settings_win_over_the_backend():
    nb201 = spaces.SPACES["nb201"]
    assert dispatch.resolve(nb201, {}, "mask", backend="cpu") == ({"dispatch": "mask"}, 16)
    assert dispatch.resolve(nb201, {}, "switch", 3, backend="gpu") == ({"dispatch": "switch"}, 3)
    kwargs, size = dispatch.resolve(nb201, {"dispatch": "switch"}, "mask", backend="gpu")
    assert kwargs == {"dispatch": "switch"} and size == 1


def test_spaces_without_modes_get_one_architecture_at_a_time():
    kwargs, size = dispatch.resolve(spaces.SPACES["darts"], {"channels": 8}, backend="gpu")
    assert kwargs == {"channels": 8} and size == 1


def test_bad_settings_are_refused():
    with pytest.raises(errors.ConfigError, match="unknown dispatch 'gather'"):
        dispatch.resolve(spaces.SPACES["nb201"], {}, "gather")
    with pytest.raises(errors.ConfigError, match="chunk_size must be 0"):
        dispatch.resolve(spaces.SPACES["nb201"], {}, chunk_size=-1)


def test_the_experiment_builds_the_resolved_space(monkeypatch):
    config = configs.default_config()
    config.space.kwargs = {"channels": 4, "cells_per_stage": 1}
    seen = {}

    def factory(channels=16, cells_per_stage=5, dispatch="switch"):
        seen.update(channels=channels, cells_per_stage=cells_per_stage, dispatch=dispatch)
        return "space"

    monkeypatch.setitem(spaces.SPACES, "nb201", factory)
    config.dispatch = "mask"
    assert inputs.space(config) == "space"
    assert seen == {"channels": 4, "cells_per_stage": 1, "dispatch": "mask"}


def test_the_chunk_is_halved_until_the_program_fits_the_device():
    class Device:
        def __init__(self, limit):
            self.limit = limit

        def memory_stats(self):
            return None if self.limit is None else {"bytes_limit": self.limit}

    class Compiled:
        def __init__(self, chunk):
            self.chunk = chunk

        def memory_analysis(self):
            # 1 GB per architecture of the chunk, 0.5 GB of arguments.
            return types.SimpleNamespace(
                temp_size_in_bytes=self.chunk * 10**9, argument_size_in_bytes=5 * 10**8
            )

    tried = []

    def compile_for(chunk):
        tried.append(chunk)
        return Compiled(chunk)

    chunk, compiled = dispatch.fit_chunk_size(compile_for, 16, Device(10 * 10**9))
    assert (chunk, compiled.chunk, tried) == (4, 4, [16, 8, 4])  # 4.5 GB <= 80 % of 10 GB
    tried.clear()
    assert dispatch.fit_chunk_size(compile_for, 16, Device(None))[0] == 16 and tried == [16]
    assert dispatch.fit_chunk_size(compile_for, 16, Device(10**8))[0] == 1


def test_initialisations_are_one_at_a_time_on_cpu_and_all_at_once_on_accelerators():
    assert dispatch.init_chunk(32, backend="cpu") == 1
    assert dispatch.init_chunk(32, backend="gpu") == 32
    assert dispatch.init_chunk(32, 8, backend="gpu") == 8
    assert dispatch.init_chunk(3, 8, backend="cpu") == 3
    with pytest.raises(errors.ConfigError, match="init_chunk_size must be 0"):
        dispatch.init_chunk(3, -1)


def test_two_calls_at_once_on_one_cpu_process_when_the_temporaries_are_small():
    small, large = dispatch.CONCURRENT_TEMP_BYTES, dispatch.CONCURRENT_TEMP_BYTES + 1
    auto = dispatch.CPU_CONCURRENT_CALLS
    assert dispatch.concurrent_calls(0, lambda: small, backend="cpu") == auto
    assert dispatch.concurrent_calls(0, lambda: large, backend="cpu") == 1
    assert dispatch.concurrent_calls(0, lambda: None, backend="cpu") == 1

    def unasked():
        raise AssertionError("an accelerator needs no memory analysis")

    assert dispatch.concurrent_calls(0, unasked, backend="gpu") == 1
    assert dispatch.concurrent_calls(3, unasked, backend="gpu") == 3
    with pytest.raises(errors.ConfigError, match="concurrent_calls must be 0"):
        dispatch.concurrent_calls(-1, unasked)


def test_a_multi_process_run_runs_one_call_at_a_time(monkeypatch):
    monkeypatch.setattr(dispatch.jax, "process_count", lambda: 2)
    assert dispatch.concurrent_calls(2, lambda: 0, backend="cpu") == 1
    assert dispatch.concurrent_calls(0, lambda: 0, backend="cpu") == 1
