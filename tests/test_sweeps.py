"""Sweeps through Hydra's plugins (the `sweeps` and `cluster` extras): jobs on submitit's local
executor, and an Optuna study of quality/fd kept in the sweep folder. Skipped where the extras are not
installed (`pip install -e '.[dev,sweeps,cluster]'`)."""

import math

import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests_support import FAST, TINY_CLASSIFIER, run_cli

# Every test here starts processes of its own: `make test-full` runs them.
pytestmark = pytest.mark.process

# As docs/guide/sweeps.md gives it: conf/train.yaml lists `hparams_search: null`, so no `+` is needed.
SEARCH = "hparams_search=optuna_fd"

TINY_QUALITY = ["callbacks.quality.num_samples=64", *TINY_CLASSIFIER]


def finished(result) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_submitit_local_runs_each_job_of_a_sweep_in_its_own_process(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=submitit_local", *FAST, "trainer.max_epochs=1", "d_steps=1,2"]
    finished(run_cli([*args, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=240))

    logs = sorted(p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit())
    assert len(logs) == 2  # two submitit jobs, each with its own log folder
    for job, d_steps in (("0", 1), ("1", 2)):
        assert OmegaConf.load(sweep / job / ".hydra" / "config.yaml").d_steps == d_steps
        generator = torch.load(sweep / job / "generator.pt", map_location="cpu", weights_only=True)
        assert generator["state_dict"]


def test_optuna_study_of_fd_lives_in_the_sweep_folder(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    import optuna

    sweep = tmp_path / "sweep"
    args = [
        "-m",
        SEARCH,
        *FAST,
        "hydra.sweeper.n_trials=2",
        f"paths.cache_dir={tmp_path / 'cache'}",
        *TINY_QUALITY,
        f"hydra.sweep.dir={sweep}",
    ]
    finished(run_cli(args, cwd=tmp_path, timeout=240))

    study = optuna.load_study(study_name="debug_fd", storage=f"sqlite:///{sweep / 'optuna.db'}")
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 2
    assert set(trials[0].params) == {
        "optim.lr",
        "optim.betas",
        "d_steps",
        "dataset.batch_size",
        "model.generator.hidden",
        "model.discriminator.hidden",
    }
    for trial in trials:  # each trial's value is the FD its run logged after its last epoch
        run = sweep / str(trial.number)
        config = OmegaConf.load(run / ".hydra" / "config.yaml")
        assert config.d_steps == trial.params["d_steps"]
        assert list(config.optim.betas) == OmegaConf.create(trial.params["optim.betas"])
        events = EventAccumulator(str(run / "tensorboard"))
        events.Reload()
        (fd,) = events.Scalars("quality/fd")
        assert math.isclose(fd.value, trial.value, rel_tol=1e-6)
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == min(t.value for t in trials)
