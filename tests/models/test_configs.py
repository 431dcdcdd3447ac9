"""The model group: every model file extends the game's shared settings (conf/model/_game.yaml), holds
only its networks and what differs, and composes to the values it had when each file repeated the game;
the shared file is no model to choose."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from handwriting_gan.config import group_options
from handwriting_gan.errors import ConfigError
from handwriting_gan.shell import compose_checked

MODEL_CONF = Path(__file__).parents[2] / "handwriting_gan" / "conf" / "model"

#: The game block every model had, resolved with the default root config (d_steps 1, seed 42, no
#: augmentation, optim.lr 2e-4, optim.betas [0.5, 0.999]), in its order.
GAME = {
    "_target_": "handwriting_gan.game.GAN",
    "_convert_": "all",
    "latent_dim": 100,
    "d_steps": 1,
    "loss": "bce",
    "seed": 42,
    "augment": None,
    "ema_decay": None,
    "ema_start": 0,
    "mode_seeking": 0.0,
    "cuda_graph": False,
    "generator": "the model's",
    "discriminator": "the model's",
    "optimizer": {
        "_target_": "torch.optim.Adam",
        "_partial_": True,
        "lr": 2.0e-4,
        "betas": [0.5, 0.999],
        "fused": True,
    },
    "optimizer_d": None,
}
#: model -> (its game settings that differ, G's class, D's class, G's num_classes).
MODELS = {
    "mlp3": ({}, "mlp.MLPGenerator", "mlp.MLPDiscriminator", 0),
    "mlp4": ({}, "mlp.MLPGenerator", "mlp.MLPDiscriminator", 0),
    "cgan_mlp": ({}, "mlp.MLPGenerator", "mlp.MLPDiscriminator", "auto"),
    "dcgan": ({}, "dcgan.DCGANGenerator", "dcgan.DCGANDiscriminator", 0),
    "cdcgan": ({"mode_seeking": 1.0}, "dcgan.DCGANGenerator", "dcgan.DCGANDiscriminator", "auto"),
}


#: The image-conditional augmenter: the game on pairs, with its own regularisation keys.
DAGAN_DIFFERS = {
    "_target_": "handwriting_gan.game.PairGAN",
    "latent_dim": 32,
    "loss": "hinge",
    "mode_seeking": 0.2,
    "ema_decay": 0.999,
    "ema_start": 1000,
}


def test_the_model_options_are_the_model_files_less_the_shared_game():
    assert group_options("model") == sorted([*MODELS, "dagan", "ssgan_conv", "ssgan_mlp"])
    assert (MODEL_CONF / "_game.yaml").is_file()


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_model_composes_to_the_game_settings_it_had(compose, model):
    differs, generator, discriminator, num_classes = MODELS[model]
    composed = OmegaConf.to_container(compose([f"model={model}"]).model, resolve=True)
    assert list(composed) == list(GAME)  # the order of the keys, too (Hydra builds them in this order)
    expected = {**GAME, **differs}
    for key, value in expected.items():
        if key not in ("generator", "discriminator"):
            assert composed[key] == value, key
    assert composed["generator"]["_target_"] == f"handwriting_gan.models.{generator}"
    assert composed["discriminator"]["_target_"] == f"handwriting_gan.models.{discriminator}"
    assert composed["generator"]["num_classes"] == num_classes


@pytest.mark.parametrize("model", sorted(MODELS))
def test_a_model_file_holds_only_its_networks_and_what_differs(model):
    own = OmegaConf.load(MODEL_CONF / f"{model}.yaml")
    assert own.defaults[-1] == "_self_" and own.defaults[0] in ("_game", *MODELS)
    assert set(own) - {"defaults", "generator", "discriminator"} == set(MODELS[model][0])


def test_the_augmenter_extends_the_shared_game_with_the_pair_games_keys(compose):
    composed = OmegaConf.to_container(compose(["model=dagan"]).model, resolve=True)
    assert list(composed)[: len(GAME)] == list(GAME) and set(composed) - set(GAME) == {"r1_gamma", "r1_every"}
    for key, value in {**GAME, **DAGAN_DIFFERS}.items():
        if key not in ("generator", "discriminator", "optimizer"):
            assert composed[key] == value, key
    assert composed["optimizer"]["betas"] == [0.0, 0.99]
    assert composed["generator"]["_target_"] == "handwriting_gan.models.dagan.UNetAugmenter"
    assert composed["discriminator"]["_target_"] == "handwriting_gan.models.dagan.PairCritic"


def test_the_shared_game_file_is_no_model_to_choose():
    with pytest.raises(
        ConfigError, match=r"^model=_game is not allowed: .*choose one of cdcgan, cgan_mlp, dagan, dcgan"
    ):
        compose_checked("train", ["model=_game"])
    with pytest.raises(ConfigError, match="Available options in 'model'") as error:
        compose_checked("train", ["model=mlp9"])
    listed = str(error.value).split("Available options in 'model':")[1].replace(",", " ").split()
    assert listed == sorted([*MODELS, "dagan", "ssgan_conv", "ssgan_mlp"])


def test_the_semi_supervised_model_is_the_game_with_a_classifying_discriminator(compose):
    composed = OmegaConf.to_container(
        compose(["model=ssgan_mlp", "dataset.labels_per_class=10"]).model, resolve=True
    )
    assert composed["_target_"] == "handwriting_gan.game.SemiSupervisedGAN"
    assert composed["discriminator"]["_target_"] == "handwriting_gan.models.ssgan.SSGANDiscriminator"
    assert composed["discriminator"]["num_labels"] == "auto"
    assert composed["generator"]["num_classes"] == 0
    # The paper's optimiser, not the study's: Adam 3e-3 with beta1 0.5.
    assert composed["optimizer"]["lr"] == 3e-3 and composed["optimizer"]["betas"] == [0.5, 0.999]
    for key in set(GAME) - {"_target_", "generator", "discriminator", "optimizer"}:
        assert composed[key] == GAME[key], key
