"""The persistent compilation cache switch of the CLI and scripts."""

import os

import jax
import jax._src.compilation_cache as jax_cache
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import compilation_cache, errors


@pytest.fixture(autouse=True)
def _restore_cache_config():
    before = jax.config.jax_compilation_cache_dir
    yield
    jax.config.update("jax_compilation_cache_dir", before)
    # JAX opens its cache at the first compile and keeps it: let the next test's
    # compiles see the restored setting, not this test's folder.
    jax_cache.reset_cache()


def test_flag_beats_environment_beats_default(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(compilation_cache.ENV_VAR, raising=False)
    assert compilation_cache.resolve() == str(tmp_path / "xdg" / "jaxnas" / "xla")
    monkeypatch.setenv(compilation_cache.ENV_VAR, str(tmp_path / "env"))
    assert compilation_cache.resolve() == str(tmp_path / "env")
    assert compilation_cache.resolve(str(tmp_path / "flag")) == str(tmp_path / "flag")


@pytest.mark.parametrize("flag, env", [("none", ""), ("", "none"), ("NONE", "elsewhere")])
def test_none_turns_the_cache_off(tmp_path, monkeypatch, flag, env):
    monkeypatch.setenv(compilation_cache.ENV_VAR, env)
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    assert compilation_cache.enable(flag or None) is None
    assert jax.config.jax_compilation_cache_dir is None


def test_enable_creates_the_folder_and_sets_jax_config(tmp_path):
    path = compilation_cache.enable(str(tmp_path / "a" / "b"))
    assert os.path.isdir(path)
    assert jax.config.jax_compilation_cache_dir == path
    assert jax.config.jax_persistent_cache_min_compile_time_secs == (
        compilation_cache.MIN_COMPILE_SECONDS
    )


def test_a_file_in_place_of_the_folder_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(errors.ConfigError, match="compilation cache folder"):
        compilation_cache.enable(str(blocker / "cache"))


def _program():
    @jax.jit
    def program(x, key):
        return jnp.sin(x) * jax.random.uniform(key, x.shape)

    return program


def _entries(tmp_path):
    return sorted((tmp_path / compilation_cache.TRACED).iterdir())


def test_a_traced_program_is_kept_and_a_second_run_loads_it(tmp_path, monkeypatch):
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    x, key = jnp.arange(6.0).reshape(2, 3), jax.random.key(0)
    program = _program()
    first = compilation_cache.traced(program, "demo")
    np.testing.assert_array_equal(first(x, key), program(x, key))
    assert len(_entries(tmp_path)) == 1

    # A second run: the program comes from the file, neither traced nor exported.
    def refuse(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(compilation_cache.export, "export", refuse)
    traces = []

    @jax.jit
    def retraced(x, key):
        traces.append(1)
        return program(x, key)

    second = compilation_cache.traced(retraced, "demo")
    np.testing.assert_array_equal(second(x, key), program(x, key))
    assert not traces
    assert len(_entries(tmp_path)) == 1
    # As a jax.jit function, it lowers (the loaded program, not the traced function).
    compiled = second.lower(x, key).compile()
    np.testing.assert_array_equal(compiled(x, key), program(x, key))
    assert compiled.memory_analysis() is not None
    assert not traces


def test_a_transfer_guard_is_the_same_entry(tmp_path):
    # The scoring loop calls the programs inside a guard and asks their memory outside it.
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    x, key = jnp.arange(6.0).reshape(2, 3), jax.random.key(0)
    program = compilation_cache.traced(_program(), "demo")
    with jax.transfer_guard("disallow"):
        program(x, key)
    program.lower(x, key)
    assert len(_entries(tmp_path)) == 1


def test_another_key_or_argument_type_is_another_entry(tmp_path):
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    x, key = jnp.arange(6.0).reshape(2, 3), jax.random.key(0)
    program = _program()
    compilation_cache.traced(program, "demo")(x, key)
    compilation_cache.traced(program, "other")(x, key)
    scored = compilation_cache.traced(program, "demo")
    np.testing.assert_array_equal(scored(x[:1], key), program(x[:1], key))
    assert len(_entries(tmp_path)) == 3


def test_an_unreadable_entry_is_traced_again(tmp_path, capsys):
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    x, key = jnp.ones(3), jax.random.key(1)
    program = _program()
    compilation_cache.traced(program, "demo")(x, key)
    (entry,) = _entries(tmp_path)
    entry.write_bytes(b"not a program")
    again = compilation_cache.traced(program, "demo")
    np.testing.assert_array_equal(again(x, key), program(x, key))
    assert "re-tracing" in capsys.readouterr().out
    assert entry.read_bytes() != b"not a program"


def test_without_the_cache_the_program_is_returned_as_it_is():
    jax.config.update("jax_compilation_cache_dir", None)
    program = _program()
    assert compilation_cache.traced(program, "demo") is program


def test_another_jax_setting_is_another_entry(tmp_path):
    # The random bits of `jax.random.uniform` depend on this setting, not on any
    # argument type: an entry traced under the other value must not be used.
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    x, key = jnp.ones(4), jax.random.key(2)
    before = jax.config.jax_threefry_partitionable
    try:
        for value in (before, not before):
            jax.config.update("jax_threefry_partitionable", value)
            program = _program()
            np.testing.assert_array_equal(
                compilation_cache.traced(program, "demo")(x, key), program(x, key)
            )
    finally:
        jax.config.update("jax_threefry_partitionable", before)
    assert len(_entries(tmp_path)) == 2


def test_a_folder_that_cannot_be_written_only_costs_the_entry(tmp_path, capsys):
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    (tmp_path / compilation_cache.TRACED).write_text("a file, not a folder")
    x, key = jnp.ones(3), jax.random.key(1)
    program = _program()
    np.testing.assert_array_equal(
        compilation_cache.traced(program, "demo")(x, key), program(x, key)
    )
    assert "not written" in capsys.readouterr().out


def test_a_program_export_refuses_runs_as_it_is(tmp_path, capsys):
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))

    @jax.jit
    def with_callback(x):
        return jax.pure_callback(np.sin, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    x = jnp.arange(3.0)
    np.testing.assert_allclose(compilation_cache.traced(with_callback, "demo")(x), np.sin(x))
    assert "traced on every run" in capsys.readouterr().out
    assert not (tmp_path / compilation_cache.TRACED).exists()
