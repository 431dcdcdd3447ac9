"""The GPU path: a GPU-resident training split and CUDA-graph replay of the training step.

Skipped without a CUDA GPU (the CPU suite checks that `model.cuda_graph=true` is refused on the CPU,
in test_bad_inputs.py). On a lent GPU: `python -m pytest tests/test_gpu.py`.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch

from handwriting_gan.assembly import build
from handwriting_gan.config import compose_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

QUIET = [
    "trainer=gpu",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "dataset=fake",
    "dataset.size=1024",
    "dataset.batch_size=64",
    "~callbacks.samples",
    "~callbacks.losses",
]


def fit(overrides, run_dir):
    cfg = compose_config([*QUIET, *overrides], run_dir=run_dir)
    L.seed_everything(cfg.seed, verbose=False)
    trainer, game, datamodule = build(cfg)
    trainer.fit(game, datamodule=datamodule)
    return trainer, game, datamodule


def test_resident_split_gives_the_same_batches_as_host_memory(tmp_path):
    cfg = compose_config([*QUIET, "trainer.max_epochs=1"], run_dir=tmp_path)
    trainer, game, datamodule = build(cfg)
    datamodule.trainer = trainer
    trainer.strategy.model = game
    datamodule.setup("fit")
    resident = list(datamodule.train_dataloader())
    datamodule.device_resident = False
    host = list(datamodule.train_dataloader())
    assert resident[0][0].is_cuda and not host[0][0].is_cuda
    assert len(resident) == len(host) == 1024 // 64
    for (images, labels), (host_images, host_labels) in zip(resident, host, strict=True):
        assert torch.equal(images.cpu(), host_images) and torch.equal(labels.cpu(), host_labels)


@pytest.mark.parametrize("model", ["mlp3", "cdcgan"])
def test_captured_steps_train_like_eager_steps(tmp_path, model):
    """Both paths count the same optimizer steps, change every weight and reach losses of the same
    size (the noise differs after the warm-up batches, so equal in distribution, not bitwise)."""
    runs = {}
    for graph in (False, True):
        trainer, game, _ = fit(
            [f"model={model}", "d_steps=2", "trainer.max_epochs=3", f"model.cuda_graph={graph}"],
            tmp_path / str(graph),
        )
        runs[graph] = trainer, game
    (eager_trainer, eager), (graph_trainer, graph) = runs[False], runs[True]
    batches = 3 * (1024 // 64)
    assert graph.cuda_graph.replays == batches - 3, "every batch after the 3 warm-up ones is a replay"
    assert eager.cuda_graph is None
    assert graph_trainer.global_step == eager_trainer.global_step == 3 * 3 * (1024 // 64)
    for name, value in graph.generator.state_dict().items():
        assert torch.isfinite(value.float()).all(), name
    for key in ("train/d_loss_epoch", "train/g_loss_epoch"):
        a, b = float(eager_trainer.callback_metrics[key]), float(graph_trainer.callback_metrics[key])
        assert abs(a - b) < 0.35 * max(abs(a), abs(b)) + 0.1, (key, a, b)


class ZeroLearningRates(L.Callback):
    """After the graph is recorded, sets every learning rate to 0 in place (as the divergence guard's
    lowering writes them) and keeps the weights of that moment and of the end of the epoch."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == 6:
            assert pl_module.cuda_graph.recording is not None, (
                "no graph was recorded after the warm-up batches"
            )
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    assert isinstance(group["lr"], torch.Tensor) and group["lr"].is_cuda
                    group["lr"].fill_(0.0)
            self.before = {k: v.clone() for k, v in pl_module.state_dict().items() if "weight" in k}
            self.graph = pl_module.cuda_graph.recording
        if batch_idx + 1 == trainer.num_training_batches:
            self.after = {k: v.clone() for k, v in pl_module.state_dict().items() if "weight" in k}
            self.same_graph = pl_module.cuda_graph.recording is self.graph


def test_learning_rate_changes_reach_a_recorded_graph(tmp_path):
    """Learning rates are device tensors the graph reads at each replay: set to 0 in place, the replays
    of the graph recorded before must change no weight."""
    cfg = compose_config([*QUIET, "model.cuda_graph=true", "trainer.max_epochs=1"], run_dir=tmp_path)
    trainer, game, datamodule = build(cfg)
    probe = ZeroLearningRates()
    trainer.callbacks.append(probe)
    trainer.fit(game, datamodule=datamodule)
    assert probe.same_graph
    for name, value in probe.before.items():
        assert torch.equal(probe.after[name], value), f"{name} moved at learning rate 0"
    assert game.cuda_graph.recording is None  # dropped at the end of fit: the teardown moved the weights


def test_bf16_captured_run_trains(tmp_path):
    trainer, game, _ = fit(
        ["model.cuda_graph=true", "trainer.max_epochs=2", "trainer.precision=bf16-mixed"], tmp_path
    )
    assert game.cuda_graph.replays == 2 * (1024 // 64) - 3
    assert torch.isfinite(torch.tensor(float(trainer.callback_metrics["train/d_loss_epoch"])))


def test_captured_run_resumes_from_its_checkpoint(tmp_path):
    trainer, game, _ = fit(["model.cuda_graph=true", "trainer.max_epochs=2"], tmp_path)
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    cfg = compose_config([*QUIET, "model.cuda_graph=true", "trainer.max_epochs=3"], run_dir=tmp_path)
    trainer2, game2, datamodule2 = build(cfg)
    trainer2.fit(game2, datamodule=datamodule2, ckpt_path=str(checkpoint))
    assert trainer2.global_step == 3 * 2 * (1024 // 64)
    assert game2.cuda_graph.replays == 1024 // 64 - 3  # the resumed epoch records its own graph
