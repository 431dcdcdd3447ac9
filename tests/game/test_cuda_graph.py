"""CUDA-graph replay (game/cuda_graph.py) as far as a CPU can check it: what a run must offer before it
records, the optimizers a graph can record, and the game's graphed path with a rerun of the step in the
graph's place, whose steps (taken outside Lightning's optimizer wrappers, as a replay takes them) must be
counted as Lightning counts its own. tests/test_gpu.py trains through real graphs."""

import functools

import lightning as L
import pytest
import torch

from handwriting_gan.assembly import build
from handwriting_gan.config import compose_config, instantiate
from handwriting_gan.errors import ConfigError
from handwriting_gan.game import GAN
from handwriting_gan.game.cuda_graph import CudaGraphStep, capturable_options, check_capturable
from handwriting_gan.models.mlp import MLPDiscriminator, MLPGenerator
from tests_support import FAST


def test_a_run_that_cannot_record_is_refused_naming_each_cause():
    trainer = L.Trainer(
        accelerator="cpu", devices=1, precision="64-true", logger=False, enable_checkpointing=False
    )
    with pytest.raises(ConfigError) as error:
        check_capturable(trainer, torch.device("cpu"))
    message = str(error.value)
    assert message.startswith("model.cuda_graph=true cannot be used here: it records CUDA graphs, but this")
    assert "trainer.precision=64-true (use 32-true or bf16-mixed)" in message
    assert message.endswith("or train on one GPU (trainer=gpu).")


def test_a_graphed_game_builds_capturable_optimizers_with_tensor_learning_rates():
    factory = functools.partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999))
    options = capturable_options(factory)
    assert options["capturable"] is True and torch.equal(options["lr"], torch.tensor(2e-4))
    networks = MLPGenerator(latent_dim=4, hidden=[8], image_shape=(1, 2, 2)), MLPDiscriminator([4], (1, 2, 2))
    graphed = GAN(*networks, optimizer=factory, cuda_graph=True)
    assert isinstance(graphed.cuda_graph, CudaGraphStep) and graphed.cuda_graph.recording is None
    for optimizer in graphed.configure_optimizers():
        group = optimizer.param_groups[0]
        assert group["capturable"] and isinstance(group["lr"], torch.Tensor)
    eager = GAN(*networks, optimizer=factory)
    assert eager.cuda_graph is None
    assert all(not o.param_groups[0]["capturable"] for o in eager.configure_optimizers())


class RerunOnCPU:
    """Stands in for a CUDA graph on the CPU: recording runs nothing (as a capture trains nothing) and
    each replay runs the recorded step on the batch copied into its inputs."""

    def __init__(self, step, real, labels):
        self.step, self.shape = step, real.shape

    def fits(self, real):
        return real.shape == self.shape

    def replay(self, real, labels):
        return self.step(real, labels)


def test_the_graphed_path_trains_as_the_eager_one_when_a_replay_reruns_the_step(tmp_path, monkeypatch):
    """With the graph replaced by a rerun of the step, model.cuda_graph=true trains exactly as the eager
    path: the same weights, and the same optimizer steps counted (global_step, which mid-epoch
    checkpoints and the EMA's start use, and the progress a resume restores); 3 warm-up batches, then
    replays; the recording discarded at the end."""
    from handwriting_gan.game import cuda_graph, gan

    monkeypatch.setattr(cuda_graph, "_Recording", RerunOnCPU)
    monkeypatch.setattr(cuda_graph, "_on_side_stream", lambda step, real, labels: step(real, labels))
    monkeypatch.setattr(gan, "check_capturable", lambda trainer, device: None)
    monkeypatch.setattr(gan, "capturable_options", lambda factory: {})  # CPU optimizers cannot capture
    runs = {}
    for graphed in (False, True):
        cfg = compose_config(
            [*FAST, "d_steps=2", "~callbacks.samples", "~callbacks.losses"], run_dir=tmp_path / str(graphed)
        )
        L.seed_everything(cfg.seed, verbose=False)
        trainer, _, datamodule = build(cfg)
        game = instantiate(cfg.model, cuda_graph=graphed)
        trainer.fit(game, datamodule=datamodule)
        checkpoint = torch.load(tmp_path / str(graphed) / "checkpoints" / "last.ckpt", weights_only=True)
        runs[graphed] = trainer, game, (checkpoint["global_step"], checkpoint["loops"])
    (eager_trainer, eager, eager_saved), (graph_trainer, graph, graph_saved) = runs[False], runs[True]
    batches = graph_trainer.num_training_batches * graph_trainer.max_epochs
    assert graph.cuda_graph.eager_batches == CudaGraphStep.WARMUP
    assert graph.cuda_graph.replays == batches - CudaGraphStep.WARMUP
    assert graph.cuda_graph.recording is None  # discarded at the end of fit
    assert graph_trainer.global_step == eager_trainer.global_step == 3 * batches
    assert graph_saved == eager_saved
    for name, value in eager.state_dict().items():
        assert torch.equal(graph.state_dict()[name], value), name
