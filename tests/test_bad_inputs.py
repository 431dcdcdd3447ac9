"""Every user mistake through the real command line: one message naming the cause, a distinct exit
code, no traceback, and nothing written or changed."""

from pathlib import Path

import pytest

from handwriting_gan.errors import ConfigError
from handwriting_gan.train import prepare
from tests_support import FAST, run_cli

CONFIG, DATA, CHECKPOINT = 3, 4, 5

# Checked before any folder exists, by the training command's pre-flight (composition, the schema,
# and the constructor of every object the run builds). Run in-process: each would cost a process start.
CONFIG_MISTAKES = [
    (["dataset=foo"], "Available options in 'dataset'"),
    (["model=mlp9"], "Available options in 'model'"),
    (["model=_game"], "model=_game is not allowed"),
    (["experiment=nope"], "Available options in 'experiment'"),
    (["seed=abc"], "full_key: seed"),
    (["nope=1"], "nope is not a known key of conf/train.yaml."),
    (
        ["datset.batch_size=8"],
        "datset.batch_size: datset is not a known key of conf/train.yaml. Did you mean dataset?",
    ),
    (["trainer.limit_train_batches=3"], "add it with +trainer.limit_train_batches=3"),
    (["+trainer.max_epoch=3"], "Did you mean trainer.max_epochs?"),
    (["+modle=mlp4"], "Did you mean model?"),
    (["++dataset.batchsize=8"], "Did you mean dataset.batch_size?"),
    (["dataset.batch_size=[1"], "no viable alternative"),
    (["dataset.batch_size=0"], "dataset.batch_size=0 must be a positive integer"),
    (["dataset.batch_size=-5"], "dataset.batch_size=-5 must be a positive integer"),
    (["optim.lr=0"], "optim.lr=0.0 is not allowed"),
    (["optim.betas=[0.5]"], "optim.betas=[0.5] is not allowed"),
    (["optim.betas=[0.5,1.5]"], "two numbers in [0, 1)"),
    (["d_steps=0"], "d_steps=0 is not allowed"),
    (["model.loss=wgan"], "model.loss=wgan is not allowed"),
    (["model.generator.activation_fn=tanh"], "activation='tanh' is not one of"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0 is not allowed"),
    (["dataset.sample_grid=0"], "dataset.sample_grid=0"),
    (["callbacks.samples.nrow=0"], "callbacks.samples.nrow=0"),
    (["model.generator.hidden=[]"], "model.generator.hidden=[]"),
    (["model.discriminator.hidden=[64,-1]"], "model.discriminator.hidden=[64, -1]"),
    (["model.discriminator.dropout=1.0"], "model.discriminator.dropout=1.0"),
    (["model.latent_dim=0"], "model.latent_dim=0"),
    (["dataset.image_shape=[1,28]"], "three positive sizes"),
    (["model.generator.image_shape=[1,32,32]"], "the discriminator takes [1, 28, 28]"),
    (
        ["model.generator.image_shape=[1,32,32]", "model.discriminator.image_shape=[1,32,32]"],
        "must match dataset.image_shape=[1, 28, 28]",
    ),
    (["trainer.accelerator=quantum"], "expected one of cpu, gpu"),
    (["threads=0"], "threads=0 is not allowed"),
    (["dataset.per_class=0"], "dataset.per_class=0 must be a positive number"),
    (["callbacks.checkpoint.every_n_epochs=0"], "callbacks.checkpoint.every_n_epochs=0"),
    (["model.cuda_graph=true"], "model.cuda_graph=true records CUDA graphs and needs a GPU"),
    (["model.cuda_graph=yes"], "model.cuda_graph=yes is not allowed"),
    (["model.mode_seeking=-1"], "model.mode_seeking=-1 is not allowed"),
    (["dataset.device_resident=maybe"], "dataset.device_resident=maybe is not allowed"),
]
# Through the real command line: one of each stage, including mistakes found once the data is read.
CLI_MISTAKES = [
    (["model=mlp9"], "Available options in 'model'"),
    (["+trainer.max_epoch=3"], "Did you mean trainer.max_epochs?"),
    (["model.discriminator.dropout=1.0"], "model.discriminator.dropout=1.0"),
    (["dataset.per_class=100000"], "has only 863"),
    (["dataset.classes=[X]"], "names ['X']"),
]


def assert_refused(result, code: int, message: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.count("error: ") == 1  # one message


def tree(folder: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
    )


@pytest.mark.parametrize(("overrides", "message"), CONFIG_MISTAKES, ids=lambda v: str(v)[:40])
def test_config_mistakes_are_found_before_any_folder(tmp_path, monkeypatch, overrides, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        prepare(overrides)
    assert message in str(error.value)
    assert "\n" not in str(error.value)  # printed as one line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("overrides", "message"), CLI_MISTAKES, ids=lambda v: str(v)[:40])
def test_config_mistakes_through_the_command_line(cli, tmp_path, overrides, message):
    assert_refused(cli(overrides), CONFIG, message)
    assert not (tmp_path / "outputs").exists()


# Every command checks its command line as training does (handwriting_gan.shell.command), not with
# Hydra's own message and exit code 1.
COMMANDS = [
    ("handwriting_gan", "train"),
    ("handwriting_gan.evaluate", "evaluate"),
    ("handwriting_gan.export", "export"),
    ("handwriting_gan.study", "study"),
    ("handwriting_gan.expand", "expand"),
    ("handwriting_gan.study.pool", "pool_study"),
]


@pytest.mark.process
@pytest.mark.parametrize(("module", "config"), COMMANDS, ids=[c for _, c in COMMANDS])
def test_an_unknown_key_is_one_line_and_code_3_on_every_command(tmp_path, module, config):
    result = run_cli(["bogus=1"], cwd=tmp_path, module=module)
    assert_refused(result, CONFIG, "bogus")
    assert result.stderr.splitlines()[-1] == f"error: bogus is not a known key of conf/{config}.yaml."
    assert list(tmp_path.iterdir()) == []


def test_gpu_requested_where_there_is_none(cli, tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert_refused(cli(["trainer=gpu"]), CONFIG, "no CUDA GPU is visible")
    assert not (tmp_path / "outputs").exists()


def test_output_dir_that_is_a_file(cli, tmp_path):
    (tmp_path / "taken").write_text("not a folder")
    assert_refused(cli(["paths.output_dir=taken"]), CONFIG, "is a file, not a folder")
    assert (tmp_path / "taken").read_text() == "not a folder"


def test_run_dir_below_a_file(cli, tmp_path):
    (tmp_path / "taken").write_text("x")
    assert_refused(cli([f"hydra.run.dir={tmp_path / 'taken' / 'run'}"]), CONFIG, "is a file")


def test_missing_mnist_offline(cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli(["dataset=mnist", f"paths.data_dir={empty}", "dataset.download=false"])
    assert_refused(result, DATA, "train-images-idx3-ubyte")
    assert list(empty.iterdir()) == [] and not (tmp_path / "outputs").exists()


def test_truncated_mnist_file(cli, tmp_path, mnist_root):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source in (mnist_root / "MNIST" / "raw").iterdir():
        data = source.read_bytes()
        (raw / source.name).write_bytes(data[: len(data) // 2] if "train-images" in source.name else data)
    before = tree(tmp_path / "data")
    result = cli(["dataset=mnist", f"paths.data_dir={tmp_path / 'data'}", "dataset.download=false"])
    assert_refused(result, DATA, "truncated or corrupt")
    assert tree(tmp_path / "data") == before and not (tmp_path / "outputs").exists()


def test_corrupt_chars74k_archive(cli, tmp_path):
    archive = tmp_path / "data" / "Chars74K" / "EnglishHnd.tgz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"not a tgz" * 1000)
    result = cli(
        [
            "dataset=chars74k",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "dataset.download=false",
        ]
    )
    assert_refused(result, DATA, "md5")
    assert archive.read_bytes() == b"not a tgz" * 1000
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.pt"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run folder as the training command leaves it, trained in process."""
    from tests_support import train_in_process

    return train_in_process(FAST, tmp_path_factory.mktemp("finished") / "run")


def test_resume_of_a_missing_folder(cli, tmp_path):
    assert_refused(cli([f"resume={tmp_path / 'nowhere'}"]), CHECKPOINT, "does not exist")


def test_resume_of_a_folder_that_is_not_a_run(cli, tmp_path):
    (tmp_path / "mine").mkdir()
    assert_refused(cli([f"resume={tmp_path / 'mine'}"]), CHECKPOINT, "is not a run folder")


def test_resume_of_a_run_without_checkpoint(cli, tmp_path):
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text("{}\n")
    (tmp_path / "run" / ".hydra" / "overrides.yaml").write_text("[]\n")
    assert_refused(cli([f"resume={tmp_path / 'run'}"]), CHECKPOINT, "has no checkpoints/last.ckpt")


def test_new_run_into_a_finished_run_folder(cli, finished_run):
    before = tree(finished_run)
    assert_refused(cli([*FAST, f"hydra.run.dir={finished_run}"]), CHECKPOINT, "already holds a run")
    assert tree(finished_run) == before


def test_resume_with_a_checkpoint_from_another_version(cli, finished_run, tmp_path):
    import shutil

    import torch

    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["handwriting_gan"]["checkpoint_format"] = 99
    torch.save(checkpoint, run / "checkpoints" / "last.ckpt")
    before = tree(run)
    assert_refused(cli([f"resume={run}", "trainer.max_epochs=4"]), CHECKPOINT, "checkpoint format 99")
    assert tree(run) == before


def test_truncated_generator_file(tmp_path, finished_run):
    from handwriting_gan.errors import CheckpointError
    from handwriting_gan.models.generator_file import load_generator

    broken = tmp_path / "generator.pt"
    broken.write_bytes((finished_run / "generator.pt").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_generator(broken)


def test_generator_file_with_weights_of_another_model(tmp_path, finished_run):
    import torch

    from handwriting_gan.errors import CheckpointError
    from handwriting_gan.models.generator_file import load_generator

    payload = torch.load(finished_run / "generator.pt", weights_only=True)
    payload["config"]["hidden"] = [32, 32]
    torch.save(payload, tmp_path / "generator.pt")
    with pytest.raises(CheckpointError, match="do not fit the generator"):
        load_generator(tmp_path / "generator.pt")


def character_folder(root: Path, classes: list[str], per_class: int = 3) -> Path:
    """A folder of drawn characters, one sub-folder per class."""
    from PIL import Image, ImageDraw

    for name in classes:
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            image = Image.new("L", (40, 40), 255)
            ImageDraw.Draw(image).line([(8 + index, 6), (30, 34)], fill=0, width=4)
            image.save(root / name / f"{index}.png")
    return root


def unreadable_image(root: Path) -> Path:
    character_folder(root, ["A", "B"])
    (root / "A" / "1.png").write_bytes(b"not a png")
    return root


def class_without_usable_image(root: Path) -> Path:
    character_folder(root, ["A"])
    (root / "B").mkdir()
    (root / "B" / "0.png").write_bytes(b"not a png")
    return root


@pytest.mark.parametrize(
    ("setup", "extra", "message"),
    [
        (lambda root: root, [], "does not exist"),
        (
            lambda root: (root.parent.mkdir(parents=True, exist_ok=True), root.write_text("x"), root)[-1],
            [],
            "is a file",
        ),
        # One bad file is skipped by default (tests/data/test_folder.py); strict refuses it by name.
        (unreadable_image, ["dataset.strict=true"], "1.png"),
        (class_without_usable_image, [], "B"),
    ],
    ids=["missing", "a file", "unreadable image, strict", "a class with no usable image"],
)
def test_folder_dataset_mistakes_exit_4_and_write_nothing(cli, tmp_path, setup, extra, message):
    data = setup(tmp_path / "letters")
    before = tree(tmp_path)
    result = cli(["dataset=folder", f"dataset.path={data}", "trainer.max_epochs=1", *extra])
    assert_refused(result, DATA, message)
    assert tree(tmp_path) == before  # no run folder, no cache, the data untouched


def test_a_conditional_model_on_a_single_class_folder_is_refused(cli, tmp_path):
    data = character_folder(tmp_path / "letters", ["A"], per_class=4)
    args = ["dataset=folder", f"dataset.path={data}", "dataset.test_per_class=1", "trainer.max_epochs=1"]
    assert_refused(cli([*args, "model=cgan_mlp"]), DATA, "needs at least two")
    assert not (tmp_path / "outputs").exists()
