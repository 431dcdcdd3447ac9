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
    return write_network_file(
        path,
        FORMAT,
        FORMAT_VERSION,
        generator,
        config,
        latent_dim=generator.latent_dim,
        image_shape=list(generator.image_shape),
        class_names=list(class_names),
    )


def write_network_file(
    path: str | Path, fmt: str, version: int, network: nn.Module, config: DictConfig | dict, **entries: Any
) -> Path:
    """Write a network file of format `fmt` (read back by `read_network_file`) atomically: the network's
    weights, its `_target_` config (resolved) and `entries`."""
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    payload = {
        "format": fmt,
        "format_version": version,
        "package_version": __version__,
        "config": config,
        **entries,
        "state_dict": {k: v.detach().cpu() for k, v in network.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_generator(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the generator stored at `path`; returns (generator in eval mode, the file's metadata)."""
    return read_network_file(
        path,
        FORMAT,
        FORMAT_VERSION,
        "generator",
        missing="a finished run leaves one.",
        unreadable="Re-export it from the run's checkpoints/last.ckpt.",
    )


def read_network_file(
    path: str | Path, fmt: str, version: int, kind: str, missing: str, unreadable: str = ""
) -> tuple[nn.Module, dict[str, Any]]:
    """The network a file of format `fmt` (a generator.pt or a classifier.pt) stores, rebuilt from its
    config in eval mode, and the file's other entries; CheckpointError naming the problem, with `missing`
    and `unreadable` saying what to do."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{kind.capitalize()} file {path} does not exist; {missing}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{kind.capitalize()} file {path} cannot be read ({type(exc).__name__}); it is truncated or "
            f"not a file written by handwriting_gan.{' ' + unreadable if unreadable else ''}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise CheckpointError(f"{path} is not a handwriting_gan {kind} file.")
    if payload.get("format_version") != version:
        raise CheckpointError(
            f"{path} has {kind} format version {payload.get('format_version')}; this "
            f"handwriting_gan ({__version__}) reads version {version}."
        )
    network = instantiate(payload["config"])
    try:
        network.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[1:2] or [str(exc)]
        raise CheckpointError(
            f"The weights in {path} do not fit the {kind} its config describes: {first_line[0].strip()}"
        ) from None
    metadata = {k: v for k, v in payload.items() if k != "state_dict"}
    return network.eval(), metadata
