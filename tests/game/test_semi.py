"""The semi-supervised game (game/semi.py) with the discriminator that classifies (models/ssgan.py): it
learns to classify from a few labels, logs its losses and validation accuracy, keeps the classifier as
classifier.pt, resumes exactly, and refuses settings that cannot work."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from handwriting_gan.assembly import build
from handwriting_gan.config import compose_config
from handwriting_gan.errors import ConfigError
from handwriting_gan.game.bookkeeping import WarmAverage
from handwriting_gan.models.classifier_file import load_classifier
from handwriting_gan.models.ssgan import SSGANConvDiscriminator, SSGANDiscriminator, WNLinear
from handwriting_gan.train import train
from tests_support import TOY_SEMI, train_in_process


def hidden_accuracy(classify, datamodule) -> float:
    split = datamodule.label_split()
    images = split.unlabelled.float().div(127.5).sub(1)
    return (classify(images).argmax(1) == datamodule.hidden_labels()).float().mean().item()


def test_the_classifier_average_ramps_its_decay_up_and_copies_counters():
    network = torch.nn.Linear(3, 2)
    network.register_buffer("steps", torch.tensor(0))
    average = WarmAverage(network, decay=0.5)
    expected = None
    for update in range(6):
        value = float(update + 1)
        with torch.no_grad():
            network.weight.fill_(value)
        network.steps.fill_(update)
        average.update_parameters(network)
        # The first update copies; after n updates the decay is min(0.5, (1 + n) / (10 + n)).
        n = update
        decay = min(0.5, (1 + n) / (10 + n))
        expected = value if expected is None else decay * expected + (1 - decay) * value
        assert torch.allclose(average.module.weight, torch.full((2, 3), expected))
        assert int(average.module.steps) == update
    assert not any(p.requires_grad for p in average.parameters())


@pytest.mark.parametrize("train_scale", [True, False])
def test_the_weight_normalised_layer_gives_autograds_outputs_and_gradients(train_scale):
    # The layer's hand-written backward (models/ssgan.py) against autograd through w = g * v / |v|.
    torch.manual_seed(0)
    layer = WNLinear(6, 4, train_scale=train_scale).double()
    layer(torch.randn(9, 6, dtype=torch.double))  # the data-dependent start sets g and the bias
    x = torch.randn(5, 6, dtype=torch.double, requires_grad=True)
    wanted = [x, layer.v, layer.bias] + ([layer.g] if train_scale else [])
    out = layer(x)
    weight = layer.v * (layer.g / layer.v.norm(dim=1)).unsqueeze(1)
    plain = torch.nn.functional.linear(x, weight, layer.bias)
    grad = torch.randn_like(out)
    assert torch.allclose(out, plain)
    got, expected = torch.autograd.grad(out, wanted, grad), torch.autograd.grad(plain, wanted, grad)
    for mine, autograds in zip(got, expected, strict=True):
        assert torch.allclose(mine, autograds)


@pytest.mark.parametrize(
    "network",
    [
        SSGANDiscriminator([32, 16], [1, 28, 28], num_labels=5),
        SSGANConvDiscriminator([8, 16], [1, 28, 28], 5),
    ],
)
def test_the_discriminator_classifies_with_logsumexp_as_its_real_logit(network):
    network.eval()
    images = torch.rand(6, 1, 28, 28) * 2 - 1
    logits, features = network.classify(images)
    assert logits.shape == (6, 5) and features.shape == (6, 16)
    assert torch.allclose(network(images), torch.logsumexp(logits, dim=1))


def test_the_convolutional_variant_trains_and_keeps_its_classifier(tmp_path):
    toy = [o for o in TOY_SEMI if not o.startswith(("model=", "model.discriminator."))]
    run = train_in_process(
        [*toy, "model=ssgan_conv", "model.discriminator.channels=[8,16]", "trainer.max_epochs=1"],
        tmp_path / "run",
    )
    classifier = load_classifier(run / "classifier.pt")
    assert isinstance(classifier.network, SSGANConvDiscriminator)
    assert classifier.label(torch.zeros(3, 1, 28, 28, dtype=torch.uint8))[0].shape == (3,)


def test_from_two_labels_per_class_the_game_labels_the_hidden_images_well_above_chance(tmp_path):
    run = train_in_process([*TOY_SEMI, "trainer.max_epochs=6"], tmp_path / "run")
    cfg = compose_config([*TOY_SEMI], run_dir=tmp_path / "again")
    datamodule = build(cfg)[2]
    classifier = load_classifier(run / "classifier.pt")
    accuracy = hidden_accuracy(classifier.logits, datamodule)
    assert accuracy > 0.6, accuracy  # chance is 0.25
    labels, confidence = classifier.label(datamodule.label_split().unlabelled)
    assert torch.equal(labels, classifier.logits(datamodule.label_split().unlabelled).argmax(1))
    assert ((confidence > 0) & (confidence <= 1)).all()
    assert classifier.class_names == tuple(f"class_{i}" for i in range(4))

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    for tag in ("train/d_supervised_epoch", "train/d_unsupervised_epoch", "train/labelled_accuracy_epoch"):
        assert len(events.Scalars(tag)) == 6, tag
    validation = [event.value for event in events.Scalars("val/accuracy")]
    assert len(validation) == 6 and "val/accuracy" in scalars
    assert validation[-1] >= 0.5


def test_a_resumed_run_ends_bit_identical(tmp_path):
    straight = train_in_process([*TOY_SEMI, "trainer.max_epochs=2"], tmp_path / "straight")
    stopped = train_in_process([*TOY_SEMI, "trainer.max_epochs=1"], tmp_path / "stopped")
    cfg = OmegaConf.load(stopped / ".hydra" / "config.yaml")
    cfg.resume, cfg.trainer.max_epochs = str(stopped), 2
    train(cfg)
    first = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    second = torch.load(stopped / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    kept = [load_classifier(run / "classifier.pt").network.state_dict() for run in (straight, stopped)]
    assert all(torch.equal(kept[0][name], kept[1][name]) for name in kept[0])


def test_the_learning_rate_falls_to_zero_over_the_last_epochs(tmp_path):
    cfg = compose_config([*TOY_SEMI, "trainer.max_epochs=4", "model.lr_decay_epochs=2"], run_dir=tmp_path)
    L.seed_everything(0, verbose=False)
    trainer, game, datamodule = build(cfg)
    seen = []
    game.on_train_epoch_end = lambda: seen.append(trainer.optimizers[0].param_groups[0]["lr"])
    trainer.fit(game, datamodule=datamodule)
    assert seen == pytest.approx([3e-3, 3e-3, 3e-3, 1.5e-3])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=ssgan_mlp", "dataset=fake"], "labels_per_class"),
        (["dataset=fake", "dataset.labels_per_class=3"], "model=ssgan_mlp"),
        (
            ["model=ssgan_mlp", "dataset=fake", "dataset.labels_per_class=3", "model.unsupervised_weight=-1"],
            "unsupervised_weight",
        ),
        (
            ["model=ssgan_mlp", "dataset=fake", "dataset.labels_per_class=3", "model.classifier_ema=1.5"],
            "classifier_ema",
        ),
        (["model=ssgan_mlp", "dataset=fake", "dataset.labels_per_class=3", "augment=diffaugment"], "augment"),
    ],
)
def test_settings_that_cannot_work_are_refused(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        build(compose_config(overrides, run_dir=tmp_path))


def test_a_classifier_file_that_cannot_be_used_says_why(tmp_path):
    from handwriting_gan.errors import CheckpointError
    from handwriting_gan.models.generator_file import save_generator
    from handwriting_gan.models.ssgan import SSGANGenerator

    with pytest.raises(CheckpointError, match="does not exist; a finished run of model=ssgan_mlp"):
        load_classifier(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a file of weights")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_classifier(tmp_path / "junk.pt")
    generator = SSGANGenerator(8, [16], [1, 28, 28])
    save_generator(
        tmp_path / "generator.pt", generator, {"_target_": "handwriting_gan.models.ssgan.SSGANGenerator"}
    )
    with pytest.raises(CheckpointError, match="is not a handwriting_gan classifier file"):
        load_classifier(tmp_path / "generator.pt")
