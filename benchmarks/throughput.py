"""Training throughput of the study's MNIST config (mlp3, batch 64), three ways, in one process.

(a) this framework: the real config and `handwriting_gan.assembly.build`, timed by its Throughput callback
    (on a GPU three rows: the dataset in host memory as before, GPU-resident, and GPU-resident with
    each step replayed from a CUDA graph, `model.cuda_graph=true`);
(b) a plain PyTorch loop of the same math over the same in-memory uint8 tensor, as lean as we can make it;
(c) a loop in the style of the original study's code: torchvision MNIST with per-image
    ToTensor/Normalize through a DataLoader, fresh noise and a second generator pass for the G step,
    D's weight gradients computed during the G step, and `.item()` on the losses every step.

Usage: python benchmarks/throughput.py [--steps 300] [--rounds 3] [--data-dir ../shared/data]
       [--device cpu|cuda] [--precision 32-true|bf16-mixed]
Prints a markdown table; the ratios (each loop over (b) of the same round, median over rounds) are the
targets ((a)/(b) >= 0.9 on the CPU; on a GPU the captured row >= 4x the host-data eager row and >= 1.0x
(b)).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from handwriting_gan.assembly import build
from handwriting_gan.callbacks.throughput import Throughput
from handwriting_gan.config import compose_config

WARMUP = 20


def framework(args, run_dir: Path, extra: tuple[str, ...] = ()) -> float:
    overrides = [
        "experiment=paper_mnist",
        f"paths.data_dir={args.data_dir}",
        "trainer.max_epochs=1",
        f"++trainer.limit_train_batches={WARMUP + args.steps}",
        f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        f"callbacks.throughput.warmup_steps={WARMUP}",
        "trainer.enable_progress_bar=true",
        f"trainer.precision={args.precision}",
        *extra,
    ]
    cfg = compose_config(overrides, run_dir=run_dir)
    trainer, game, datamodule = build(cfg)
    trainer.fit(game, datamodule=datamodule)
    (meter,) = [c for c in trainer.callbacks if isinstance(c, Throughput)]
    return meter.images_per_sec


def models(device: str):
    cfg = compose_config(["experiment=paper_mnist"], run_dir=tempfile.gettempdir())
    generator = instantiate(cfg.model.generator).to(device)
    discriminator = instantiate(cfg.model.discriminator).to(device)
    return generator, discriminator


def adam(generator, discriminator, fused: bool):
    """Adam 2e-4 for both players; the study's code used the default (unfused) implementation."""
    return tuple(
        torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=fused)
        for net in (generator, discriminator)
    )


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def plain(args, run_dir: Path | None = None) -> float:
    """(b): uint8 tensor in memory (on the device), randperm batches, one G pass, real and fake
    through D as one batch, D frozen for the G step, fused Adam: the framework's math, no framework."""
    mnist = datasets.MNIST(args.data_dir, train=True, download=False)
    images = mnist.data.unsqueeze(1).to(args.device)
    generator, discriminator = models(args.device)
    opt_g, opt_d = adam(generator, discriminator, fused=True)
    batch = 64
    targets = torch.cat([torch.ones(batch), torch.zeros(batch)]).to(args.device)
    order = torch.randperm(len(images), device=args.device)
    d_params = list(discriminator.parameters())

    def autocast():
        enabled = args.precision == "bf16-mixed"
        return torch.autocast(args.device, dtype=torch.bfloat16, enabled=enabled)

    def step(i: int) -> None:
        real = images[order[i * batch : (i + 1) * batch]].float().div_(127.5).sub_(1.0)
        with autocast():
            fake = generator(torch.randn(batch, 100, device=args.device))
            logits = discriminator(torch.cat([real, fake.detach()]))
            d_loss = 2.0 * F.binary_cross_entropy_with_logits(logits, targets)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        for p in d_params:
            p.requires_grad_(False)
        with autocast():
            g_loss = F.binary_cross_entropy_with_logits(discriminator(fake), targets[:batch])
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)

    for i in range(WARMUP):
        step(i)
    sync(args.device)
    start = time.perf_counter()
    for i in range(WARMUP, WARMUP + args.steps):
        step(i)
    sync(args.device)
    return args.steps * batch / (time.perf_counter() - start)


def original_style(args, run_dir: Path | None = None) -> float:
    """(c): how the study's notebook-style code trains (per-image transforms, G run twice)."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    mnist = datasets.MNIST(args.data_dir, train=True, download=False, transform=transform)
    loader = DataLoader(mnist, batch_size=64, shuffle=True, drop_last=True)
    generator, discriminator = models(args.device)
    opt_g, opt_d = adam(generator, discriminator, fused=False)
    criterion = torch.nn.BCEWithLogitsLoss()
    start, seen = None, 0
    for i, (real, _) in enumerate(loader):
        if i == WARMUP:
            sync(args.device)
            start = time.perf_counter()
        if i == WARMUP + args.steps:
            break
        real = real.to(args.device)
        n = real.size(0)
        opt_d.zero_grad()
        fake = generator(torch.randn(n, 100, device=args.device))
        d_loss = criterion(discriminator(real), torch.ones(n, device=args.device)) + criterion(
            discriminator(fake.detach()), torch.zeros(n, device=args.device)
        )
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        fake = generator(torch.randn(n, 100, device=args.device))
        g_loss = criterion(discriminator(fake), torch.ones(n, device=args.device))
        g_loss.backward()
        opt_g.step()
        d_loss.item(), g_loss.item()
        if start is not None:
            seen += n
    sync(args.device)
    return seen / (time.perf_counter() - start)


def machine(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps after a 20-step warm-up")
    parser.add_argument("--data-dir", default="../shared/data", help="folder holding MNIST/raw")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians shown")
    parser.add_argument(
        "--precision",
        default="32-true",
        choices=["32-true", "bf16-mixed"],
        help="trainer.precision for (a) and autocast for (b); (c) stays float32 as the study ran",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.device == "cuda":
        loops = {
            "(a) handwriting_gan, host data (before)": partial(
                framework, extra=("dataset.device_resident=false",)
            ),
            "(a) handwriting_gan, GPU-resident data": framework,
            "(a) handwriting_gan, GPU-resident + CUDA graph": partial(
                framework, extra=("model.cuda_graph=true",)
            ),
        }
    else:
        loops = {"(a) handwriting_gan (Lightning)": framework}
    loops |= {
        "(b) plain PyTorch, same math": plain,
        "(c) original style (per-image transforms)": original_style,
    }
    # Rounds interleave the three loops so drifts of a shared machine hit all of them alike.
    samples: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, loop in loops.items():
            with tempfile.TemporaryDirectory() as tmp:
                samples[name].append(loop(args, Path(tmp)))
    rates = {name: statistics.median(values) for name, values in samples.items()}
    plain_rounds = samples["(b) plain PyTorch, same math"]
    print(
        f"\nmlp3, batch 64, precision {args.precision}, median of {args.rounds} rounds x "
        f"{args.steps} timed steps, device: {machine(args.device)}, torch {torch.__version__}\n"
    )
    # A loop and (b) are compared within each round (they ran a minute apart) and the median of those
    # ratios is shown: a shared machine's slow minutes then slow both sides of a ratio alike.
    print("| loop | images/s (median) | all rounds | this / (b), per round | this / (b) (median) |")
    print("| --- | ---: | --- | --- | ---: |")
    for name, rate in rates.items():
        rounds = ", ".join(f"{r:,.0f}" for r in samples[name])
        ratios = [r / b for r, b in zip(samples[name], plain_rounds, strict=True)]
        per_round = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"| {name} | {rate:,.0f} | {rounds} | {per_round} | {statistics.median(ratios):.2f} |")


if __name__ == "__main__":
    main()
