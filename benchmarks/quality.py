"""Quality of any model or experiment after a stated number of epochs: train, evaluate, print a table.

Each row trains one configuration for `--epochs` epochs (or until `--max-time`), then
`handwriting_gan.evaluate` measures it with `--num-samples` generated images against the dataset's test
split, in the features of the dataset's cached domain classifier (trained first if absent). A row is
`--models` (each `experiment=paper_mnist model=<model>`, the study's MNIST config) or `--runs` (each a
quoted list of overrides, e.g. "experiment=cdcgan_mnist" or "experiment=paper_mnist model=mlp4"); any
`--set` overrides apply to every row.

Usage: python benchmarks/quality.py [--epochs 5] [--models mlp3 mlp4] [--runs "experiment=cdcgan_mnist"]
       [--set trainer=gpu model.cuda_graph=true] [--max-time 00:00:10:00] [--data-dir ../shared/data]
       [--num-samples 10000] [--threads N] [--device cpu|cuda] [--cache-dir cache] [--keep DIR]
Prints a markdown table; the wall time is the training's (the evaluation's is beside it). FD / floor,
label agreement, CAS / CAS on real images and per-class recall are the targets of the tables in
docs/results/quality.md (the last three for class-conditional models only).
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

HEADER = (
    "run",
    "epochs",
    "wall time (train)",
    "eval time",
    "FD",
    "floor",
    "FD / floor",
    "precision",
    "recall",
    "label agreement",
    "CAS / CAS real",
    "per-class recall",
)


def row(name: str, values: dict) -> str:
    def number(key: str, digits: int = 3) -> str:
        return "-" if values.get(key) is None else f"{values[key]:.{digits}f}"

    ratio = values["fd"] / values["fd_floor"]
    cas = f"{values['cas'] / values['cas_real']:.3f}" if values.get("cas") is not None else "-"
    cells = [
        name,
        str(values["epochs"]),
        f"{values['train_seconds']:.0f} s",
        f"{values['eval_seconds']:.0f} s",
        number("fd"),
        number("fd_floor"),
        f"{ratio:.1f}",
        number("precision"),
        number("recall"),
        number("label_agreement"),
        cas,
        number("recall_per_class"),
    ]
    return "| " + " | ".join(cells) + " |"


def run(args, overrides: list[str], run_dir: Path) -> dict:
    overrides = [
        *overrides,
        f"paths.data_dir={args.data_dir}",
        f"paths.cache_dir={args.cache_dir}",
        "dataset.download=false",
        f"trainer.max_epochs={args.epochs}",
        f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        "trainer.enable_progress_bar=false",
        *args.set,
    ]
    if args.max_time:
        overrides.append(f"++trainer.max_time={args.max_time}")
    if args.threads:
        overrides.append(f"threads={args.threads}")
    cfg = compose_config(overrides, run_dir=run_dir)
    started = time.perf_counter()
    train(cfg)
    train_seconds = time.perf_counter() - started
    # Completed epochs (fewer than asked when --max-time stopped the run): the last epoch-end checkpoint's.
    epochs = (
        torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["epoch"] + 1
    )

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
    seconds = time.perf_counter() - started
    return {**values, "epochs": epochs, "train_seconds": train_seconds, "eval_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=[], help="conf/model entries, on paper_mnist")
    parser.add_argument(
        "--runs", nargs="*", default=[], help='override lists, e.g. "experiment=fewshot_mnist"'
    )
    parser.add_argument("--set", nargs="*", default=[], help="overrides for every row, e.g. trainer=gpu")
    parser.add_argument("--max-time", default=None, help="stop each training after DD:HH:MM:SS")
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
    rows = {f"model={m}": ["experiment=paper_mnist", f"model={m}"] for m in args.models}
    rows |= {spec: spec.split() for spec in args.runs}
    if not rows:
        rows = {"model=mlp3": ["experiment=paper_mnist", "model=mlp3"]}
    print(
        f"{args.num_samples} generated images vs the test split, up to {args.epochs} epochs"
        f"{f' or {args.max_time}' if args.max_time else ''}, extra overrides: {' '.join(args.set) or '-'}; "
        f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads\n"
    )
    print("| " + " | ".join(HEADER) + " |")
    print("| --- |" + " ---: |" * (len(HEADER) - 1), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for index, (name, overrides) in enumerate(rows.items()):  # a row as soon as it is done
            values = run(args, overrides, Path(args.keep or scratch) / f"run_{index}")
            print(row(name, values), flush=True)
    accuracy = 100 * values["classifier_test_acc"]
    print(f"\nDomain classifier: {accuracy:.2f}% on the test split ({values['classifier_file']}).")


if __name__ == "__main__":
    main()
