"""The notebooks run top to bottom on a real (tiny) run folder."""

import json
import os
from pathlib import Path

import matplotlib
from omegaconf import OmegaConf

from handwriting_gan.config import compose_config
from handwriting_gan.train import train
from tests_support import FAST

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_explore_run_notebook_executes(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    run = tmp_path / "run"
    cfg = compose_config(FAST, run_dir=run)
    train(cfg)
    (run / ".hydra").mkdir()  # what the command line's Hydra writes beside an in-process run
    (run / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    monkeypatch.setenv("HWGAN_RUN_DIR", str(run))
    notebook = json.loads((NOTEBOOKS / "explore_run.ipynb").read_text())
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]), namespace)  # noqa: S102 - the notebook is the code under test
    assert namespace["RUN_DIR"] == run and os.environ["HWGAN_RUN_DIR"] == str(run)
    assert tuple(namespace["samples"].shape) == (64, 1, 28, 28)
    assert len(namespace["losses"]["train/d_loss_epoch"]) == 2
    assert namespace["metrics"] is None
