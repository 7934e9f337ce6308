"""Reading image and mask files: images as RGB tensors, label-id and colour-coded masks.

A mask decoder (:class:`MaskDecoder`) turns a sample's mask file(s) into a label map and
says what is wrong with a file from its header (``check``) or its values; data modules pick
:class:`LabelMasks` (integer label ids) or :class:`ColourMasks` (a colour palette).
Problems are reported as :class:`BadDataError` naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Protocol

import torch
from PIL import Image, UnidentifiedImageError

__all__ = [
    "IGNORE_INDEX",
    "IMAGE_MODES",
    "IMAGE_SUFFIXES",
    "BadDataError",
    "ColourMasks",
    "LabelMasks",
    "MaskDecoder",
    "UnknownColour",
    "pixels",
    "read_class_names",
    "read_image",
    "read_label_map",
    "read_lines",
]

#: File suffixes read as images (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Image modes read (converted to RGB); others (16-bit, float) are bad data.
IMAGE_MODES = {"RGB", "RGBA", "RGBX", "L", "LA", "P", "PA", "CMYK", "YCbCr", "1"}
_LABEL_MODES = {"L", "P", "I", "I;16", "I;16L", "I;16B", "1"}
_SHOWN = 10  # bad values listed in one message

#: Mask value of pixels that no loss or metric counts (unlabelled; edges between classes).
IGNORE_INDEX = 255
#: What a mask colour not in the palette does: raise or become ignored.
UnknownColour = Literal["error", "ignore"]


class BadDataError(ValueError):
    """A data file that cannot be used; the message names the file."""


class MaskDecoder(Protocol):
    """Turns a sample's mask files into a label map (H, W) int64."""

    def check(self, mask: Image.Image) -> str | None:
        """Return what is wrong with a mask file's mode (None if usable), from its header."""

    def __call__(self, paths: tuple[Path, ...]) -> tuple[torch.Tensor, str | None]:
        """Return the label map (H, W) int64 and a problem with its values (None if none).

        Pixels with bad values are set to the ignore value; the problem says which.
        """


def pixels(image: Image.Image, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """Return the pixel data (H, W) or (H, W, C) of a PIL image, as ``dtype`` (no numpy).

    Example:
        >>> pixels(Image.new("RGB", (3, 2), (1, 2, 3))).shape
        torch.Size([2, 3, 3])
    """
    width, height = image.size
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=dtype)
    return data.view(height, width, -1).squeeze(-1)


def read_image(path: str | Path) -> torch.Tensor:
    """Return the RGB image (3, H, W) uint8 at ``path`` (alpha dropped, grey expanded).

    Raises :class:`BadDataError` naming the file for unreadable files and for modes
    without an RGB reading (16-bit or float images).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "grey.png"
        >>> Image.new("L", (4, 2), 7).save(path)
        >>> image = read_image(path)
        >>> image.shape, image.dtype, image[:, 0, 0].tolist()
        (torch.Size([3, 2, 4]), torch.uint8, [7, 7, 7])
    """
    try:
        with Image.open(path) as image:
            if image.mode not in IMAGE_MODES:
                raise BadDataError(
                    f"{path}: image mode {image.mode!r} is not supported (expected RGB; RGBA, "
                    "greyscale and palette images are converted)"
                )
            rgb = image.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise BadDataError(f"{path}: cannot read the image: {err}") from err
    return pixels(rgb).permute(2, 0, 1).contiguous()


def read_label_map(path: str | Path) -> torch.Tensor:
    """Return the integer label map (H, W) int64 stored at ``path``.

    Reads 8-bit (``L``), palette (``P``: the palette indices are the labels), 16- and
    32-bit integer PNGs; a colour (RGB) file raises :class:`BadDataError` naming it.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "mask.png"
        >>> Image.new("I;16", (4, 2), 300).save(path)
        >>> mask = read_label_map(path)
        >>> mask.shape, mask.dtype, mask[0, 0].item()
        (torch.Size([2, 4]), torch.int64, 300)
    """
    try:
        with Image.open(path) as image:
            if image.mode not in _LABEL_MODES:
                raise BadDataError(
                    f"{path}: mask mode {image.mode!r} holds colours, not integer label ids "
                    "(read colour-coded masks with a palette)"
                )
            if image.mode in ("L", "P"):
                return pixels(image).long()
            if image.mode == "1":
                return pixels(image.convert("L")).long() // 255
            return pixels(image.convert("I"), torch.int32).long()
    except (OSError, UnidentifiedImageError) as err:
        raise BadDataError(f"{path}: cannot read the mask: {err}") from err


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """Return the class names listed in a text file, one a line (blank lines and ``#`` skipped).

    Example:
        >>> import tempfile
        >>> file = Path(tempfile.mkdtemp()) / "classes.txt"
        >>> _ = file.write_text("# label order\\nsky\\n\\ncar\\n")
        >>> read_class_names(file)
        ('sky', 'car')
    """
    return read_lines(path, "class names")


def read_lines(path: str | Path, what: str) -> tuple[str, ...]:
    """Return the non-blank lines of a text file without ``#`` comments; raise if none."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as err:
        raise FileNotFoundError(f"cannot read the {what} file {path}: {err.strerror}") from err
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    names = tuple(line for line in lines if line)
    if not names:
        raise ValueError(f"{path}: no {what} (one a line)")
    return names


def _value_problem(mask: torch.Tensor, num_classes: int, ignore_index: int) -> str | None:
    """Return a description of the values of ``mask`` that are neither labels nor ignored."""
    bad = ((mask < 0) | (mask >= num_classes)) & (mask != ignore_index)
    if not bad.any():
        return None
    values = mask[bad].unique().tolist()
    shown = ", ".join(str(v) for v in values[:_SHOWN]) + (", ..." if len(values) > _SHOWN else "")
    return (
        f"{int(bad.sum())} pixels with values {shown}, which are neither label ids "
        f"0-{num_classes - 1} nor the ignore value {ignore_index}"
    )


class LabelMasks:
    """Decode integer label-map files whose values are label ids (or the ignore value).

    Example:
        >>> decoder = LabelMasks(num_classes=3, ignore_index=255)
        >>> decoder.check(Image.new("RGB", (4, 4))) is not None  # a colour file is refused
        True
    """

    def __init__(self, num_classes: int, ignore_index: int) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def check(self, mask: Image.Image) -> str | None:
        """Return the problem of a colour (non-integer) mask mode, or None."""
        if mask.mode in _LABEL_MODES:
            return None
        return (
            f"mask mode {mask.mode!r} holds colours, not integer label ids (read colour-coded "
            "masks with a palette)"
        )

    def __call__(self, paths: tuple[Path, ...]) -> tuple[torch.Tensor, str | None]:
        """Return the label map (H, W) int64 of the one file, with bad values ignored."""
        mask = read_label_map(paths[0])
        problem = _value_problem(mask, self.num_classes, self.ignore_index)
        if problem is not None:
            bad = ((mask < 0) | (mask >= self.num_classes)) & (mask != self.ignore_index)
            mask = mask.masked_fill(bad, self.ignore_index)
        return mask, problem


class ColourMasks:
    """Decode colour-coded (RGB) masks with a colour table: colour -> label id.

    Args:
        colours: label id of every colour ``(r, g, b)``.
        ignore_index: label of ignored pixels.
        unknown: ``"error"``: a colour not in the table is a problem naming it;
            ``"ignore"``: such pixels are ignored silently.

    Example:
        >>> decoder = ColourMasks({(0, 0, 255): 0, (255, 0, 0): 1}, ignore_index=255)
        >>> decoder.check(Image.new("L", (4, 4))) is not None  # greyscale: no colours
        True
    """

    def __init__(
        self,
        colours: Mapping[tuple[int, int, int], int],
        ignore_index: int,
        unknown: UnknownColour = "error",
    ) -> None:
        if unknown not in ("error", "ignore"):
            raise ValueError(f"unknown_colour must be 'error' or 'ignore', got {unknown!r}")
        self.codes = {(r << 16) | (g << 8) | b: label for (r, g, b), label in colours.items()}
        self.ignore_index = ignore_index
        self.unknown = unknown

    def check(self, mask: Image.Image) -> str | None:
        """Return the problem of a mask without colours (greyscale, integer), or None."""
        if mask.mode in ("RGB", "RGBA", "RGBX", "P", "PA"):
            return None
        return f"mask mode {mask.mode!r} has no colours, but a palette was given"

    def __call__(self, paths: tuple[Path, ...]) -> tuple[torch.Tensor, str | None]:
        """Return the label map (H, W) int64 of the one colour file."""
        path = paths[0]
        try:
            with Image.open(path) as image:
                rgb = pixels(image.convert("RGB")).long()
        except (OSError, UnidentifiedImageError) as err:
            raise BadDataError(f"{path}: cannot read the mask: {err}") from err
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        unique, inverse = codes.unique(return_inverse=True)
        labels = torch.tensor([self.codes.get(int(c), -1) for c in unique.tolist()])
        mask = labels[inverse]
        unknown = [int(c) for c in unique[labels < 0].tolist()]
        mask = mask.masked_fill(mask < 0, self.ignore_index)
        if not unknown or self.unknown == "ignore":
            return mask, None
        shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in unknown[:_SHOWN])
        more = ", ..." if len(unknown) > _SHOWN else ""
        return mask, f"colours {shown}{more} are not in the palette"
