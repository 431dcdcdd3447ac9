"""`trainer=ddp` on the CPU (two processes over gloo): one run folder with one set of outputs, a shard of
every epoch per rank, and in a sweep each job trained once by its own two processes."""

import hashlib
import json
import os
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests_support import FAST, run_cli

# Every test here starts processes of its own: `make test-full` runs them.
pytestmark = pytest.mark.process

TESTS = Path(__file__).resolve().parent
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "threads=1"]


class RecordShard(L.Callback):
    """Appends (rank, epoch, d_steps, a hash of each image) of every trained batch to
    `<folder>/rank<r>.jsonl`."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        hashes = [hashlib.sha1(image.cpu().numpy().tobytes()).hexdigest()[:16] for image in batch[0]]
        record = [trainer.global_rank, trainer.current_epoch, pl_module.d_steps, hashes]
        with open(Path(self.folder) / f"rank{trainer.global_rank}.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")


RECORD = ["+callbacks.record._target_=test_ddp.RecordShard", "+callbacks.record.folder=${paths.run_dir}"]


def cli(args: list[str], cwd: Path):
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    result = run_cli(args, cwd=cwd, timeout=240, env={"PYTHONPATH": path})
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def shards(run: Path) -> dict[int, list]:
    return {
        rank: [json.loads(line) for line in (run / f"rank{rank}.jsonl").read_text().splitlines()]
        for rank in (0, 1)
    }


def test_ddp_on_cpu_writes_one_set_of_outputs_and_gives_each_rank_its_shard(tmp_path):
    run = tmp_path / "run"
    result = cli([*FAST, *DDP, *RECORD, f"hydra.run.dir={run}"], tmp_path)

    # Rank 1 ran as the same run, in the same folder: its log is there and no other folder was made.
    assert (run / "train_ddp_process_1.log").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert result.stderr.count("Finished. Run folder") == 1  # rank 0 speaks for the run

    # Outputs are rank 0's alone: one event file, one grid per epoch, a GIF, one generator.
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (run / "figures").glob("samples_epoch_*.png")) == [
        "samples_epoch_001.png",
        "samples_epoch_002.png",
    ]
    assert Image.open(run / "figures" / "progress.gif").n_frames == 2
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/d_loss_step")]
    assert steps == sorted(set(steps)) and len(steps) == 2 * 4  # debug=fast: 4 batches a rank an epoch
    generator = torch.load(run / "generator.pt", map_location="cpu", weights_only=True)
    assert generator["state_dict"]

    # Each rank trains on its own half of every epoch: 4 of the 8 batches of 16 of the 128 images.
    seen = shards(run)
    for epoch in (0, 1):
        images = {
            rank: [h for r, e, _, hashes in records if e == epoch for h in hashes]
            for rank, records in seen.items()
        }
        assert len(images[0]) == len(images[1]) == 4 * 16
        assert not set(images[0]) & set(images[1])
        assert len(set(images[0]) | set(images[1])) == 128


def test_a_sweep_with_ddp_trains_each_job_once_in_its_own_folder(tmp_path):
    sweep = tmp_path / "sweep"
    cli(
        ["-m", *FAST, *DDP, *RECORD, "trainer.max_epochs=1", "d_steps=1,2", f"hydra.sweep.dir={sweep}"],
        tmp_path,
    )
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]  # the sweep ran once
    assert not (tmp_path / "outputs").exists()  # no rank started a sweep or a run of its own
    for job, d_steps in (("0", 1), ("1", 2)):
        run = sweep / job
        assert OmegaConf.load(run / ".hydra" / "config.yaml").d_steps == d_steps
        assert (run / "generator.pt").is_file() and (run / "train_ddp_process_1.log").is_file()
        seen = shards(run)
        assert {d for records in seen.values() for _, _, d, _ in records} == {d_steps}  # both ranks
        assert len(seen[0]) == len(seen[1]) == 4
