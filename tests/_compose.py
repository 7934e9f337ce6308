"""Compose hl-train's (or hl-eval's) config in-process, as the tests of the apps need it."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import DictConfig


def make_config(
    overrides: list[str], output_dir: Path | None = None, config_name: str = "train"
) -> DictConfig:
    """Return the composed ``config_name`` config (``train``, or hl-eval's ``eval``) with its
    ``hydra`` node, outputs in output_dir."""
    paths = [] if output_dir is None else [f"paths.output_dir={output_dir}"]
    with initialize_config_module(config_module="hl_lightning.conf", version_base="1.3"):
        return compose(
            config_name=config_name, overrides=[*overrides, *paths], return_hydra_config=True
        )
