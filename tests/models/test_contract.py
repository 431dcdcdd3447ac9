"""A new model is one network file and one YAML file: a toy model defined here trains, samples,
evaluates and exports through the package without any change to it."""

import json
import sys

import torch
from omegaconf import OmegaConf
from torch import nn

from handwriting_gan.config import compose_config
from handwriting_gan.evaluate import evaluate_run
from handwriting_gan.export import export_run
from handwriting_gan.metrics.classifier import ClassifierSettings
from handwriting_gan.models.contract import Discriminator, Generator
from handwriting_gan.models.generator_file import load_generator
from handwriting_gan.train import train
from tests_support import FAST


class ToyGenerator(Generator):
    """Noise -> one linear layer -> tanh, with a per-class bias image when conditional."""

    def __init__(self, latent_dim, image_shape, num_classes=0):
        super().__init__(latent_dim, image_shape, num_classes)
        size = int(torch.tensor(self.image_shape).prod())
        self.linear = nn.Linear(latent_dim, size)
        self.class_bias = nn.Embedding(max(num_classes, 1), size)

    def forward(self, z, labels=None):
        labels = self.check_labels(labels, z.size(0))
        out = self.linear(z)
        if labels is not None:
            out = out + self.class_bias(labels)
        return torch.tanh(out).view(z.size(0), *self.image_shape)


class ToyDiscriminator(Discriminator):
    def __init__(self, image_shape, num_classes=0):
        super().__init__(image_shape, num_classes)
        size = int(torch.tensor(self.image_shape).prod())
        self.linear = nn.Linear(size, max(num_classes, 1))

    def forward(self, images, labels=None):
        labels = self.check_labels(labels, images.size(0))
        logits = self.linear(images.flatten(1))
        return logits[:, 0] if labels is None else logits.gather(1, labels[:, None]).squeeze(1)


# The test module's classes are importable by name for `_target_`, as a network file's would be.
sys.modules.setdefault("toy_models", sys.modules[__name__])

#: The model's YAML file, conf/model/<name>.yaml: the game's shared settings (conf/model/_game.yaml),
#: the networks, and what differs.
TOY_YAML = """\
defaults:
  - _game
  - _self_

latent_dim: 8
loss: hinge
generator:
  _target_: toy_models.ToyGenerator
  latent_dim: ${model.latent_dim}
  image_shape: ${dataset.image_shape}
  num_classes: auto
discriminator:
  _target_: toy_models.ToyDiscriminator
  image_shape: ${dataset.image_shape}
  num_classes: ${model.generator.num_classes}
"""


def test_a_toy_conditional_model_trains_samples_evaluates_and_exports(tmp_path):
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "toy.yaml").write_text(TOY_YAML)
    run = tmp_path / "run"
    cfg = compose_config(
        [
            *FAST,
            "model=toy",
            f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
            f"paths.cache_dir={tmp_path / 'cache'}",
        ],
        run_dir=run,
    )
    train(cfg)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))

    generator, meta = load_generator(run / "generator.pt")
    assert isinstance(generator, ToyGenerator) and generator.num_classes == 10 and meta["latent_dim"] == 8
    z = torch.randn(2, 8)
    assert not torch.equal(generator(z, torch.tensor([0, 0])), generator(z, torch.tensor([0, 1])))
    assert (run / "figures" / "samples_epoch_002.png").is_file()

    tiny = ClassifierSettings(channels=(8, 16), feature_dim=32, epochs=1, batch_size=16, min_steps=0)
    metrics = evaluate_run(run, num_samples=40, classifier=tiny, batch_size=16)
    assert metrics["conditional"] is True and 0.0 <= metrics["label_agreement"] <= 1.0
    summary = export_run(run, out=tmp_path / "export", num_samples=30, classifier=tiny)
    record = json.loads((tmp_path / "export" / "export.json").read_text())
    assert record["conditional"] is True and sum(summary["class_counts"].values()) == 30
