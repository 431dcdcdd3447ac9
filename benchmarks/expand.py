"""The expand command's default path on a real folder: print a table row of how long it takes.

A temporary ImageFolder of `--per-class` scans of every Chars74K class (the first ones of each
Sample0NN folder of <data-dir>/Chars74K/English/Hnd/Img; 62 classes x 10 by default) is expanded with
the shipped augmenter and the measurement on (the command's defaults: 3 seeds of (a), tuned (b) and (g)),
exactly as `python -m handwriting_gan.expand path=<folder> out=<new folder>` would, into a temporary
`out` and cache (so the folder's conversion is timed too). The row gives the total and each step.

Usage: python benchmarks/expand.py [--data-dir ../shared/data] [--per-class 10] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch


def folder_of(data_dir: Path, per_class: int, into: Path) -> Path:
    """`per_class` scans of every Chars74K class copied into an ImageFolder under `into`."""
    img = data_dir / "Chars74K" / "English" / "Hnd" / "Img"
    if not img.is_dir():
        raise SystemExit(f"{img} does not exist: the benchmark needs Chars74K's EnglishHnd tree there.")
    folder = into / f"chars74k_{per_class}"
    for sample in sorted(img.glob("Sample*")):
        (folder / sample.name).mkdir(parents=True)
        for scan in sorted(sample.glob("*.png"))[:per_class]:
            shutil.copy(scan, folder / sample.name / scan.name)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--threads", default="auto", help="the command's threads= (auto: idle cores)")
    args = parser.parse_args()
    from handwriting_gan.expand import expand_folder

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        folder = folder_of(Path(args.data_dir), args.per_class, work)
        started = time.perf_counter()
        result = expand_folder(folder, work / "out", threads=args.threads, cache_dir=str(work / "cache"))
        seconds = time.perf_counter() - started
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads={args.threads}"
    )
    print("| folder | real images | synthetic images | measured | gain (g) − (b) | total |")
    print("| --- | ---: | ---: | --- | ---: | ---: |")
    report = result["report"] or {}
    gain = report.get("gain", {}).get("mean")
    gain_text = "-" if gain is None else f"{gain:+.1f} points"
    print(
        f"| Chars74K, {len({*result['class_counts']})} classes x {args.per_class} | {result['num_real']} "
        f"| {result['num_synthetic']} | {'yes' if result['report'] else 'no'} | {gain_text} "
        f"| {seconds / 60:.1f} min |"
    )
    print(json.dumps({"seconds": seconds, "gain": gain, "num_real": result["num_real"]}))


if __name__ == "__main__":
    main()
