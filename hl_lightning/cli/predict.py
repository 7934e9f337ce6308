"""hl-predict: colour-coded per-level masks for a folder of images, from a checkpoint alone.

Usage::

    hl-predict outputs/train/RUN/checkpoints/last.ckpt photos masks
    hl-predict last.ckpt photos masks --level family          # one level, by name
    hl-predict last.ckpt photos masks --level -1 --size 128 --device cuda
    hl-predict last.ckpt photos masks --decode crm --threshold 0.8   # + node maps

The network and the hierarchy are rebuilt from the checkpoint. Images (``.png``, ``.jpg``,
``.jpeg``, not recursive) are read as RGB (grey for a one-channel network), scaled to
[0, 1], resized (bilinear) to the size the training data evaluated at (its ``eval_size``:
its ``image_size`` by default, or each image's own size) and normalised as that data was;
the network runs over each image as the checkpoint's model says (``inference``: whole, or
``slide`` windows); the logits are resized back to each image's own size before decoding
(the checkpoint's decoding), so the masks ``<image stem>_<level name>.png`` match the
images; ``legend.csv`` lists every group's colour (:mod:`hl_lightning.palette`).
``--decode`` overrides the checkpoint's decoding (``crm``: the leaf of least expected tree
distance). With ``--threshold τ`` (in [0.5, 1)) each image also gets
``<image stem>_nodes.png``: per pixel the deepest node whose probability reaches τ
(:func:`~hl_lightning.decode.predict_nodes`) in that node's colour ("vehicle" where the
model cannot tell car from truck), black where no level-0 group reaches it; the legend
then lists every node (level ``nodes``).

Before anything is written the inputs are checked: a broken or foreign checkpoint, one
with non-finite weights, a normalisation that is not finite (a zero ``--std``) and an
output that would overwrite an input (an image, the checkpoint) each end the command with
one line. A network whose logits are not finite stops it at that image. Every file is
written whole (:mod:`hl_lightning.atomic`): a kill or a full disk keeps the previous one.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from torch import Tensor

from hl_lightning.atomic import atomic_write
from hl_lightning.cli._launch import CommandLineParser, importable_launch_directory
from hl_lightning.cli._version import version_text
from hl_lightning.data import synthetic_normalisation
from hl_lightning.data.io import BadDataError, open_image
from hl_lightning.decode import DecodeMethod, check_method, check_threshold, decode_levels
from hl_lightning.decode import predict_nodes as predict_node_map
from hl_lightning.lightning.checkpoints import CheckpointError, read_checkpoint
from hl_lightning.lightning.module import HierarchicalSegmenter, MissingBackboneError
from hl_lightning.palette import colorize, level_palettes, node_palette

__all__ = ["IMAGE_SUFFIXES", "load_image", "main", "predict_folder"]

PROG = "hl-predict"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class PredictError(ValueError):
    """A problem with the inputs of hl-predict: no images, an unknown level, bad options."""


def _size(value: Any) -> tuple[int, int] | None:
    """Return ``value`` (an int side, ``"HxW"``, ``[H, W]`` or None) as ``(H, W)`` or None."""
    if value is None:
        return None
    problem = f"--size must be a positive side or HxW (96x128), got {value!r}"
    try:
        if isinstance(value, str):
            value = [int(part) for part in value.lower().split("x")]
        sides = [int(value)] * 2 if isinstance(value, int) else [int(v) for v in value]
    except (TypeError, ValueError):
        raise PredictError(problem) from None
    if len(sides) == 1:
        sides *= 2
    if len(sides) != 2 or min(sides) < 1:
        raise PredictError(problem)
    return sides[0], sides[1]


def _eval_size(data: Mapping[str, Any]) -> Any:
    """Return the size a checkpoint's data module evaluated at: its ``eval_size`` (None: the
    files' own), or its ``image_size`` where that is ``"image_size"`` or not saved.

    Example:
        >>> _eval_size({"image_size": [64, 64]}), _eval_size({"image_size": 64, "eval_size": None})
        ([64, 64], None)
    """
    eval_size = data.get("eval_size", "image_size")
    return data.get("image_size") if eval_size == "image_size" else eval_size


def _floats(value: Any, what: str) -> list[float]:
    """Return a list of floats from ``"a,b,c"``, ``"[a, b, c]"`` or a sequence."""
    try:
        if isinstance(value, str):
            value = yaml.safe_load(value if value.strip().startswith("[") else f"[{value}]")
        return [float(v) for v in value]
    except (TypeError, ValueError, yaml.YAMLError):
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
    when given, then ``(x - mean) / std`` per channel. A file that cannot be read, or a
    decompression bomb (over PIL's ``Image.MAX_IMAGE_PIXELS``), is a
    :class:`~hl_lightning.data.io.BadDataError` naming it.
    """
    with open_image(path) as file:  # a file PIL cannot read, or a decompression bomb: named
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


def _normalisation(values: Any, given: Any, name: str, fallback: Sequence[float]) -> list[float]:
    """Return the ``--mean`` or ``--std`` values (``given``, else the checkpoint's, else
    ``fallback``), refused where not finite or, for the std, zero."""
    source = f"--{name}" if given is not None else f"the checkpoint's data {name}"
    numbers = _floats(given if given is not None else values.get(name, fallback), source)
    if not all(math.isfinite(v) for v in numbers):
        qualifier = " and non-zero" if name == "std" else ""
        raise PredictError(f"{source} must be finite{qualifier}, got {numbers}")
    if name == "std" and 0 in numbers:
        raise PredictError(f"{source} must be finite and non-zero, got {numbers}")
    return numbers


def _refuse_overwriting_inputs(outputs: Sequence[Path], inputs: Mapping[Path, str]) -> None:
    """Raise a PredictError naming both if an output file is one of the ``inputs`` (path:
    kind), whatever the spelling (links, ``..``): an input exists, so it has an inode."""
    identities = {}
    for path, kind in inputs.items():
        info = os.stat(path)
        identities[(info.st_dev, info.st_ino)] = (path, kind)
    for output in outputs:
        try:
            info = os.stat(output)
        except FileNotFoundError:
            continue
        if (info.st_dev, info.st_ino) in identities:
            path, kind = identities[(info.st_dev, info.st_ino)]
            raise PredictError(
                f"the output {output} would overwrite the input {kind} {path}; "
                "choose another output folder"
            )


def predict_folder(
    ckpt: str | Path,
    input_dir: str | Path,
    output_dir: str | Path,
    level: str | int = "all",
    size: int | str | Sequence[int] | None = None,
    mean: Sequence[float] | str | None = None,
    std: Sequence[float] | str | None = None,
    device: str = "cpu",
    decode: str | None = None,
    threshold: float | None = None,
) -> list[Path]:
    """Write colour masks of every image in ``input_dir`` at the chosen levels; return the files.

    Options as for the command (``hl-predict --help``): ``size``, ``mean`` and ``std``
    default to the checkpoint's data module hyper-parameters (the size it evaluated at),
    else to no resizing and the synthetic data's normalisation; ``decode`` to the
    checkpoint's decoding; with a ``threshold`` node maps ``<stem>_nodes.png`` are written
    too. Writes ``legend.csv``
    (level, group, colour) too.

    Example (a checkpoint and a folder of photos)::

        predict_folder("last.ckpt", "photos", "masks", level="family")
        # [PosixPath('masks/beach_family.png'), ..., PosixPath('masks/legend.csv')]
    """
    try:  # the options first: nothing is read before they are known to be valid
        method: DecodeMethod | None = None if decode is None else check_method(decode)
        threshold = None if threshold is None else check_threshold(threshold)
    except ValueError as error:
        raise PredictError(str(error)) from None
    images = sorted(p for p in Path(input_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise PredictError(f"no {'/'.join(IMAGE_SUFFIXES)} images in {input_dir}")
    data = read_checkpoint(ckpt).get("datamodule_hyper_parameters") or {}
    model = HierarchicalSegmenter.load_from_checkpoint(ckpt, map_location=device)
    model.eval()
    hierarchy = model.hierarchy
    levels = _levels(model, level)
    size = _size(size if size is not None else _eval_size(data))
    fallback = synthetic_normalisation(data.get("variant", "default"))
    mean = _normalisation(data, mean, "mean", fallback[0])
    std = _normalisation(data, std, "std", fallback[1])
    channels = model.in_channels
    if {len(mean), len(std)} - {1, channels}:
        raise PredictError(f"mean and std need 1 or {channels} values, got {mean} and {std}")
    palettes, node_colours = level_palettes(hierarchy), node_palette(hierarchy)
    folder = Path(output_dir)
    masks = {
        path: [folder / f"{path.stem}_{hierarchy.level_names[d]}.png" for d in levels]
        + ([folder / f"{path.stem}_nodes.png"] if threshold is not None else [])
        for path in images
    }
    legend = folder / "legend.csv"
    inputs_by_path = {Path(ckpt): "checkpoint", **dict.fromkeys(images, "image")}
    _refuse_overwriting_inputs([*(m for ms in masks.values() for m in ms), legend], inputs_by_path)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for path in images:
        inputs, original = load_image(path, channels, size, mean, std)
        if not bool(torch.isfinite(inputs).all()):
            raise PredictError(
                f"{path}: the normalised image is not finite (mean {mean}, std {std})"
            )
        with torch.no_grad():
            logits = model.infer(model, inputs.to(model.device))  # whole, or windows
            if not bool(torch.isfinite(logits).all()):
                raise PredictError(
                    f"{path}: the network's logits are not finite (NaN or infinity) with the "
                    f"checkpoint {ckpt}; no masks written from them"
                )
            if logits.shape[-2:] != original:
                logits = F.interpolate(logits, size=original, mode="bilinear")
            logits = model.leaf_logits(logits)
            maps = decode_levels(logits, hierarchy, method or model.decode)
            label_maps = [(maps[d], palettes[d]) for d in levels]
            if threshold is not None:  # the node map, in each node's colour
                nodes = predict_node_map(logits, hierarchy, threshold)
                label_maps.append((nodes, node_colours))
        for (label_map, palette), target in zip(label_maps, masks[path], strict=True):
            with atomic_write(target, "wb") as file:
                Image.fromarray(colorize(label_map[0].cpu(), palette).numpy()).save(
                    file, format="PNG"
                )
            written.append(target)
    with atomic_write(legend, newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["level", "group", "red", "green", "blue"])
        for d in levels:
            for name, colour in zip(hierarchy.group_names(d), palettes[d].tolist(), strict=True):
                writer.writerow([hierarchy.level_names[d], name, *colour])
        if threshold is not None:
            for name, colour in zip(hierarchy.node_names, node_colours.tolist(), strict=True):
                writer.writerow(["nodes", name, *colour])
    return [*written, legend]


def _parser() -> argparse.ArgumentParser:
    """Return hl-predict's argument parser."""
    parser = CommandLineParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # --version on one line
        description="Colour-coded per-level masks for a folder of images, from a checkpoint.",
        epilog="example: hl-predict outputs/train/RUN/checkpoints/last.ckpt photos masks "
        "--level family",
    )
    parser.add_argument(
        "ckpt", help="a HierarchicalSegmenter checkpoint (an hl-train run's checkpoints/last.ckpt)"
    )
    parser.add_argument("input_dir", metavar="input", help="a folder of .png/.jpg/.jpeg images")
    parser.add_argument(
        "output_dir",
        metavar="output",
        help="the folder for the masks and legend.csv (created when missing)",
    )
    parser.add_argument(
        "--level",
        default="all",
        help="all (default), a level name, or a level index (-1: the finest)",
    )
    parser.add_argument(
        "--size",
        default=None,
        help="the network's input size, a side (64) "
        "or HxW (96x128); default: the size the checkpoint's data evaluated at (eval_size: "
        "its image_size, or each image's own size)",
    )
    parser.add_argument(
        "--mean",
        default=None,
        help="per-channel normalisation, e.g. 0.5,0.5,0.5; default: the checkpoint's data module's",
    )
    parser.add_argument("--std", default=None, help="as --mean")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument(
        "--decode",
        default=None,
        help="the decoding: marginal, leaf, top_down or crm (least expected tree distance); "
        "default: the checkpoint's",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="also write <image>_nodes.png: per pixel the deepest node whose probability "
        "reaches this value in [0.5, 1) (e.g. 0.8), in its colour",
    )
    parser.add_argument("--version", action="version", version=version_text(PROG))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hl-predict``; return the exit status (1 for bad arguments or inputs)."""
    args = _parser().parse_args(argv)
    importable_launch_directory()  # a backbone class of the launch directory (mynets.MyNet)
    try:
        written = predict_folder(**vars(args))
    except (PredictError, CheckpointError, MissingBackboneError, BadDataError, OSError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    legend = written[-1]
    print(f"wrote {len(written) - 1} masks and {legend.name} into {legend.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
