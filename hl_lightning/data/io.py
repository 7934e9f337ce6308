"""Reading image, label-map and text files: images as RGB tensors, masks as integer label maps.

Problems are reported as :class:`BadDataError` naming the file. The mask decoders that
turn mask files into label ids are in :mod:`hl_lightning.data.masks`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

__all__ = [
    "IGNORE_INDEX",
    "IMAGE_MODES",
    "IMAGE_SUFFIXES",
    "LABEL_MODES",
    "BadDataError",
    "open_image",
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
#: Mask modes that hold integer label ids (8-, 16- and 32-bit grey, palette indices, bits).
LABEL_MODES = {"L", "P", "I", "I;16", "I;16L", "I;16B", "1"}

#: Mask value of pixels that no loss or metric counts (unlabelled; edges between classes).
IGNORE_INDEX = 255


class BadDataError(ValueError):
    """A data file that cannot be used; the message names the file."""


@contextmanager
def open_image(path: str | Path, what: str = "image") -> Iterator[Image.Image]:
    """Yield the opened image file at ``path``; an unreadable file (at opening or while it
    is read inside the block) raises :class:`BadDataError` naming it and ``what`` it is.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "mask.png"
        >>> _ = path.write_bytes(b"not a png")
        >>> try:
        ...     with open_image(path, "mask") as image:
        ...         pass
        ... except BadDataError as error:
        ...     print(str(error).split(": ")[1])
        cannot read the mask
    """
    try:
        with Image.open(path) as image:
            yield image
    except (OSError, UnidentifiedImageError) as err:
        raise BadDataError(f"{path}: cannot read the {what}: {err}") from err


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
    with open_image(path) as image:
        if image.mode not in IMAGE_MODES:
            raise BadDataError(
                f"{path}: image mode {image.mode!r} is not supported (expected RGB; RGBA, "
                "greyscale and palette images are converted)"
            )
        rgb = image.convert("RGB")
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
    with open_image(path, "mask") as image:
        if image.mode not in LABEL_MODES:
            raise BadDataError(
                f"{path}: mask mode {image.mode!r} holds colours, not integer label ids "
                "(read colour-coded masks with a palette)"
            )
        if image.mode in ("L", "P"):
            return pixels(image).long()
        if image.mode == "1":
            return pixels(image.convert("L")).long() // 255
        return pixels(image.convert("I"), torch.int32).long()


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


def read_lines(path: str | Path, what: str, contents: str | None = None) -> tuple[str, ...]:
    """Return the non-blank lines of a text file without ``#`` comments; raise if none.

    ``what`` names the file in errors (``cannot read the {what} file``), ``contents`` what
    its lines hold (``no {contents}``; default ``{what} (one a line)``).

    Example:
        >>> import tempfile
        >>> file = Path(tempfile.mkdtemp()) / "val.txt"
        >>> _ = file.write_text("a  # first\\n\\nb\\n")
        >>> read_lines(file, "sample names")
        ('a', 'b')
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as err:
        raise FileNotFoundError(f"cannot read the {what} file {path}: {err.strerror}") from err
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    names = tuple(line for line in lines if line)
    if not names:
        raise ValueError(f"{path}: no {contents or f'{what} (one a line)'}")
    return names
