"""The picture of a batch: per image its truth and prediction at every level, and a legend."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw
from torch import Tensor

from hl_lightning.hierarchy import Hierarchy
from hl_lightning.palette import colorize, level_palettes, node_palette

__all__ = ["level_legend", "prediction_grid"]

_CELL = 96  # smallest side of a grid cell, pixels: small images are enlarged (nearest)
_GAP = 2  # white pixels between cells
_HEADER = 16  # height of the title row, pixels
_SWATCH = 10  # side of a legend's colour square, pixels
_LINE = 14  # height of a legend line, pixels


def _display(images: Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> Tensor:
    """Return uint8 RGB images (N, H, W, 3) from normalised float images (N, C, H, W).

    With ``mean`` and ``std`` the normalisation is undone; without, each image's range is
    stretched to [0, 1]. One channel is shown grey; channels beyond the third are dropped.
    """
    images = images.detach().float().cpu()
    if mean is not None and std is not None:
        shape = (1, -1, 1, 1)
        images = images * torch.tensor(std).view(shape) + torch.tensor(mean).view(shape)
    else:
        low = images.amin((1, 2, 3), keepdim=True)
        high = images.amax((1, 2, 3), keepdim=True)
        images = (images - low) / (high - low).clamp_min(1e-8)
    images = images[:, :3] if images.shape[1] >= 3 else images[:, :1].expand(-1, 3, -1, -1)
    return images.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1)


def prediction_grid(
    images: Tensor,
    masks: Tensor,
    predictions: Sequence[Tensor],
    hierarchy: Hierarchy,
    ignore_index: int | None = 255,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    legend: bool = True,
) -> Tensor:
    """Return a uint8 RGB picture (H, W, 3): per image, its ground truth and prediction per level.

    One row per image: the image, then for each level (coarse to fine) the ground truth and
    the prediction, coloured with :func:`~hl_lightning.palette.level_palettes` (children
    are shades of their parent; ignored pixels black), under a title row and above the
    colours' legend (:func:`level_legend`). A coarse label (an internal node's id) is
    known down to its node's level: below it, its pixels are drawn in the node's own
    colour (:func:`~hl_lightning.palette.node_palette`), and the legend lists such nodes.
    Small images are enlarged (nearest neighbour) so that a cell is at least 96 pixels
    high.

    Args:
        images: (N, C, H, W) float, normalised as the network sees them.
        masks: (N, H, W) label ids (leaves, or internal nodes: coarse labels),
            ``ignore_index`` where unlabelled.
        predictions: D label maps (N, H, W) of group ids, one per level, coarse to fine
            (the values of :meth:`HierarchicalSegmenter.predict_step`).
        hierarchy: the class tree (leaf ``i`` = label id ``i``).
        ignore_index: the mask value of unlabelled pixels.
        mean, std: the per-channel normalisation to undo for display; when None, each
            image's range is stretched to [0, 1].
        legend: draw the legend of the colours under the cells.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> masks = torch.randint(3, (2, 32, 32))
        >>> grid = prediction_grid(torch.rand(2, 3, 32, 32), masks, [masks % 2, masks], h)
        >>> grid.shape, grid.dtype  # a title row, 2 x 5 cells of 96 pixels, 2-pixel gaps, legend
        (torch.Size([256, 488, 3]), torch.uint8)
    """
    palettes, nodes = level_palettes(hierarchy), node_palette(hierarchy)
    masks = masks.detach().cpu().long()
    labelled = (masks >= 0) & (masks < hierarchy.num_nodes)  # node ids, not ignored
    if ignore_index is not None:
        labelled &= masks != ignore_index
    label = masks.clamp(0, hierarchy.num_nodes - 1)
    node_groups = hierarchy.node_level_matrix()  # -1 below a coarse label's level
    columns = [_display(images, mean, std)]
    titles = ["image"]
    coarse = labelled & (masks >= hierarchy.num_leaves)
    for level, (name, palette, predicted) in enumerate(
        zip(hierarchy.level_names, palettes, predictions, strict=True)
    ):
        groups = torch.where(labelled, node_groups[level][label], -1)
        truth = colorize(groups, palette)
        below = labelled & (groups < 0)  # coarse labels below their level: the node's colour
        truth[below] = nodes[label[below]]
        columns += [truth, colorize(predicted.detach().cpu(), palette)]
        titles += [f"{name} truth", f"{name} pred"]
    scale = math.ceil(_CELL / min(masks.shape[-2:]))
    cells = torch.stack(columns, 1)  # (N, columns, H, W, 3)
    cells = cells.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
    cells = torch.nn.functional.pad(cells, (0, 0, 0, _GAP, 0, _GAP), value=255)
    rows, count, height, width, _ = cells.shape
    grid = cells.permute(0, 2, 1, 3, 4).reshape(rows * height, count * width, 3)
    picture = _titled(grid[:-_GAP, :-_GAP], titles, width)
    if not legend:
        return picture
    shown = masks[coarse].unique().tolist()  # the coarse labels in the truth
    return torch.cat([picture, level_legend(hierarchy, picture.shape[1], shown)])


def level_legend(hierarchy: Hierarchy, width: int, coarse: Sequence[int] = ()) -> Tensor:
    """Return the legend of the level colours as a uint8 RGB strip (H, ``width``, 3).

    A line per level: its name, then a colour square and the name of each of its groups,
    in group order, wrapped to ``width``; with ``coarse`` (internal node ids: the coarse
    labels of the ground truth), a line saying that such truth is drawn in its node's
    colour below the node's level, with each node's colour; a last line for black, the
    ignored pixels.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> level_legend(h, 300).shape  # 2 levels and the ignored pixels: 3 lines of 14 pixels
        torch.Size([46, 300, 3])
        >>> level_legend(h, 500, coarse=[h.label_id("vehicle")]).shape  # and a coarse line
        torch.Size([60, 500, 3])
    """
    lines = [
        (f"{name}:", list(zip(hierarchy.group_names(d), palette.tolist(), strict=True)))
        for d, (name, palette) in enumerate(
            zip(hierarchy.level_names, level_palettes(hierarchy), strict=True)
        )
    ]
    if coarse:
        colours = node_palette(hierarchy)
        nodes = [(hierarchy.node_names[i], colours[i].tolist()) for i in coarse]
        lines.append(("coarse truth below its node's level:", nodes))
    lines.append(("", [("ignored", [0, 0, 0])]))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    placed: list[tuple[int, int, str, tuple[int, ...] | None]] = []  # x, y, text, its colour
    y = 2
    for heading, groups in lines:
        x = 2
        if heading:
            placed.append((x, y, heading, None))
            x += math.ceil(measure.textlength(heading)) + 6
        indent = x
        for name, colour in groups:
            size = _SWATCH + 3 + math.ceil(measure.textlength(name)) + 10
            if x + size > width and x > indent:  # wrap, under the first group
                x, y = indent, y + _LINE
            placed.append((x, y, name, tuple(colour)))
            x += size
        y += _LINE
    picture = Image.new("RGB", (width, y + 2), "white")
    draw = ImageDraw.Draw(picture)
    for x, y, text, colour in placed:
        if colour is not None:
            draw.rectangle(
                (x, y + 1, x + _SWATCH + 1, y + _SWATCH + 2), fill=colour, outline="grey"
            )
            x += _SWATCH + 5
        draw.text((x, y), text, fill="black")
    return _tensor(picture)


def _titled(grid: Tensor, titles: Sequence[str], step: int) -> Tensor:
    """Return the picture (H, W, 3) with a white title row, one title every ``step`` pixels."""
    picture = Image.new("RGB", (grid.shape[1], grid.shape[0] + _HEADER), "white")
    picture.paste(Image.fromarray(grid.numpy()), (0, _HEADER))
    draw = ImageDraw.Draw(picture)
    for i, title in enumerate(titles):
        draw.text((i * step + 2, 2), title, fill="black")
    return _tensor(picture)


def _tensor(picture: Image.Image) -> Tensor:
    """Return an RGB picture as a uint8 tensor (H, W, 3)."""
    return torch.frombuffer(bytearray(picture.tobytes()), dtype=torch.uint8).view(
        picture.height, picture.width, 3
    )
