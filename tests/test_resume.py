"""Nothing lost: a run killed with SIGKILL mid-epoch and resumed ends bit-identical to an uninterrupted
one; checkpoints that cannot be resumed from say why."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests_support import FAST

# Every test here starts processes of its own: `make test-full` runs them.
pytestmark = pytest.mark.process

TESTS = Path(__file__).resolve().parent
RUN = [
    "dataset=fake",
    "dataset.size=640",
    "dataset.batch_size=32",
    "trainer.max_epochs=3",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=5",
    "model.generator.hidden=[64,128]",
    "model.discriminator.hidden=[128,64]",
]


def start(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(TESTS), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "handwriting_gan", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process, timeout=300):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def weights(run: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return checkpoint["state_dict"]


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    finish(start([*RUN, f"hydra.run.dir={straight}"], tmp_path))

    marker = tmp_path / "paused"
    pause = [
        "+callbacks.pause._target_=tests_support.PauseAt",
        "+callbacks.pause.epoch=1",
        "+callbacks.pause.batch=7",
        f"+callbacks.pause.marker={marker}",
    ]
    process = start([*RUN, *pause, f"hydra.run.dir={killed}"], tmp_path)
    deadline = time.time() + 120
    while not marker.exists():
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline, "the run never reached epoch 1, batch 7"
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "generator.pt").exists()  # it really died mid-run
    assert torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0

    finish(start([f"resume={killed}", "~callbacks.pause"], tmp_path))

    expected, resumed = weights(straight), weights(killed)
    assert expected.keys() == resumed.keys()
    for name in expected:  # generator and discriminator, bit for bit
        assert torch.equal(expected[name], resumed[name]), name

    # TensorBoard: the steps the killed run logged after its checkpoint are purged, not duplicated.
    events = EventAccumulator(str(killed / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/d_loss_step")]
    assert len(steps) == len(set(steps)) and steps == sorted(steps)
    reference = EventAccumulator(str(straight / "tensorboard"))
    reference.Reload()
    assert steps == [e.step for e in reference.Scalars("train/d_loss_step")]


def test_truncated_checkpoint_is_refused_without_touching_the_run(cli, tmp_path):
    run = tmp_path / "run"
    assert cli([*FAST, f"hydra.run.dir={run}"]).returncode == 0
    checkpoint = run / "checkpoints" / "last.ckpt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:10_000])
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run.rglob("*"))
    result = cli([f"resume={run}", "trainer.max_epochs=3"])
    assert result.returncode == 5
    assert "truncated or not a checkpoint" in result.stderr and "Traceback" not in result.stderr
    after = sorted((p.name, p.stat().st_mtime_ns) for p in run.rglob("*") if "tfevents" not in p.name)
    assert after == [b for b in before if "tfevents" not in b[0]]


def test_checkpoint_of_another_model_is_refused(cli, tmp_path):
    run = tmp_path / "run"
    assert cli([*FAST, f"hydra.run.dir={run}"]).returncode == 0
    result = cli([f"resume={run}", "model=mlp4", "trainer.max_epochs=3"])
    assert result.returncode == 5
    assert "written for another model" in result.stderr and "Traceback" not in result.stderr
