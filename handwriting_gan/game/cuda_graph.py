"""CUDA-graph replay of the game's batch (`model.cuda_graph: true`, CUDA only): the whole batch (the
`d_steps` D updates and the G update: forward, backward and the optimizers' steps) is recorded into a CUDA
graph after a few eager warm-up batches and replayed for every later batch of the same size, so a step
costs one launch instead of hundreds of small kernels.

It needs optimizers that take `capturable=True` (Adam, AdamW): they are built with it, and their learning
rates become device tensors that later changes (the divergence guard) write in place. The noise is drawn
inside the graph from CUDA's graph-safe generator, so a replay draws fresh noise as an eager step does:
results are equal in distribution to the eager path, not bit-identical. A rollback or any reload of
weights or optimizer state must discard the graph (`CudaGraphStep.discard`), and a new one is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer

from handwriting_gan.errors import ConfigError

#: The game's batch as a graph records it: (real, labels) -> the batch's statistics as one tensor.
Step = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]

#: The trainer precisions a graph may be recorded under.
PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16-true")


def capturable_options(optimizer_factory: partial) -> dict:
    """Extra arguments for an optimizer a graph can record: step counts kept on the device, and the
    learning rate as a tensor (moved to the device by `check_capturable`)."""
    return {"capturable": True, "lr": torch.tensor(float(optimizer_factory.keywords["lr"]))}


def check_capturable(trainer: L.Trainer, device: torch.device) -> None:
    """Raise ConfigError when this run cannot record CUDA graphs; else move the optimizers' tensor learning
    rates to `device`, where the optimizers are now."""
    problems = []
    if device.type != "cuda":
        problems.append(f"it records CUDA graphs, but this run trains on {device.type}")
    if trainer.world_size > 1:
        problems.append("DDP's gradient all-reduce cannot be recorded into a graph")
    if trainer.precision not in PRECISIONS:
        problems.append(f"trainer.precision={trainer.precision} (use 32-true or bf16-mixed)")
    if problems:
        raise ConfigError(
            "model.cuda_graph=true cannot be used here: " + "; ".join(problems) + ". Leave "
            "model.cuda_graph=false (the default) or train on one GPU (trainer=gpu)."
        )
    for optimizer in trainer.optimizers:
        for group in optimizer.param_groups:
            # The optimizers are on the device now; their tensor learning rates follow them.
            if isinstance(group["lr"], torch.Tensor):
                group["lr"] = group["lr"].to(device)


class CudaGraphStep:
    """Trains a batch through a CUDA graph: `WARMUP` eager batches on a side stream, then one recording,
    then replays. A batch of another size than the recorded one (a last partial batch) runs eagerly."""

    #: Eager batches before the recording (cuBLAS handles, optimizer states and autograd's streams are
    #: set up lazily and must exist before a recording starts).
    WARMUP = 3

    def __init__(self) -> None:
        self.recording: _Recording | None = None
        self.eager_batches = 0
        #: Batches trained by replaying a recorded graph, for logs and tests.
        self.replays = 0

    def discard(self) -> None:
        """Forget the recording: it reads the weights, optimizer states and learning rates it was recorded
        on, so it must not outlive them (a reload, a rollback, the trainer's teardown)."""
        self.recording = None

    def __call__(
        self,
        step: Step,
        real: torch.Tensor,
        labels: torch.Tensor | None,
        stepped: Sequence[LightningOptimizer],
    ) -> torch.Tensor:
        """Train this batch with `step` (which steps the plain torch optimizers) and return its statistics;
        `stepped` lists the Lightning optimizers of the steps it takes, in order, for Lightning to count."""
        if self.recording is None and self.eager_batches >= self.WARMUP:
            self.recording = _Recording(step, real, labels)
        if self.recording is not None and self.recording.fits(real):
            stats = self.recording.replay(real, labels)  # the recording ran nothing: this batch trains here
            self.replays += 1
        else:
            stats = _on_side_stream(step, real, labels)
            self.eager_batches += 1
        count_steps(stepped)
        return stats


def count_steps(stepped: Sequence[LightningOptimizer]) -> None:
    """Count optimizer steps taken without `LightningOptimizer.step` in Lightning's loop, as that method
    does: `trainer.global_step`, the progress a resume restores, and the profiler's optimizer_step."""
    for optimizer in stepped:
        # Private: Lightning has no public call to count a manual step taken outside
        # LightningOptimizer.step (a graph replay bypasses it), so call the two hooks its loop injects there.
        optimizer._on_before_step()
        optimizer._on_after_step()


def _on_side_stream(step: Step, real: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """`step` run eagerly on a side stream, as CUDA graphs ask of warm-up work: lazy initialisations must
    not happen inside a recording."""
    stream = torch.cuda.Stream(real.device)
    stream.wait_stream(torch.cuda.current_stream(real.device))
    with torch.cuda.stream(stream):
        stats = step(real, labels)
    torch.cuda.current_stream(real.device).wait_stream(stream)
    return stats


class _Recording:
    """One training batch recorded into a CUDA graph, with static input buffers it is replayed on."""

    def __init__(self, step: Step, real: torch.Tensor, labels: torch.Tensor | None) -> None:
        self.real = real.clone()
        self.labels = None if labels is None else labels.clone()
        self.graph = torch.cuda.CUDAGraph()
        # Autocast's weight cache must be off while recording; the precision's dtype is kept.
        autocast = torch.autocast(
            "cuda",
            dtype=torch.get_autocast_dtype("cuda"),
            enabled=torch.is_autocast_enabled("cuda"),
            cache_enabled=False,
        )
        torch.cuda.synchronize(real.device)
        with autocast, torch.cuda.graph(self.graph):
            self.stats = step(self.real, self.labels)

    def fits(self, real: torch.Tensor) -> bool:
        return real.shape == self.real.shape

    def replay(self, real: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Train on this batch (copied into the recorded inputs); its statistics, as a new tensor."""
        self.real.copy_(real)
        if self.labels is not None:
            self.labels.copy_(labels)
        self.graph.replay()
        return self.stats.clone()
