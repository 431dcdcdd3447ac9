"""The pool GAN's test error epoch by epoch, to compare recipe changes on their first epochs before paying
for a whole run: print a table.

Trains the semi-supervised GAN (model=ssgan_mlp) exactly as `expand` trains it on a seed's folders that
benchmarks/semi_supervised.py wrote (<work>/seed_<s>/labelled and pool; run it first), the expand
recipe's length and rate decay, for its first `--epochs` epochs, plus any training overrides given after
`--`. After each epoch the classifier (the moving average of D that `expand` keeps) is scored on MNIST's
test split as that benchmark converted it. The test split only compares; nothing here chooses a setting.

Usage: python benchmarks/ssgan_trajectory.py [--work /tmp/hwgan_semi_supervised] [--seed 0] [--epochs 9]
       [--run /tmp/ssgan_trajectory/<name>] [-- +model.optimizer.eps=1e-4 ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).parent))
from semi_supervised import converted_test  # noqa: E402

from handwriting_gan.assembly import build  # noqa: E402
from handwriting_gan.config import compose_config  # noqa: E402
from handwriting_gan.expand.gan import gan_overrides  # noqa: E402
from handwriting_gan.expand.settings import check_plan, expand_config  # noqa: E402
from handwriting_gan.pool_gan import gan_length  # noqa: E402
from handwriting_gan.shell import quiet_dependencies  # noqa: E402


class TestError(L.Callback):
    """Scores the game's classifier on the test images after every epoch; stops after `epochs`."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, epochs: int) -> None:
        self.images, self.labels, self.epochs = images, labels, epochs
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, module) -> None:
        predicted = torch.cat([module.classify(part).argmax(1).cpu() for part in self.images.split(1000)])
        error = 100 * (predicted != self.labels).float().mean().item()
        epoch = trainer.current_epoch + 1
        print(f"| {epoch} | {error:.2f}% | {time.perf_counter() - self.started:.0f} s |", flush=True)
        if epoch >= self.epochs:
            trainer.should_stop = True


def png_count(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.png"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--work", default="/tmp/hwgan_semi_supervised")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--batches", type=int, default=30000, help="the expand recipe's length")
    parser.add_argument("--run", default=None, help="the run folder (default /tmp/ssgan_trajectory/<n>)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="training overrides, after --")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quiet_dependencies()
    folders = Path(args.work) / f"seed_{args.seed}"
    labelled, pool = folders / "labelled", folders / "pool"
    if not (labelled.is_dir() and pool.is_dir()):
        sys.exit(f"{folders} has no labelled/ and pool/: run semi_supervised.py --seeds {args.seed} first")
    images, labels = converted_test(args.data_dir, Path(args.work))
    # The expand command's own plan and GAN overrides for this seed's folders, as semi_supervised.py
    # ran it (its cache too), so the GAN trained here is the one `expand` trains. `out` is never written.
    plan = check_plan(
        expand_config(
            {
                "path": str(labelled),
                "unlabeled": str(pool),
                "out": str(folders / "trajectory_out"),
                "measure": False,
                "seed": args.seed,
                "pool_gan": {"batches": args.batches},
                "paths": {"cache_dir": str(folders / "cache")},
            }
        )
    )
    epochs, _, batch = gan_length(
        png_count(labelled), png_count(pool), plan.pool_gan["batches"], plan.pool_gan["batch_size"]
    )
    run = Path(args.run or f"/tmp/ssgan_trajectory/{'_'.join(args.overrides) or 'default'}")
    overrides = [*gan_overrides(plan, epochs, batch), *args.overrides]
    cfg = compose_config(overrides, run_dir=run)
    L.seed_everything(args.seed, verbose=False)
    trainer, game, datamodule = build(cfg)
    trainer.callbacks.append(TestError(images, labels, args.epochs))
    print(f"seed {args.seed}, {epochs}-epoch recipe, first {args.epochs} epochs; overrides: {args.overrides}")
    print("| epoch | test error | time |\n| ---: | ---: | ---: |", flush=True)
    trainer.fit(game, datamodule=datamodule)


if __name__ == "__main__":
    main()
