"""The notebooks run top to bottom in a real kernel, opened from notebooks/ as Jupyter opens them."""

import contextlib
import io
import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from omegaconf import OmegaConf

from handwriting_gan.config import compose_config
from handwriting_gan.study import study, study_config
from handwriting_gan.train import train
from tests_support import FAST, TOY_STUDY

# Every test here starts processes of its own: `make test-full` runs them.
pytestmark = pytest.mark.process

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def trained_run(run_dir: Path, *overrides: str) -> Path:
    """A finished run folder, with the config record the command line's Hydra writes beside it."""
    cfg = compose_config([*FAST, *overrides], run_dir=run_dir)
    train(cfg)
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return run_dir


def execute(notebook: Path, cwd: Path) -> str:
    """Run every cell in a fresh kernel started in `cwd`; returns everything the cells printed. The kernel
    inherits this process's environment: tests set variables with `monkeypatch`, which restores them."""
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return "".join(
        output.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder with notebooks/ and outputs/ holding: an older real run, a multirun job, and
    the newest run, a debug smoke run."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(NOTEBOOKS, root / "notebooks")
    trained_run(root / "outputs" / "mine" / "2026-01-01_00-00-00", "name=mine")
    trained_run(root / "outputs" / "sweep" / "multirun_2026-01-02_00-00-00" / "0", "name=sweep")
    trained_run(root / "outputs" / "debug" / "2026-01-03_00-00-00")
    return root


def test_explore_run_defaults_to_the_newest_finished_run_that_is_not_a_smoke_run(project, monkeypatch):
    monkeypatch.delenv("HWGAN_RUN_DIR", raising=False)
    printed = execute(project / "notebooks" / "explore_run.ipynb", cwd=project / "notebooks")
    assert "multirun_2026-01-02_00-00-00/0" in printed.splitlines()[0]  # found from notebooks/, not debug/
    assert "3 runs under" in printed
    assert "(64, 1, 28, 28)" in printed
    assert "no metrics yet" in printed


def test_explore_run_opens_the_run_it_is_given(project, monkeypatch):
    chosen = project / "outputs" / "mine" / "2026-01-01_00-00-00"
    monkeypatch.setenv("HWGAN_RUN_DIR", str(chosen))
    printed = execute(project / "notebooks" / "explore_run.ipynb", cwd=project / "notebooks")
    assert printed.splitlines()[0] == str(chosen)


@pytest.fixture(scope="module")
def toy_study(tmp_path_factory) -> Path:
    """A project folder with notebooks/ and a finished toy augmentation study under outputs/study/."""
    root = tmp_path_factory.mktemp("expand")
    shutil.copytree(NOTEBOOKS, root / "notebooks")
    overrides = [
        *TOY_STUDY,
        f"out={root / 'outputs' / 'study' / 'fake_cgan_mlp'}",
        f'train_overrides=["paths.cache_dir={root / "cache"}"]',
    ]
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        study(study_config(overrides))
    return root


def test_expand_a_dataset_shows_exports_and_reads_the_study(toy_study, monkeypatch):
    """From notebooks/ with nothing chosen, the notebook finds the study's run (the newest finished run)
    and the study, exports HWGAN_PER_CLASS images of each class and prints each seed's accuracies."""
    monkeypatch.delenv("HWGAN_RUN_DIR", raising=False)
    monkeypatch.delenv("HWGAN_STUDY_DIR", raising=False)
    monkeypatch.setenv("HWGAN_PER_CLASS", "3")
    printed = execute(toy_study / "notebooks" / "expand_a_dataset.ipynb", cwd=toy_study / "notebooks")
    run = toy_study / "outputs" / "study" / "fake_cgan_mlp" / "runs" / "pc4_seed0"
    lines = printed.splitlines()
    assert lines[0] == str(run) and "conditional generator: True" in lines[1]
    assert "real (40, 1, 28, 28) generated (40, 1, 28, 28)" in printed  # the 4 real images of each class
    assert f"{run / 'export_npz' / 'dataset.npz'}" in printed
    assert "30 images (1, 28, 28) torch.uint8, 3 to 3 per class" in printed
    assert json.loads((run / "export_npz" / "export.json").read_text())["per_class"] == 3
    assert "pc4_seed0: real " in printed and " filtered " in printed
    # The export labeled with the study's cached classifier instead of training the default one.
    assert len(list((toy_study / "cache" / "classifiers").glob("*.pt"))) == 1
