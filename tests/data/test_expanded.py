"""`dataset=expanded`: a real training split plus a synthetic export of it, read back in every format."""

import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from handwriting_gan.config import compose_config, instantiate
from handwriting_gan.data.exports import read_export
from handwriting_gan.data.fake import FakeDataModule
from handwriting_gan.errors import ConfigError, DataError
from handwriting_gan.export import export_run
from handwriting_gan.metrics.classifier import ClassifierSettings
from tests_support import FAST, write_untrained_run

TINY = ClassifierSettings(channels=(8, 16), feature_dim=32, batch_size=16, min_steps=0)
NUM_SYNTHETIC = 60
# The real dataset: debug=fast's fake data (128 training images, 10 classes), as the exported run saw it.
REAL = ["dataset@dataset.real=fake", "dataset.real.size=128"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """The same 60 draws of one run (untrained, fake data) exported in each format."""
    root = tmp_path_factory.mktemp("expanded")
    cfg = compose_config([*FAST, f"paths.cache_dir={root / 'cache'}"], run_dir=root / "run")
    run = write_untrained_run(cfg, root / "run")
    made = {}
    for fmt in ("imagefolder", "npz", "idx"):
        made[fmt] = root / fmt
        export_run(run, out=made[fmt], num_samples=NUM_SYNTHETIC, seed=4, classifier=TINY, format=fmt)
    return made


def expanded(synthetic, *overrides: str):
    cfg = compose_config(["dataset=expanded", *REAL, f"dataset.synthetic={synthetic}", *overrides])
    return instantiate(cfg.dataset)


def pairs(images: torch.Tensor, labels: torch.Tensor) -> Counter:
    """The (pixels, label) multiset: equal for the same images in any order."""
    return Counter((bytes(image.numpy()), int(label)) for image, label in zip(images, labels, strict=True))


def real_fake() -> FakeDataModule:
    return instantiate(compose_config([*FAST]).dataset)


def test_every_format_reads_back_as_the_same_labeled_images(exports):
    npz = read_export(exports["npz"])
    assert npz.images.shape == (NUM_SYNTHETIC, 1, 28, 28) and npz.images.dtype == torch.uint8
    assert npz.class_names == tuple(f"class_{i}" for i in range(10))
    for fmt in ("imagefolder", "idx"):
        other = read_export(exports[fmt])
        assert other.format == fmt and other.class_names == npz.class_names
        assert pairs(other.images, other.labels) == pairs(npz.images, npz.labels)
    alone = read_export(exports["npz"] / "dataset.npz")  # the .npz file by itself carries its class names
    assert torch.equal(alone.images, npz.images) and torch.equal(alone.labels, npz.labels)


@pytest.mark.parametrize(("ratio", "synthetic"), [("0", 0), ("0.25", 32), ("null", NUM_SYNTHETIC)])
def test_synthetic_ratio_sets_how_many_exported_images_join_the_real_training_images(
    exports, ratio, synthetic
):
    dm = expanded(exports["npz"], f"dataset.synthetic_ratio={ratio}")
    dm.setup("fit")
    images, labels = dm.split(train=True)
    real_images, real_labels = real_fake().split(train=True)
    assert len(real_images) == 128 and len(images) == 128 + synthetic
    assert torch.equal(images[:128], real_images) and torch.equal(labels[:128], real_labels)
    # Labels are kept: every added image carries the label the export gave it.
    export = read_export(exports["npz"])
    added = pairs(images[128:], labels[128:])
    assert sum(added.values()) == synthetic
    assert not added - pairs(export.images, export.labels)
    assert dm.class_names == export.class_names and dm.num_classes == 10


def test_a_smaller_ratio_picks_a_subset_of_a_larger_ones_images(exports):
    def added(ratio: str) -> Counter:
        images, labels = expanded(exports["idx"], f"dataset.synthetic_ratio={ratio}").split(train=True)
        return pairs(images[128:], labels[128:])

    small, large = added("0.1"), added("0.4")
    assert sum(small.values()) == 13 and sum(large.values()) == 51
    assert not small - large


def test_the_test_split_is_the_real_datasets_untouched(exports):
    dm = expanded(exports["imagefolder"], "dataset.synthetic_ratio=null")
    images, labels = dm.split(train=False)
    real_images, real_labels = real_fake().split(train=False)
    assert torch.equal(images, real_images) and torch.equal(labels, real_labels)


def test_a_real_dataset_restricted_to_some_classes_gets_only_their_synthetic_images(exports):
    dm = expanded(exports["npz"], "dataset.synthetic_ratio=null", "dataset.real.classes=[class_2,class_5]")
    _, labels = dm.split(train=True)
    assert set(labels.tolist()) <= {2, 5}
    export = read_export(exports["npz"])
    synthetic = int(torch.isin(export.labels, torch.tensor([2, 5])).sum())
    assert len(labels) == len(dm.real.split(train=True)[1]) + synthetic


def test_an_export_of_another_datasets_classes_is_refused_naming_both(exports):
    cfg = compose_config(["dataset=expanded", f"dataset.synthetic={exports['npz']}"])  # real: mnist_sample
    dm = instantiate(cfg.dataset)
    with pytest.raises(DataError) as error:
        dm.split(train=True)
    message = str(error.value)
    assert f"dataset.synthetic={exports['npz']} has classes [class_0 class_1" in message
    assert "dataset.real (MNISTSampleDataModule) has [0 1 2 3 4 5 6 7 8 9]" in message


def test_a_ratio_the_export_cannot_fill_says_the_most_it_can(exports):
    dm = expanded(exports["npz"], "dataset.synthetic_ratio=1.0")
    with pytest.raises(DataError) as error:
        dm.split(train=True)
    assert str(error.value).startswith("dataset.synthetic_ratio=1 asks for 128 synthetic images")
    assert f"holds {NUM_SYNTHETIC} of the selected classes" in str(error.value)
    assert "dataset.synthetic_ratio=0.4688 or less, null for all of them" in str(error.value)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (["dataset.synthetic=null"], ConfigError, r"dataset.synthetic=<export> is required"),
        (["dataset.synthetic_ratio=-1"], ConfigError, r"dataset.synthetic_ratio=-1 must be a number"),
        (["dataset.synthetic_ratio=true"], ConfigError, r"dataset.synthetic_ratio=True must be a number"),
        (
            ["dataset.image_shape=[1,32,32]"],
            ConfigError,
            r"differs from dataset.real.image_shape=\[1, 28, 28\]",
        ),
    ],
)
def test_bad_settings_are_refused_when_the_dataset_is_built(exports, overrides, error, message):
    with pytest.raises(error, match=message):
        expanded(exports["npz"], *overrides)


def test_a_missing_or_foreign_export_folder_says_what_to_pass(tmp_path):
    with pytest.raises(
        DataError, match=r"does not exist .* out folder of `python -m handwriting_gan.export`"
    ):
        expanded(tmp_path / "nowhere").split(train=True)
    (tmp_path / "mine" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match=r"is not an export: it has no export.json .* dataset=folder"):
        expanded(tmp_path / "mine").split(train=True)


def test_training_on_an_expanded_dataset_from_the_command_line(cli, exports, tmp_path, compose):
    args = ["dataset=expanded", *REAL, f"dataset.synthetic={exports['idx']}", "dataset.synthetic_ratio=0.25"]
    # debug=fast sizes its own fake dataset with dataset.size, a key dataset=expanded does not take.
    if "size" in compose([*args, *FAST]).dataset:
        args.append("~dataset.size")
    result = cli([*args, *FAST, "hydra.run.dir=run"])
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    assert (run / "generator.pt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    saved = (run / ".hydra" / "config.yaml").read_text()
    assert "handwriting_gan.data.expanded.ExpandedDataModule" in saved and str(exports["idx"]) in saved


def test_an_export_changed_after_it_was_written_is_refused(exports, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(exports["imagefolder"], copy)
    next(copy.glob("*/*.png")).unlink()
    with pytest.raises(
        DataError, match=f"records {NUM_SYNTHETIC} images but {copy} holds {NUM_SYNTHETIC - 1}"
    ):
        read_export(copy)
    shutil.copytree(exports["idx"], tmp_path / "idx")
    (tmp_path / "idx" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="lacks train-labels-idx1-ubyte.gz; export it again"):
        read_export(tmp_path / "idx")
    (tmp_path / "idx" / "export.json").write_text('{"num_samples_kept": 60}')
    with pytest.raises(DataError, match="does not name the export's format and class names"):
        read_export(tmp_path / "idx")
