"""The command shell's own helpers: thread choice and unknown-key checks."""

import os

import pytest
import torch

import handwriting_gan.shell as shell
from handwriting_gan.errors import ConfigError


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("idle", "expected"), [(1.0, "all"), (0.0, 1), (0.5, "half")])
def test_auto_threads_take_the_idle_cores(monkeypatch, idle, expected):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(shell, "idle_fraction", lambda: idle)
    want = {"all": cores, "half": max(1, round(cores / 2))}.get(expected, expected)
    assert shell.set_threads("auto") == want


def test_a_number_of_threads_is_taken_and_a_bad_one_refused():
    assert shell.set_threads(1) == 1
    with pytest.raises(ConfigError, match="threads=0"):
        shell.set_threads(0)


def test_idle_fraction_sees_a_busy_core():
    assert 0.0 <= shell.idle_fraction(0.1) <= 1.0
