"""Mask decoders: a sample's mask file(s) become a label map, and what is wrong is said.

A decoder (:class:`MaskDecoder`) says what is wrong with a mask file from its header
(``check``) and decodes a sample's mask files into label ids, with the problem of their
values. Data modules pick :class:`LabelMasks` (values are label ids), :class:`LookupMasks`
(values are a data set's own ids, looked up in its table: Cityscapes, COCO-Stuff) or
:class:`ColourMasks` (a colour palette). Values that are no label are reported with one
wording, ``N pixels with values ...``, and become the ignore value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Protocol

import torch
from PIL import Image

from hl_lightning.data.io import LABEL_MODES, open_image, pixels, read_label_map

__all__ = [
    "ColourMasks",
    "LabelMasks",
    "LookupMasks",
    "MaskDecoder",
    "UnknownColour",
    "bad_values",
]

_SHOWN = 10  # bad values listed in one message

#: What a mask colour not in the palette does: raise or become ignored.
UnknownColour = Literal["error", "ignore"]


class MaskDecoder(Protocol):
    """Turns a sample's mask files into a label map (H, W) int64."""

    def check(self, mask: Image.Image) -> str | None:
        """Return what is wrong with a mask file's mode (None if usable), from its header."""

    def __call__(self, paths: tuple[Path, ...]) -> tuple[torch.Tensor, str | None]:
        """Return the label map (H, W) int64 and a problem with its values (None if none).

        Pixels with bad values are set to the ignore value; the problem says which.
        """


def bad_values(values: torch.Tensor, bad: torch.Tensor, meaning: str) -> str | None:
    """Return ``"N pixels with values v, ..., {meaning}"`` for the ``bad`` pixels of
    ``values`` (both (H, W)), or None where there are none.

    Example:
        >>> values = torch.tensor([[1, 7, 7], [9, 0, 1]])
        >>> bad_values(values, values > 5, "not label ids 0-5")
        '3 pixels with values 7, 9, not label ids 0-5'
    """
    if not bad.any():
        return None
    found = values[bad].unique().tolist()
    shown = ", ".join(str(v) for v in found[:_SHOWN]) + (", ..." if len(found) > _SHOWN else "")
    return f"{int(bad.sum())} pixels with values {shown}, {meaning}"


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
        if mask.mode in LABEL_MODES:
            return None
        return (
            f"mask mode {mask.mode!r} holds colours, not integer label ids (read colour-coded "
            "masks with a palette)"
        )

    def __call__(self, paths: tuple[Path, ...]) -> tuple[torch.Tensor, str | None]:
        """Return the label map (H, W) int64 of the one file, with bad values ignored."""
        mask = read_label_map(paths[0])
        bad = ((mask < 0) | (mask >= self.num_classes)) & (mask != self.ignore_index)
        meaning = (
            f"which are neither label ids 0-{self.num_classes - 1} nor the ignore value "
            f"{self.ignore_index}"
        )
        return mask.masked_fill(bad, self.ignore_index), bad_values(mask, bad, meaning)


class LookupMasks:
    """Decode 8-bit label maps whose values are a data set's ids, through its id table.

    Args:
        table: the label id of every value a file may hold (``ignore_index`` for values
            that are valid but not evaluated); any other value is bad data.
        ignore_index: the label of ignored pixels, and of bad values.
        meaning: what the file values are, for messages (``"Cityscapes label ids"``).
        expected: the files expected, for messages (``"*_gtFine_labelIds.png"``).

    :attr:`lookup` is the table as a tensor (256,): value -> label id, -1 where the value
    is not in the table.

    Example:
        >>> decoder = LookupMasks({0: 255, 7: 0, 26: 13}, 255, "ids", "*_labelIds.png")
        >>> decoder.lookup[[0, 7, 26, 1]].tolist()
        [255, 0, 13, -1]
    """

    def __init__(
        self, table: Mapping[int, int], ignore_index: int, meaning: str, expected: str
    ) -> None:
        self.ignore_index = ignore_index
        self.meaning = meaning
        self.expected = expected
        self.lookup = torch.full((256,), -1, dtype=torch.long)
        self.known = torch.zeros(256, dtype=torch.bool)  # values in the table
        for value, label in table.items():
            self.lookup[value] = label
            self.known[value] = True

    def check(self, mask: Image.Image) -> str | None:
        """Return the problem of a mask that is not an 8-bit label map, or None."""
        if mask.mode in ("L", "P"):
            return None
        return f"mask mode {mask.mode!r} is not an 8-bit label map (expected {self.expected})"

    def __call__(self, paths: tuple[Path, ...]) -> tuple[torch.Tensor, str | None]:
        """Return the label map (H, W) int64; values not in the table are a problem."""
        values = read_label_map(paths[0])
        index = values.clamp(0, 255)
        bad = (values != index) | ~self.known[index]
        mask = self.lookup[index].masked_fill(bad, self.ignore_index)
        return mask, bad_values(values, bad, f"not {self.meaning}")


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
        with open_image(paths[0], "mask") as image:
            rgb = pixels(image.convert("RGB")).long()
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
