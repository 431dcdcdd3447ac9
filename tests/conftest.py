"""Shared fixtures: the real Hydra config composed with small overrides, the CLI, and real MNIST."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import DictConfig

from handwriting_gan.config import compose_config
from tests_support import run_cli

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("HWGAN_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_collection_modifyitems(items) -> None:
    """A test that runs the command line through the `cli` fixture starts a process: mark it, so the fast
    suite (`make test`) leaves it to `make test-full` without each test having to say so."""
    for item in items:
        if "cli" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.process)


@pytest.fixture
def compose(tmp_path):
    """compose(overrides) -> the real config with `paths.run_dir` inside the test's tmp_path."""

    def _compose(overrides: list[str] = (), run_dir: Path | None = None) -> DictConfig:
        return compose_config(list(overrides), run_dir=run_dir or tmp_path / "run")

    return _compose


@pytest.fixture
def cli(tmp_path):
    """cli(args) runs the training command inside tmp_path (so outputs/ lands there)."""

    def _cli(args: list[str], **kwargs):
        return run_cli(args, cwd=kwargs.pop("cwd", tmp_path), **kwargs)

    return _cli


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The folder holding MNIST/raw with the full dataset (../shared/data); skips when absent."""
    if not (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"real MNIST not found under {SHARED_DATA} (set HWGAN_SHARED_DATA)")
    return SHARED_DATA
