"""The training command as a user runs it: run folders, multirun, resume, experiments and errors."""

import fnmatch
import logging
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from handwriting_gan.models.generator_file import load_generator
from tests_support import FAST

REPO = Path(__file__).resolve().parent.parent


def only(paths):
    paths = list(paths)
    assert len(paths) == 1, paths
    return paths[0]


def test_a_run_leaves_its_folder_under_outputs_name_timestamp(cli, tmp_path):
    result = cli(["debug=fast"])
    assert result.returncode == 0, result.stderr
    run = only((tmp_path / "outputs" / "debug").iterdir())
    assert OmegaConf.load(run / ".hydra" / "config.yaml").dataset.size == 128
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "figures" / "progress.gif").is_file()
    generator, _ = load_generator(run / "generator.pt")
    assert generator(torch.randn(2, 100)).shape == (2, 1, 28, 28)


def test_multirun_gives_one_folder_per_job(cli, tmp_path):
    result = cli(["-m", "model=mlp3,mlp4", *FAST, "trainer.max_epochs=1"])
    assert result.returncode == 0, result.stderr
    sweep = only((tmp_path / "outputs" / "debug").glob("multirun_*"))
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    depths = []
    for job in jobs:
        generator, _ = load_generator(job / "generator.pt")
        depths.append(generator.num_hidden_layers)
        assert (job / "figures" / "samples_epoch_001.png").is_file()
    assert depths == [3, 4]


def test_two_sweeps_started_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch):
    import datetime

    from handwriting_gan.train import prepare

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr("hydra.core.utils.datetime", Frozen)  # Hydra's ${now:...} resolver
    monkeypatch.chdir(tmp_path)
    argv = ["-m", "model=mlp3,mlp4", *FAST]
    folders = [Path(prepare(argv)[-1].removeprefix("hydra.sweep.dir=")) for _ in range(2)]
    base = tmp_path / "outputs" / "debug" / "multirun_2026-01-02_03-04-05"
    assert [f.resolve() for f in folders] == [base, base.with_name(base.name + "_2")]
    assert all(f.is_dir() for f in folders)
    chosen = ["-m", "seed=1,2", *FAST, f"hydra.sweep.dir={tmp_path / 'mine'}"]
    assert prepare(chosen) == chosen  # a folder the user chose is theirs


def test_resume_continues_the_run_in_place(cli, tmp_path):
    run = tmp_path / "run"
    first = cli([*FAST, "trainer.max_epochs=2", f"hydra.run.dir={run}"])
    assert first.returncode == 0, first.stderr
    config_before = (run / ".hydra" / "config.yaml").read_text()

    second = cli([f"resume={run}", "trainer.max_epochs=4"])
    assert second.returncode == 0, second.stderr
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["epoch"] == 3  # epochs 0..3: two new ones after the first two
    frames = sorted((run / "figures").glob("samples_epoch_*.png"))
    assert len(frames) == 4
    assert Image.open(run / "figures" / "progress.gif").n_frames == 4
    assert (run / ".hydra" / "config.yaml").read_text() == config_before  # the record is kept
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/d_loss_epoch")]
    assert len(steps) == 4 and len(set(steps)) == 4 and steps == sorted(steps)
    assert not list((tmp_path / "outputs").glob("*/*")), "resume must not create a new run folder"


def test_resume_of_a_folder_that_is_not_a_run_says_so(cli, tmp_path):
    (tmp_path / "not_a_run").mkdir()
    result = cli([f"resume={tmp_path / 'not_a_run'}"])
    assert result.returncode == 5
    assert "is not a run folder" in result.stderr and "Traceback" not in result.stderr


def test_a_finished_run_folder_is_never_reused(cli, tmp_path):
    run = tmp_path / "run"
    assert cli([*FAST, "trainer.max_epochs=1", f"hydra.run.dir={run}"]).returncode == 0
    weights = (run / "generator.pt").read_bytes()
    again = cli([*FAST, "trainer.max_epochs=1", f"hydra.run.dir={run}"])
    assert again.returncode == 5
    assert f"resume={run}" in again.stderr
    assert (run / "generator.pt").read_bytes() == weights


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where no GPU exists")
def test_gpu_request_without_gpu_is_a_clear_error(cli):
    result = cli(["dataset=mnist", "trainer.accelerator=gpu"])
    assert result.returncode == 3
    assert "trainer.accelerator=gpu" in result.stderr and "no CUDA GPU" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_mnist_offline_names_the_folder(cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli(["dataset=mnist", f"paths.data_dir={empty}", "dataset.download=false"])
    assert result.returncode == 4
    assert str(empty / "MNIST" / "raw") in result.stderr
    assert "train-images-idx3-ubyte" in result.stderr and "Traceback" not in result.stderr


def test_paper_mnist_experiment_is_the_study_setting(compose):
    cfg = compose(["experiment=paper_mnist"])
    assert cfg.name == "paper_mnist"
    assert cfg.dataset._target_.endswith("MNISTDataModule") and cfg.dataset.batch_size == 64
    assert list(cfg.model.generator.hidden) == [256, 512, 1024]
    assert cfg.trainer.max_epochs == 100 and cfg.optim.lr == 2e-4 and cfg.model.latent_dim == 100


def test_default_trains_on_the_embedded_sample(compose):
    cfg = compose([])
    assert cfg.dataset._target_.endswith("MNISTSampleDataModule")
    assert cfg.trainer.accelerator == "cpu"


def test_data_dir_follows_the_environment(compose, monkeypatch, tmp_path):
    monkeypatch.setenv("HWGAN_DATA_DIR", str(tmp_path / "elsewhere"))
    assert compose(["dataset=mnist"]).dataset.root == str(tmp_path / "elsewhere")


def test_trainer_arguments_are_overridable(compose):
    cfg = compose(["++trainer.limit_train_batches=7", "trainer=gpu", "trainer.precision=bf16-mixed"])
    assert cfg.trainer.limit_train_batches == 7
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"


@pytest.mark.parametrize(
    ("precision", "native", "warns"),
    [
        ("bf16-mixed", False, True),
        ("bf16-mixed", True, False),
        ("bf16-mixed", None, False),
        ("32-true", False, False),
    ],
)
def test_bf16_on_a_cpu_without_bf16_instructions_warns(
    compose, monkeypatch, caplog, precision, native, warns
):
    from handwriting_gan import assembly

    monkeypatch.setattr(assembly, "cpu_has_bf16", lambda: native)
    with caplog.at_level(logging.WARNING, logger=assembly.__name__):
        assembly.build(compose([*FAST, f"trainer.precision={precision}"]))
    assert ("without bfloat16 instructions" in caplog.text) is warns


@pytest.mark.parametrize(
    ("capability", "avx512_bf16", "amx", "expected"),
    [
        ("AVX2", False, False, False),
        ("AVX512", True, False, True),
        ("AVX512", False, True, True),
        ("SVE256", False, False, None),
    ],
)
def test_cpu_bf16_support_comes_from_torch(monkeypatch, capability, avx512_bf16, amx, expected):
    from handwriting_gan import assembly

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert assembly.cpu_has_bf16() is expected


def readme_run_folder_rows() -> list[str]:
    """The paths in README's run-folder table (the one headed `| path | what |`), e.g. `.hydra/`,
    `figures/samples_epoch_NNN.png`."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("| path | what |")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line.split("|")[1].strip().strip("`"))
    return rows


def covers(row: str, name: str) -> bool:
    """Whether README's row (a folder ending in `/`, or a file with NNN for an epoch number) names `name`."""
    if row.endswith("/"):
        return name.startswith(row)
    return fnmatch.fnmatch(name, row.replace("NNN", "[0-9][0-9][0-9]"))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The fast suite's one real command-line run (`python -m handwriting_gan debug=fast`, as a user
    types it): its console output and the run folder it left."""
    from tests_support import run_cli

    cwd = tmp_path_factory.mktemp("smoke")
    result = run_cli(["debug=fast"], cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result, only((cwd / "outputs" / "debug").iterdir())


def test_run_folder_layout_matches_the_readme(smoke_run):
    _, run = smoke_run
    names = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
    rows = readme_run_folder_rows()
    assert len(rows) >= 8, rows
    for row in rows:
        assert any(covers(row, name) for name in names), f"README lists {row}, the run has no such file"
    for name in names:
        assert any(covers(row, name) for row in rows), f"the run leaves {name}, which README does not list"
    # Files written atomically go through hidden partial or temporary names; none may be left behind.
    leftovers = [n for n in names if Path(n).name.startswith(".") or n.endswith((".partial", ".tmp"))]
    assert not leftovers, leftovers


@pytest.mark.process
def test_two_runs_started_together_get_folders_of_their_own(tmp_path):
    import subprocess
    import sys

    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "handwriting_gan", "debug=fast", f"seed={seed}"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    assert all(code == 0 for code, _ in results), results
    runs = sorted((tmp_path / "outputs" / "debug").iterdir())
    assert len(runs) == 2
    seeds = sorted(OmegaConf.load(run / ".hydra" / "config.yaml").seed for run in runs)
    assert seeds == [1, 2]
    for run in runs:
        assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
        assert (run / "generator.pt").is_file()


def test_the_console_names_the_run_folder_and_says_each_thing_once(smoke_run):
    result, run = smoke_run
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    said = [line for line in result.stderr.splitlines() if line.strip()]
    assert said[0] == f"Run folder: {run}"
    assert said[-1] == f"Finished. Run folder: {run}"
    repeated = {line for line in lines if lines.count(line) > 1}
    assert not repeated, repeated
    for noise in ("litmodels", "💡", "DeprecationWarning", "LeafSpec", "log_every_n_steps"):
        assert noise not in output


def test_a_few_shot_split_smaller_than_a_batch_trains_on_the_whole_split(cli, tmp_path):
    result = cli(["debug=fast", "dataset.per_class=2", "dataset.batch_size=64"])
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert output.count("each batch is the whole split") == 1
    assert "the 20 training images" in output
    run = only((tmp_path / "outputs" / "debug").iterdir())
    assert (run / "generator.pt").is_file()


@pytest.mark.parametrize("experiment", ["cdcgan_mnist", "fewshot_mnist", "cdcgan_emnist", "cdcgan_chars74k"])
def test_conditional_experiments_compose_and_build_their_game(compose, experiment):
    from handwriting_gan.config import instantiate

    cfg = compose([f"experiment={experiment}"])
    assert cfg.name == experiment and cfg.model.generator.num_classes == "auto"
    cfg.model.generator.num_classes = 10
    game = instantiate(cfg.model)
    assert game.num_classes == 10 and game.ema is not None
    assert (game.augment is not None) == (experiment in ("fewshot_mnist", "cdcgan_chars74k"))
