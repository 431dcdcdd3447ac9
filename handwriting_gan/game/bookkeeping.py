"""What the game keeps beside the two players: the moving average of G's weights, each batch's noise
seed, and the epoch's running statistics, each restored exactly when a run resumes."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class GeneratorAverage(AveragedModel):
    """An exponential moving average of G's weights and buffers (torch's AveragedModel, so its state is
    `n_averaged` and `module.*`) from batch `start` on. Before `start` it copies the raw weights, so the
    average never holds the untrained start."""

    def __init__(self, generator: nn.Module, decay: float, start: int) -> None:
        super().__init__(generator, multi_avg_fn=get_ema_multi_avg_fn(float(decay)), use_buffers=True)
        self.start = int(start)
        self.requires_grad_(False)

    @torch.no_grad()
    def follow(self, generator: nn.Module, batches: int) -> None:
        """Update from `generator` after `batches` trained batches."""
        if batches < self.start:
            for averaged, raw in zip(
                self.module.state_dict().values(), generator.state_dict().values(), strict=True
            ):
                averaged.copy_(raw)
            return
        self.update_parameters(generator)


class WarmAverage(AveragedModel):
    """An exponential moving average of a network's weights and buffers whose decay ramps up as
    min(decay, (1 + n) / (10 + n)) after n updates, so a short run's average is not stuck near the
    untrained start (0.999 ** 100 of it would remain after 100 batches) and a long run's is the plain one."""

    def __init__(self, network: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        # One fused update of every tensor per batch (torch's foreach kernels), not one per tensor: a
        # per-tensor average was 5% of a semi-supervised step on a 2-core CPU.
        super().__init__(network, multi_avg_fn=self._average, use_buffers=True)
        self.requires_grad_(False)

    def _average(
        self, averaged: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor
    ) -> None:
        """averaged <- decay * averaged + (1 - decay) * current for one group of tensors of one dtype."""
        if not averaged[0].is_floating_point():  # counters, if a network has any: the latest value
            torch._foreach_copy_(averaged, current)
            return
        n = float(updates)
        decay = min(self.decay, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_(averaged, current, 1.0 - decay)


def seed_batch(seed: int, epoch: int, batch: int, rank: int, device: torch.device) -> None:
    """Seed the noise and dropout draws of one batch from (seed, epoch, batch, rank) alone: a run resumed
    from any checkpoint, one from inside an epoch too, continues exactly as the uninterrupted run would."""
    value = (((seed * 1_000_003 + epoch) * 7_919 + batch) * 131 + rank) % 2**63
    # Only the generators this run draws from: torch.manual_seed also seeds every other backend (CUDA,
    # XPU, MTIA), which costs as much as a whole step of a small model on a GPU.
    torch.default_generator.manual_seed(value)
    if device.type == "cuda":
        torch.cuda.manual_seed(value)  # the current device's generator


class EpochStats:
    """The running sums of the batches' statistics over the current epoch, kept on the device, and how
    many batches they hold."""

    def __init__(self, size: int) -> None:
        self.sum = torch.zeros(size)
        self.batches = 0

    def start(self, device: torch.device) -> None:
        self.sum = torch.zeros_like(self.sum, device=device)
        self.batches = 0

    def add(self, stats: torch.Tensor) -> None:
        self.sum += stats
        self.batches += 1

    def means(self) -> torch.Tensor:
        return self.sum / self.batches

    def to(self, device: torch.device) -> None:
        self.sum = self.sum.to(device)

    def state_dict(self) -> dict:
        return {"sum": self.sum.cpu(), "batches": self.batches}

    def load_state_dict(self, state: dict) -> None:
        self.sum, self.batches = state["sum"], int(state["batches"])
