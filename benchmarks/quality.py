"""Quality of the study's MNIST config after a stated number of epochs: train, evaluate, print a table.

Each model trains `experiment=paper_mnist model=<model>` on the full MNIST for `--epochs` epochs, then
`handwriting_gan.evaluate` measures it with `--num-samples` generated digits against the 10,000 test
digits, in the features of the cached MNIST domain classifier (trained first if absent).

Usage: python benchmarks/quality.py [--epochs 5] [--models mlp3 mlp4] [--data-dir ../shared/data]
       [--num-samples 10000] [--threads N] [--device cpu|cuda] [--cache-dir cache] [--keep DIR]
Prints a markdown table; the wall time is the training's (the evaluation's is beside it).
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

from handwriting_gan.config import compose_config
from handwriting_gan.evaluate import evaluate_generator
from handwriting_gan.models.generator_file import load_generator
from handwriting_gan.train import train

COLUMNS = ("fd", "fd_floor", "kid", "precision", "recall", "coverage")
HEADER = (
    "model",
    "epochs",
    "wall time (train)",
    "eval time",
    "FD",
    "floor",
    "KID",
    "precision",
    "recall",
    "coverage",
)


def run(args, model: str, run_dir: Path) -> dict:
    overrides = [
        "experiment=paper_mnist",
        f"model={model}",
        f"paths.data_dir={args.data_dir}",
        f"paths.cache_dir={args.cache_dir}",
        "dataset.download=false",
        f"trainer.max_epochs={args.epochs}",
        f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        "trainer.enable_progress_bar=false",
    ]
    if args.threads:
        overrides.append(f"threads={args.threads}")
    cfg = compose_config(overrides, run_dir=run_dir)
    started = time.perf_counter()
    train(cfg)
    train_seconds = time.perf_counter() - started

    started = time.perf_counter()
    generator, metadata = load_generator(run_dir / "generator.pt")
    values = evaluate_generator(
        generator,
        metadata,
        instantiate(cfg.dataset),
        args.cache_dir,
        num_samples=args.num_samples,
        device=args.device,
    )
    return {**values, "train_seconds": train_seconds, "eval_seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["mlp3"], help="conf/model entries to compare")
    parser.add_argument("--data-dir", default="../shared/data", help="folder holding MNIST/raw")
    parser.add_argument("--cache-dir", default="cache", help="where the domain classifier is cached")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--keep", default=None, help="keep the run folders under this folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the classifier's training, on stderr
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    print(
        f"MNIST, experiment=paper_mnist, {args.num_samples} generated vs 10,000 test digits, "
        f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads\n"
    )
    print("| " + " | ".join(HEADER) + " |")
    print("| --- |" + " ---: |" * (len(HEADER) - 1), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for model in args.models:  # a row as soon as its model is done (stdout; progress goes to stderr)
            values = run(args, model, Path(args.keep or scratch) / model)
            numbers = " | ".join(f"{values[c]:.4f}" if c == "kid" else f"{values[c]:.3f}" for c in COLUMNS)
            print(
                f"| {model} | {args.epochs} | {values['train_seconds']:.0f} s | "
                f"{values['eval_seconds']:.0f} s | {numbers} |",
                flush=True,
            )
    accuracy = 100 * values["classifier_test_acc"]
    print(f"\nDomain classifier: {accuracy:.2f}% on the MNIST test split ({values['classifier_file']}).")


if __name__ == "__main__":
    main()
