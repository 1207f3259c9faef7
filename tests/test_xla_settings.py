"""The XLA:CPU schedule setting of the CLI and the scripts."""

import os

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
