"""The image-conditional augmenter on this machine: print a table of its generation speed and its
training time per 1,000 steps.

Rows: generating variations of 28x28 images in batches (the shipped augmenter, `augmenter=omniglot`,
as `python -m handwriting_gan.expand` and the study's arms (f) and (g) call it: uint8 in, uint8 out,
timed after a warm-up); and training the same model (`experiment=dagan_omniglot`: Omniglot's source
alphabets, batch 64 pairs, DiffAugment, R1) for `--steps` steps, reported per 1,000 steps.

`--grid PNG` also draws the shipped augmenter's variations of characters it never saw: rows of
Omniglot's held-out alphabets, MNIST digits and Chars74K characters, each a real image and then its
variations (the picture of docs/results/augmenter.md). `--augmenter` measures another augmenter (a run
folder or a generator.pt) in the generation rows and the grid; the training row always times the
shipped recipe.

Usage: python benchmarks/augmenter.py [--data-dir ../shared/data] [--threads N] [--steps 200]
       [--images 20000] [--grid docs/images/augmenter_variations.png]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time

import torch

from handwriting_gan.augmenter import Augmenter, augmenter_file


def generation(augmenter: Augmenter, images: int, batch_size: int) -> float:
    """Images per second of `augmenter.vary` on `images` random sources, after a warm-up batch."""
    sources = (torch.rand(images, 1, 28, 28) > 0.85).to(torch.uint8) * 255
    labels = torch.zeros(images, dtype=torch.int64)
    augmenter.batch_size = batch_size
    augmenter.vary(sources[:batch_size], labels[:batch_size], copies=1, seed=0)
    started = time.perf_counter()
    augmenter.vary(sources, labels, copies=1, seed=1)
    return images / (time.perf_counter() - started)


def training_seconds(data_dir: str, steps: int) -> tuple[float, int]:
    """Seconds per 1,000 steps of the shipped augmenter's recipe, timed over `steps` steps after 10."""
    import lightning as L

    from handwriting_gan.assembly import build
    from handwriting_gan.config import compose_config

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.start = None
            self.stop = None

        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.global_step // 2 == 10:  # two optimizer steps (D, G) per batch
                self.start = time.perf_counter()
            self.stop = time.perf_counter()

    with tempfile.TemporaryDirectory() as folder:
        cfg = compose_config(
            [
                "experiment=dagan_omniglot",
                f"paths.data_dir={data_dir}",
                "trainer.enable_progress_bar=false",
                "trainer.enable_model_summary=false",
                f"+trainer.max_steps={2 * (steps + 10)}",
                "~callbacks.samples",
                "~callbacks.losses",
                "~callbacks.checkpoint",
                "~callbacks.hparams",
                "~callbacks.selection",  # its evaluations are not training steps
            ],
            run_dir=folder,
        )
        trainer, game, datamodule = build(cfg)
        clock = Clock()
        trainer.callbacks.append(clock)
        trainer.fit(game, datamodule=datamodule)
        batches = trainer.global_step // 2 - 10
    return 1000 * (clock.stop - clock.start) / max(1, batches), batches


def variation_grid(augmenter: Augmenter, data_dir: str, path: str, columns: int = 8) -> None:
    """Rows of (an unseen real character, its variations) from three datasets, saved as a PNG."""
    from torchvision.utils import save_image

    from handwriting_gan.config import compose_config, instantiate

    rows = []
    for overrides, count in (
        (["dataset=omniglot", "dataset.alphabets=held_out_a"], 3),
        (["dataset=omniglot", "dataset.alphabets=held_out_b"], 3),
        (["dataset=mnist"], 3),
        (["dataset=chars74k", "dataset.download=false"], 3),
    ):
        cfg = compose_config([*overrides, f"paths.data_dir={data_dir}"], run_dir="unused")
        images, labels = instantiate(cfg.dataset).split(train=False)
        picks = [int(torch.nonzero(labels == label)[0]) for label in torch.unique(labels)[::7][:count]]
        sources = images[picks]
        made, _, _ = augmenter.vary(sources, labels[picks], copies=columns - 1, seed=0)
        for row in range(len(picks)):
            rows.append(torch.cat([sources[row : row + 1], made[row :: len(picks)]]))
    grid = torch.cat(rows).float() / 255
    save_image(
        torch.nn.functional.interpolate(grid, scale_factor=2, mode="nearest"), path, nrow=columns, padding=2
    )
    print(f"variations of unseen characters: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--steps", type=int, default=200, help="training steps timed (0: no training row)")
    parser.add_argument("--images", type=int, default=20000, help="images generated per row")
    parser.add_argument("--grid", default=None, help="also draw variations of unseen characters here")
    parser.add_argument(
        "--augmenter",
        default="omniglot",
        help="the augmenter measured: a shipped name, a run folder or a generator.pt (default: omniglot)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    augmenter = Augmenter.load(args.augmenter)
    size = augmenter_file(args.augmenter).stat().st_size
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; augmenter {args.augmenter}: {size / 1e6:.2f} MB, "
        f"{sum(p.numel() for p in augmenter.generator.parameters()):,} parameters"
    )
    rows = []
    print("| what | batch | result |")
    print("| --- | ---: | ---: |")
    for batch in (100, 1000):
        speed = generation(augmenter, args.images, batch)
        rows.append({"what": "generation", "batch": batch, "images_per_s": speed})
        print(f"| generation (uint8 in, uint8 out) | {batch} | {speed:,.0f} images/s |")
    if args.steps:
        seconds, steps = training_seconds(args.data_dir, args.steps)
        timed = {"seconds_per_1000_steps": seconds, "steps_timed": steps}
        rows.append({"what": "training", "batch": 64, **timed})
        print(
            f"| training (experiment=dagan_omniglot, {steps} steps timed) | 64 "
            f"| {seconds:,.0f} s per 1,000 steps |"
        )
    print(json.dumps(rows))
    if args.grid:
        variation_grid(augmenter, args.data_dir, args.grid)


if __name__ == "__main__":
    main()
