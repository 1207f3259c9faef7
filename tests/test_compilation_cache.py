"""The persistent compilation cache switch of the CLI and scripts."""

import os

import jax
import pytest

from jaxnas import compilation_cache, errors


@pytest.fixture(autouse=True)
def _restore_cache_config():
    before = jax.config.jax_compilation_cache_dir
    yield
    jax.config.update("jax_compilation_cache_dir", before)


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
