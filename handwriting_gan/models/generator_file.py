"""`generator.pt`: a trained generator's weights plus everything needed to rebuild it without the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from handwriting_gan import __version__
from handwriting_gan.config import instantiate
from handwriting_gan.errors import CheckpointError
from handwriting_gan.files import atomic_path

FORMAT = "handwriting_gan.generator"
FORMAT_VERSION = 1


def save_generator(
    path: str | Path,
    generator: nn.Module,
    config: DictConfig | dict,
    class_names: list[str] | tuple[str, ...] = (),
) -> Path:
    """Write weights, the generator's `_target_` config and the dataset's class names atomically."""
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "config": config,
        "latent_dim": generator.latent_dim,
        "image_shape": list(generator.image_shape),
        "class_names": list(class_names),
        "state_dict": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_generator(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the generator stored at `path`; returns (generator in eval mode, the file's metadata)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Generator file {path} does not exist; a finished run leaves one.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"Generator file {path} cannot be read ({type(exc).__name__}); it is truncated or not a "
            f"file written by handwriting_gan. Re-export it from the run's checkpoints/last.ckpt."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a handwriting_gan generator file.")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has generator format version {payload.get('format_version')}; this "
            f"handwriting_gan ({__version__}) reads version {FORMAT_VERSION}."
        )
    generator = instantiate(payload["config"])
    try:
        generator.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[1:2] or [str(exc)]
        raise CheckpointError(
            f"The weights in {path} do not fit the generator its config describes: {first_line[0].strip()}"
        ) from None
    metadata = {k: v for k, v in payload.items() if k != "state_dict"}
    return generator.eval(), metadata
