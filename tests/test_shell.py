"""The command shell's own helpers: thread choice, unknown-key checks, missing Hydra plugins, sweep jobs."""

import os
import sys
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

import handwriting_gan.shell as shell
from handwriting_gan.config import compose_config
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


# -- Hydra plugins ---------------------------------------------------------------------------------
# As docs/guide/sweeps.md gives it: conf/train.yaml lists `hparams_search: null`, so no `+` is needed.
SEARCH = "hparams_search=optuna_fd"


@pytest.fixture
def without_plugin_config(monkeypatch):
    """Hydra as it is where a plugin is not installed: its config is missing from the ConfigStore."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    Plugins.instance()  # plugins register their configs once, on first use

    def remove(group: str, name: str) -> None:
        node = ConfigStore.instance().repo
        for part in group.split("/"):
            node = node[part]
        if f"{name}.yaml" in node:
            monkeypatch.delitem(node, f"{name}.yaml")

    return remove


@pytest.mark.parametrize(
    ("argv", "group", "name", "extra"),
    [
        (
            ["-m", "hydra/launcher=submitit_slurm", "d_steps=1,2"],
            "hydra/launcher",
            "submitit_slurm",
            "cluster",
        ),
        (["-m", "hydra/launcher=joblib"], "hydra/launcher", "joblib", "cluster"),
        (["-m", SEARCH], "hydra/sweeper", "optuna", "sweeps"),
    ],
)
def test_a_missing_hydra_plugin_names_the_extra_to_install(without_plugin_config, argv, group, name, extra):
    without_plugin_config(group, name)
    with pytest.raises(ConfigError) as caught:
        shell.check_plugins("train", argv)
    message = str(caught.value)
    assert f"{group}={name}" in message and f"pip install 'handwriting_gan[{extra}]'" in message
    assert "\n" not in message


def test_the_command_prints_the_missing_plugin_in_one_line(without_plugin_config, monkeypatch, capsys):
    without_plugin_config("hydra/launcher", "joblib")
    monkeypatch.setattr("sys.argv", ["hwgan-train", "-m", "hydra/launcher=joblib", "d_steps=1,2"])
    with pytest.raises(SystemExit) as caught:
        shell.command("train", lambda cfg: pytest.fail("the task must not run"))()
    assert caught.value.code == ConfigError.exit_code
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: hydra/launcher=joblib needs a Hydra plugin") and "[cluster]" in line


@pytest.mark.parametrize("config_name", ["train", "evaluate", "export", "study", "expand", "pool_study"])
def test_every_command_prints_an_unknown_key_in_one_line(monkeypatch, capsys, config_name):
    monkeypatch.setattr("sys.argv", [f"hwgan-{config_name}", "bogus=1"])
    with pytest.raises(SystemExit) as caught:
        shell.command(config_name, lambda cfg: pytest.fail("the task must not run"))()
    assert caught.value.code == ConfigError.exit_code
    assert capsys.readouterr().err.splitlines() == [
        f"error: bogus is not a known key of conf/{config_name}.yaml."
    ]


def test_a_command_line_with_flags_is_left_to_hydra():
    # Hydra answers its own flags, and a sweep's lists of values are composed per job.
    assert shell.check_command_line("evaluate", ["--cfg", "job"]) == ["--cfg", "job"]
    assert shell.check_command_line("evaluate", ["-m", "seed=1,2"]) == ["-m", "seed=1,2"]
    with pytest.raises(ConfigError, match="seed=1,2"):
        shell.check_command_line("evaluate", ["seed=1,2"])


def test_installed_plugins_and_ordinary_command_lines_pass(monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    composed = []

    def recording(overrides, **kwargs):
        composed.append(list(overrides))
        return compose_config(overrides, **kwargs)

    monkeypatch.setattr(shell, "compose_config", recording)
    # An installed launcher: composed (without the sweep's values) and passed.
    shell.check_plugins("train", ["-m", "hydra/launcher=joblib", "d_steps=1,2", "debug=fast"])
    assert composed == [["hydra/launcher=joblib", "debug=fast"]]
    # A chooser whose mistake is not a missing plugin: composed, no hint, left to the command's checks.
    shell.check_plugins("train", ["experiment=nonexistent"])
    assert composed[-1] == ["experiment=nonexistent"]
    # Nothing that could choose a plugin: not even composed.
    shell.check_plugins("train", ["model=nonexistent"])
    assert len(composed) == 2


def test_an_override_of_a_callback_added_with_plus_is_accepted():
    # A resume repeats the run's `+callbacks.x...` additions, then may change one of their values.
    added = ["+callbacks.extra._target_=tests_support.PauseAt", "+callbacks.extra.epoch=0"]
    cfg = shell.compose_checked("train", [*added, "callbacks.extra.epoch=3"])
    assert cfg.callbacks.extra.epoch == 3


def test_say_speaks_for_the_first_process_only(monkeypatch, capsys):
    monkeypatch.setenv("LOCAL_RANK", "1")
    shell.say("from rank 1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    shell.say("from rank 0")
    assert capsys.readouterr().err == "from rank 0\n"


def test_sweep_jobs_that_would_restart_ddp_in_another_program_are_refused(monkeypatch):
    cfg = OmegaConf.create({"trainer": {"strategy": "ddp_find_unused_parameters_true", "devices": 2}})
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    # A launcher's worker process: `python -m submitit.core._submit`, which Lightning would restart.
    monkeypatch.setitem(
        sys.modules, "__main__", SimpleNamespace(__spec__=SimpleNamespace(name="submitit.core._submit"))
    )
    with pytest.raises(ConfigError, match="python -m submitit.core._submit"):
        shell.check_rank_launch(cfg)
    monkeypatch.setenv("SLURM_NTASKS", "2")  # SLURM started one task per device: nothing is restarted
    shell.check_rank_launch(cfg)
    monkeypatch.setitem(
        sys.modules, "__main__", SimpleNamespace(__spec__=SimpleNamespace(name="handwriting_gan"))
    )
    monkeypatch.delenv("SLURM_NTASKS")
    shell.check_rank_launch(cfg)  # the basic launcher: the job runs in `python -m handwriting_gan`
