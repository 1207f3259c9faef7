"""The XLA:CPU schedule setting of the CLI and the scripts."""

import os
import platform

import jax
import numpy as np

from jaxnas import xla_settings

FLAG = f"--{xla_settings.CONCURRENCY_SCHEDULER}=false"


def test_adds_the_flag_to_the_users_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    xla_settings.prefer_memory_schedule()
    assert os.environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {FLAG}"


def test_sets_the_flag_when_there_are_no_flags(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    xla_settings.prefer_memory_schedule()
    assert os.environ["XLA_FLAGS"] == FLAG


def test_keeps_the_users_own_choice(monkeypatch):
    mine = f"--{xla_settings.CONCURRENCY_SCHEDULER}=true"
    monkeypatch.setenv("XLA_FLAGS", mine)
    xla_settings.prefer_memory_schedule()
    assert os.environ["XLA_FLAGS"] == mine


def test_trim_heap_uses_glibc_where_there_is_one():
    assert xla_settings.trim_heap() is (platform.libc_ver()[0] == "glibc")


def test_trims_after_compiles_that_reach_the_threshold(monkeypatch):
    trims = []
    monkeypatch.setattr(xla_settings, "trim_heap", lambda: trims.append(1))
    monkeypatch.setattr(xla_settings, "_trim_after_seconds", float("inf"))
    xla_settings.trim_heap_after_compiles(min_seconds=0.0)
    xla_settings.trim_heap_after_compiles(min_seconds=0.0)  # one listener, not two
    x = np.ones(3, np.float32)
    jax.jit(lambda x: x * 3.0 + 1.0).lower(x).compile()
    assert len(trims) == 1
    xla_settings.trim_heap_after_compiles(min_seconds=1e9)
    jax.jit(lambda x: x * 5.0 - 2.0).lower(x).compile()
    assert len(trims) == 1
