"""The run folder module: layout checks, claiming a folder of one's own, and finding runs."""

import os
import threading

import pytest

from handwriting_gan.errors import CheckpointError
from handwriting_gan.runs import RunFolder, claim, find_runs, latest_finished_run


def fake_run(path, name="default", finished=True):
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "config.yaml").write_text(f"name: {name}\n")
    if finished:
        (path / "generator.pt").write_bytes(b"x")
    return RunFolder(path)


def test_claims_made_at_the_same_moment_get_different_folders(tmp_path):
    target = tmp_path / "outputs" / "default" / "2026-11-26_10-00-00"
    claimed, start = [], threading.Barrier(8)

    def take():
        start.wait()
        claimed.append(claim(target))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(claimed)) == 8 and target in claimed
    assert all(path.is_dir() and not any(path.iterdir()) for path in claimed)


def test_the_checks_follow_what_the_folder_holds(tmp_path):
    run = fake_run(tmp_path / "run", finished=False)
    assert run.is_run() and not run.is_finished() and not run.holds_run()
    with pytest.raises(CheckpointError, match="has no generator.pt"):
        run.require_finished()
    run.checkpoint.parent.mkdir()
    run.checkpoint.write_bytes(b"x")
    assert run.holds_run()
    with pytest.raises(CheckpointError, match="already holds a run"):
        run.require_new()
    with pytest.raises(CheckpointError, match="does not exist"):
        RunFolder(tmp_path / "run" / "figures").require_resumable()
    (tmp_path / "run" / "figures").mkdir()
    with pytest.raises(CheckpointError, match="is not a run folder"):
        RunFolder(tmp_path / "run" / "figures").require_resumable()


def test_latest_finished_run_finds_multirun_jobs_and_skips_smoke_and_unfinished_runs(tmp_path):
    outputs = tmp_path / "outputs"
    old = fake_run(outputs / "default" / "a")
    job = fake_run(outputs / "sweep" / "multirun_b" / "1")
    fake_run(outputs / "debug" / "c", name="debug")
    fake_run(outputs / "default" / "d", finished=False)
    for age, run in enumerate(
        [old, job, RunFolder(outputs / "debug" / "c"), RunFolder(outputs / "default" / "d")]
    ):
        os.utime(run.config_file, (1_000_000 + age, 1_000_000 + age))
    assert [r.path.name for r in find_runs(outputs)] == ["a", "1", "c", "d"]
    assert latest_finished_run(outputs) == job
    assert latest_finished_run(outputs, skip_names=()) == RunFolder(outputs / "debug" / "c")
    assert latest_finished_run(tmp_path / "nowhere") is None
