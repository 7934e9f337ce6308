"""hl-predict: colour-coded per-level masks for a folder of images, from a checkpoint alone.

Usage (``key=value`` arguments, as for hl-train)::

    hl-predict ckpt=outputs/train/RUN/checkpoints/last.ckpt input=photos output=masks
    hl-predict ckpt=last.ckpt input=photos output=masks level=family   # one level, by name
    hl-predict ckpt=last.ckpt input=photos output=masks level=-1 size=128 device=cuda

Keys:

- ``ckpt`` (required): a HierarchicalSegmenter checkpoint, e.g. an hl-train run's
  ``checkpoints/last.ckpt``; the network and the hierarchy are rebuilt from it.
- ``input`` (required): a folder of ``.png``/``.jpg``/``.jpeg`` images (not recursive).
- ``output`` (required): the folder for ``<image stem>_<level name>.png`` masks and
  ``legend.csv`` (level, group, colour); created when missing.
- ``level``: ``all`` (default), a level name, or a level index (``-1``: the finest).
- ``size``: the network's input size, a side (``64``) or ``HxW`` (``96x128``). Default:
  the ``image_size`` the checkpoint's data module saved, else the images' own size.
- ``mean``, ``std``: the per-channel normalisation (``0.5,0.5,0.5`` or ``[0.5,0.5,0.5]``).
  Default: the ``mean``/``std`` the checkpoint's data module saved, else the synthetic
  data's (:data:`~hl_lightning.data.SYNTHETIC_MEAN`, :data:`~hl_lightning.data.SYNTHETIC_STD`).
- ``device``: ``cpu`` (default), ``cuda``, ...

Images are read as RGB (grey for a one-channel network), scaled to [0, 1], resized
(bilinear) and normalised as the training data was. The logits are resized back to each
image's own size before decoding (the checkpoint's decoding, ``marginal`` by default), so
the masks match the input images; colours are those of :mod:`hl_lightning.palette`.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from torch import Tensor

from hl_lightning.data import SYNTHETIC_MEAN, SYNTHETIC_STD
from hl_lightning.decode import decode
from hl_lightning.lightning.module import HierarchicalSegmenter, MissingBackboneError
from hl_lightning.palette import colorize, level_palettes

__all__ = ["IMAGE_SUFFIXES", "load_image", "main", "predict_folder"]

PROG = "hl-predict"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_KEYS = ("ckpt", "input", "output", "level", "size", "mean", "std", "device")
_REQUIRED = ("ckpt", "input", "output")


class PredictError(ValueError):
    """A problem with the inputs of hl-predict: no images, an unknown level, bad options."""


def _size(value: Any) -> tuple[int, int] | None:
    """Return ``value`` (an int side, ``"HxW"``, ``[H, W]`` or None) as ``(H, W)`` or None."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [int(part) for part in value.lower().split("x")]
    sides = [int(value)] * 2 if isinstance(value, int) else [int(v) for v in value]
    if len(sides) == 1:
        sides *= 2
    if len(sides) != 2 or min(sides) < 1:
        raise PredictError(f"size must be a positive side or HxW, got {value!r}")
    return sides[0], sides[1]


def _floats(value: Any, what: str) -> list[float]:
    """Return a list of floats from ``"a,b,c"``, ``"[a, b, c]"`` or a sequence."""
    if isinstance(value, str):
        value = yaml.safe_load(value if value.strip().startswith("[") else f"[{value}]")
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        raise PredictError(f"{what} must be numbers like 0.5,0.5,0.5, got {value!r}") from None


def load_image(
    path: str | Path,
    channels: int,
    size: tuple[int, int] | None,
    mean: Sequence[float],
    std: Sequence[float],
) -> tuple[Tensor, tuple[int, int]]:
    """Return the network input (1, C, H, W) of an image file and the file's (height, width).

    RGB (``channels`` 3) or grey (1), scaled to [0, 1], resized to ``size`` (bilinear)
    when given, then ``(x - mean) / std`` per channel.
    """
    with Image.open(path) as file:
        image = file.convert("L" if channels == 1 else "RGB")
    original = (image.height, image.width)
    if size is not None and size != original:
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    pixels = pixels.view(image.height, image.width, -1).permute(2, 0, 1).float() / 255
    shape = (-1, 1, 1)
    normalised = (pixels - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)
    return normalised.unsqueeze(0), original


def _levels(model: HierarchicalSegmenter, level: str | int) -> list[int]:
    """Return the level indices that ``level`` (``all``, a name or an index) selects."""
    names = model.hierarchy.level_names
    if str(level) == "all":
        return list(range(len(names)))
    if str(level) in names:
        return [names.index(str(level))]
    try:
        index = int(level)
    except ValueError:
        index = None
    if index is None or not -len(names) <= index < len(names):
        raise PredictError(
            f"no level {level!r}: use all, a level name ({', '.join(names)}) or an index "
            f"from {-len(names)} to {len(names) - 1}"
        )
    return [index % len(names)]


def _data_hparams(ckpt: str | Path) -> Mapping[str, Any]:
    """Return the data module hyper-parameters saved in the checkpoint (empty if none)."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    return checkpoint.get("datamodule_hyper_parameters") or {}


def predict_folder(
    ckpt: str | Path,
    input_dir: str | Path,
    output_dir: str | Path,
    level: str | int = "all",
    size: int | str | Sequence[int] | None = None,
    mean: Sequence[float] | str | None = None,
    std: Sequence[float] | str | None = None,
    device: str = "cpu",
) -> list[Path]:
    """Write colour masks of every image in ``input_dir`` at the chosen levels; return the files.

    Options as for the command (see the module docstring): ``size``, ``mean`` and ``std``
    default to the checkpoint's data module hyper-parameters, else to no resizing and the
    synthetic data's normalisation. Writes ``legend.csv`` (level, group, colour) too.

    Example:
        >>> predict_folder("last.ckpt", "photos", "masks", level="family")  # doctest: +SKIP
        [PosixPath('masks/beach_family.png'), ..., PosixPath('masks/legend.csv')]
    """
    images = sorted(p for p in Path(input_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise PredictError(f"no {'/'.join(IMAGE_SUFFIXES)} images in {input_dir}")
    data = _data_hparams(ckpt)
    model = HierarchicalSegmenter.load_from_checkpoint(ckpt, map_location=device)
    model.eval()
    hierarchy = model.hierarchy
    levels = _levels(model, level)
    size = _size(size if size is not None else data.get("image_size"))
    mean = _floats(mean if mean is not None else data.get("mean", SYNTHETIC_MEAN), "mean")
    std = _floats(std if std is not None else data.get("std", SYNTHETIC_STD), "std")
    channels = model.in_channels
    if {len(mean), len(std)} - {1, channels}:
        raise PredictError(f"mean and std need 1 or {channels} values, got {mean} and {std}")
    palettes = level_palettes(hierarchy)
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for path in images:
        inputs, original = load_image(path, channels, size, mean, std)
        with torch.no_grad():
            logits = model(inputs.to(model.device))
            if logits.shape[-2:] != original:
                logits = F.interpolate(logits, size=original, mode="bilinear")
            maps = decode(logits, hierarchy, model.decode)
        for d in levels:
            target = folder / f"{path.stem}_{hierarchy.level_names[d]}.png"
            Image.fromarray(colorize(maps[d][0].cpu(), palettes[d]).numpy()).save(target)
            written.append(target)
    legend = folder / "legend.csv"
    with legend.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["level", "group", "red", "green", "blue"])
        for d in levels:
            for name, colour in zip(hierarchy.group_names(d), palettes[d].tolist(), strict=True):
                writer.writerow([hierarchy.level_names[d], name, *colour])
    return [*written, legend]


def _settings(tokens: Sequence[str]) -> dict[str, str]:
    """Return the ``key=value`` tokens as :func:`predict_folder` arguments; raise for a bad one."""
    settings: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or key not in _KEYS:
            raise PredictError(
                f"expected key=value with key one of {', '.join(_KEYS)}; got {token!r}"
            )
        settings[key] = value
    missing = [key for key in _REQUIRED if key not in settings]
    if missing:
        raise PredictError(f"missing {', '.join(f'{key}=...' for key in missing)}")
    renamed = {"input": "input_dir", "output": "output_dir"}
    return {renamed.get(key, key): value for key, value in settings.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hl-predict``; return the exit status (2 for bad arguments, 1 for bad inputs)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Colour-coded per-level masks for a folder of images, from a checkpoint.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("settings", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    try:
        settings = _settings(args.settings)
    except PredictError as err:
        parser.error(str(err))
    try:
        written = predict_folder(**settings)
    except (PredictError, MissingBackboneError, OSError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    legend = written[-1]
    print(f"wrote {len(written) - 1} masks and {legend.name} into {legend.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
