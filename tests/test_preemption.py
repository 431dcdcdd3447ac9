"""Preemption: a run sent SIGTERM or SIGUSR1 mid-epoch saves that batch's state and exits with 0, and
its resume, like one from a mid-epoch `every_n_batches` checkpoint, ends as the uninterrupted run."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# Every test here starts processes of its own: `make test-full` runs them.
pytestmark = pytest.mark.process

TESTS = Path(__file__).resolve().parent
RUN = [
    "dataset=fake",
    "dataset.size=640",
    "dataset.batch_size=32",  # 20 batches an epoch
    "trainer.max_epochs=3",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=3",
    "model.generator.hidden=[64,128]",
    "model.discriminator.hidden=[128,64]",
]


class PauseUntilSignal(L.Callback):
    """At (epoch, batch) writes `marker` and waits until the run has received a stop signal (at most
    `seconds`), so that a test stops the run at a known batch."""

    def __init__(self, epoch: int, batch: int, marker: str, seconds: float = 120.0) -> None:
        self.epoch, self.batch, self.marker, self.seconds = epoch, batch, marker, seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            Path(self.marker).write_text("paused")
            deadline = time.monotonic() + self.seconds
            while not trainer.received_sigterm and time.monotonic() < deadline:
                time.sleep(0.05)


class RecordBatches(L.Callback):
    """Appends (epoch, batch index, a hash of the images) of every trained batch to `path`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        digest = hashlib.sha1(batch[0].cpu().numpy().tobytes()).hexdigest()[:16]
        with open(self.path, "a") as handle:
            handle.write(json.dumps([trainer.current_epoch, batch_idx, digest]) + "\n")


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "handwriting_gan", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def pause(
    epoch: int, batch: int, marker: Path, target: str = "test_preemption.PauseUntilSignal"
) -> list[str]:
    return [
        f"+callbacks.pause._target_={target}",
        f"+callbacks.pause.epoch={epoch}",
        f"+callbacks.pause.batch={batch}",
        f"+callbacks.pause.marker={marker}",
    ]


def record(path: Path) -> list[str]:
    return ["+callbacks.record._target_=test_preemption.RecordBatches", f"+callbacks.record.path={path}"]


def wait_for(marker: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, f"the run never wrote {marker}"
        time.sleep(0.1)


def batches(path: Path) -> list[tuple[int, int, str]]:
    return [tuple(json.loads(line)) for line in path.read_text().splitlines()]


def checkpoint(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def batches_done(state: dict) -> int:
    return state["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["completed"]


def assert_same_training(expected_run: Path, resumed_run: Path) -> None:
    """Bit-identical weights of both players, and TensorBoard steps as the uninterrupted run's, once."""
    expected, resumed = checkpoint(expected_run)["state_dict"], checkpoint(resumed_run)["state_dict"]
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name
    steps = {}
    for run in (expected_run, resumed_run):
        events = EventAccumulator(str(run / "tensorboard"))
        events.Reload()
        steps[run] = [e.step for e in events.Scalars("train/d_loss_step")]
    assert len(steps[resumed_run]) == len(set(steps[resumed_run]))  # no step logged twice
    assert steps[resumed_run] == steps[expected_run]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_stop_signal_ends_the_run_cleanly_and_resume_finishes_it(tmp_path, signum):
    run, marker = tmp_path / "run", tmp_path / "paused"
    process = start([*RUN, "trainer.max_epochs=2", *pause(1, 5, marker), f"hydra.run.dir={run}"], tmp_path)
    wait_for(marker, process)
    os.kill(process.pid, signum)
    output = finish(process, timeout=120)  # exit status 0: a scheduler sees a clean stop
    assert "Stopped by a signal at epoch 2, batch 6 of 20" in output
    assert f"Continue with: python -m handwriting_gan resume={run}" in output and "Traceback" not in output
    assert not (run / "generator.pt").exists()  # not finished: evaluate and export refuse it

    finish(start([f"resume={run}", "~callbacks.pause"], tmp_path))
    state = checkpoint(run)
    assert state["epoch"] == 1 and state["global_step"] == 2 * 20 * 2  # every batch trained once
    assert (run / "generator.pt").is_file()


def test_a_stop_signal_mid_epoch_saves_the_batch_in_progress(tmp_path):
    run, marker = tmp_path / "run", tmp_path / "paused"
    process = start([*RUN, "trainer.max_epochs=1", *pause(0, 5, marker), f"hydra.run.dir={run}"], tmp_path)
    wait_for(marker, process)
    os.kill(process.pid, signal.SIGTERM)
    output = finish(process, timeout=120)
    state = checkpoint(run)
    assert state["epoch"] == 0 and batches_done(state) == 6  # the paused batch finished, then it stopped
    assert f"epoch 1, batch 6 of 20; saved {run / 'checkpoints' / 'last.ckpt'}" in output


def test_resume_after_sigterm_continues_with_the_next_batch(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    finish(start([*RUN, *record(tmp_path / "straight.jsonl"), f"hydra.run.dir={straight}"], tmp_path))

    marker, seen = tmp_path / "paused", tmp_path / "stopped.jsonl"
    process = start([*RUN, *record(seen), *pause(1, 7, marker), f"hydra.run.dir={stopped}"], tmp_path)
    wait_for(marker, process)
    os.kill(process.pid, signal.SIGTERM)
    finish(process)
    resumed = tmp_path / "resumed.jsonl"
    finish(start([f"resume={stopped}", "~callbacks.pause", f"callbacks.record.path={resumed}"], tmp_path))

    expected = batches(tmp_path / "straight.jsonl")
    assert batches(seen) == expected[: 20 + 8]  # epoch 1, then epoch 2 up to the paused batch
    assert batches(resumed) == expected[20 + 8 :]  # the rest, each batch once, in the same order
    assert_same_training(straight, stopped)


def test_mid_epoch_checkpoint_resumes_exactly_with_two_discriminator_steps(tmp_path):
    every = ["d_steps=2", "callbacks.checkpoint.every_n_batches=5"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    finish(start([*RUN, *every, *record(tmp_path / "straight.jsonl"), f"hydra.run.dir={straight}"], tmp_path))

    marker, seen = tmp_path / "paused", tmp_path / "killed.jsonl"
    paused = pause(1, 13, marker, target="tests_support.PauseAt")
    process = start([*RUN, *every, *record(seen), *paused, f"hydra.run.dir={killed}"], tmp_path)
    wait_for(marker, process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    state = checkpoint(killed)
    assert (state["epoch"], batches_done(state) + 1) == (1, 10)  # saved after batch 10 of epoch 2
    assert state["global_step"] == (20 + 10) * 3  # two D steps and one G step a batch

    resumed = tmp_path / "resumed.jsonl"
    finish(start([f"resume={killed}", "~callbacks.pause", f"callbacks.record.path={resumed}"], tmp_path))
    expected = batches(tmp_path / "straight.jsonl")
    assert batches(seen) == expected[: 20 + 14]  # killed before batch 14 of epoch 2 trained
    assert batches(resumed) == expected[20 + 10 :]  # from the checkpoint on: batch 11 of epoch 2
    assert_same_training(straight, killed)


def test_a_requeued_slurm_job_continues_its_own_run(tmp_path):
    """The same command started again in the same folder after a stop: refused as a second run, except
    in a job SLURM requeued (SLURM_RESTART_COUNT > 0), which continues from the folder's checkpoint."""
    run, marker = tmp_path / "run", tmp_path / "paused"
    command = [*RUN, "trainer.max_epochs=2", f"hydra.run.dir={run}"]
    process = start([*command, *pause(0, 5, marker)], tmp_path)
    wait_for(marker, process)
    os.kill(process.pid, signal.SIGTERM)
    finish(process, timeout=120)

    again = start(command, tmp_path)
    output, _ = again.communicate(timeout=120)
    assert again.returncode != 0 and "already holds a run" in output

    os.environ["SLURM_RESTART_COUNT"] = "1"
    try:
        output = finish(start(command, tmp_path))
    finally:
        del os.environ["SLURM_RESTART_COUNT"]
    assert f"Requeued job: continuing {run}" in output
    state = checkpoint(run)
    assert state["epoch"] == 1 and state["global_step"] == 2 * 20 * 2  # every batch trained once
    assert (run / "generator.pt").is_file()
