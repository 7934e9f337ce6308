"""The embedded default dataset: procedural scenes whose classes form an unbalanced tree.

Every image is a grey background, overlaid with up to three amorphous textured regions
("stuff": cool hues) and up to five compact shapes ("things": warm hues), in random order,
so later layers occlude earlier ones. The tree of
:func:`~hl_lightning.hierarchies.synthetic_hierarchy` follows the look of the classes:

- level 0 (kind): background (a leaf), stuff, things: grey vs cool vs warm hues;
- level 1 (family): sky (a leaf), water (blue), vegetation (green), round (red),
  angular (orange): one hue family each;
- level 2 (class): within a family, subtler cues: stripe frequency and orientation
  (calm vs choppy water), texture and shade (grass, shrub, forest), or the shape and a
  shade that overlaps between siblings (disc, ring, ellipse; square, triangle, diamond).

Colours, sizes and textures are jittered per instance, the images carry illumination
changes and pixel noise, and shapes occlude each other, so the fine level is clearly
harder than the coarse ones: a small U-Net trained for a minute or two on a CPU reaches
a leaf mIoU of about 0.6, and about 0.97 on the two coarse levels
(``scripts/check_synthetic.py``). The hard variant (``variant="hard"``) tells kind and
family apart by shape and texture rather than colour; the variants' classes and looks
are in :mod:`hl_lightning.data.synthetic_variants`.
Generation is vectorised and deterministic: sample ``i`` depends only on ``(seed, i)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from hl_lightning.data.io import IGNORE_INDEX
from hl_lightning.data.seeds import derive_seed
from hl_lightning.data.synthetic_variants import Look, Variant, synthetic_look

__all__ = ["SyntheticShapes"]

_CHUNK = 64  # samples generated together; chunk c is drawn from its own seed
_REFERENCE_SIZE = 64  # sizes and texture periods below are in pixels at 64 x 64


def _hsv_to_rgb(hue: torch.Tensor, sat: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
    """Return RGB colours (N, 3) in [0, 1] of hue (wrapping), saturation and value (N,)."""
    sat, val = sat.clamp(0, 1)[:, None], val.clamp(0, 1)[:, None]
    k = torch.remainder(torch.tensor([5.0, 3.0, 1.0]) + 6 * hue[:, None], 6)
    return val - val * sat * torch.minimum(k, 4 - k).clamp(0, 1)


class _Sampler:
    """Random draws of one chunk from one generator."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def uniform(
        self, low: float | torch.Tensor, high: float | torch.Tensor, n: int
    ) -> torch.Tensor:
        """Return n uniform draws (n,) in [low, high) (bounds may be tensors (n,))."""
        return low + (high - low) * torch.rand(n, generator=self.generator)

    def choice(self, k: int, n: int) -> torch.Tensor:
        """Return n uniform indices (n,) in [0, k)."""
        return torch.randint(k, (n,), generator=self.generator)

    def smooth(self, n: int, size: int, cells: int) -> torch.Tensor:
        """Return smooth noise (n, size, size): a cells x cells Gaussian grid, up-sampled."""
        grid = torch.randn(n, 1, cells, cells, generator=self.generator)
        return F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=False)[:, 0]

    def normal(self, *shape: int) -> torch.Tensor:
        """Return standard normal draws of the given shape."""
        return torch.randn(*shape, generator=self.generator)


def _shape_mask(name: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Return bools (m, H, W): inside the shape ``name``.

    u, v (m, H, W) are pixel coordinates in the shape's rotated frame, divided by its size.
    """
    s = math.sqrt(3) / 2
    if name == "disc":
        return u**2 + v**2 <= 0.85**2
    if name == "ring":
        radius2 = u**2 + v**2
        return (radius2 <= 1.0) & (radius2 >= 0.55**2)
    if name == "ellipse":
        return (u / 1.15) ** 2 + (v / 0.55) ** 2 <= 1.0
    if name == "crescent":  # a disc less a disc shifted along u
        return (u**2 + v**2 <= 1.0) & ((u - 0.55) ** 2 + v**2 > 0.75**2)
    if name == "square":
        return torch.maximum(u.abs(), v.abs()) <= 0.75
    if name == "triangle":
        return torch.maximum(torch.maximum(u, -0.5 * u + s * v), -0.5 * u - s * v) <= 0.6
    if name == "hexagon":
        return (
            torch.maximum(torch.maximum(v.abs(), (s * u + 0.5 * v).abs()), (s * u - 0.5 * v).abs())
            <= 0.8
        )
    if name == "diamond":
        return u.abs() / 0.75 + v.abs() / 1.15 <= 1.0
    raise ValueError(f"no shape {name!r}")


def _grating(
    x: torch.Tensor,
    y: torch.Tensor,
    wavelength: torch.Tensor,
    theta: torch.Tensor,
    phase: torch.Tensor,
    spots: torch.Tensor,
) -> torch.Tensor:
    """Return a texture (n, S, S) in [-1, 1]: stripes, or two crossed gratings where ``spots``.

    x (1, 1, S), y (1, S, 1) are pixel coordinates; the other arguments are (n, 1, 1).
    """
    along = x * theta.cos() + y * theta.sin()
    across = y * theta.cos() - x * theta.sin()
    stripes = torch.sin(2 * math.pi * along / wavelength + phase)
    return torch.where(
        spots, stripes * torch.sin(2 * math.pi * across / wavelength + phase), stripes
    )


def _generate(n: int, size: int, seed: int, look: Look) -> tuple[torch.Tensor, torch.Tensor]:
    """Return raw images (n, 3, S, S) in [0, 1] and leaf masks (n, S, S) int64 of one chunk."""
    draw = _Sampler(seed)
    scale = size / _REFERENCE_SIZE
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    y, x = coords[None, :, None], coords[None, None, :]  # (1, S, 1), (1, 1, S)
    label_of = {name: i for i, name in enumerate(look.classes)}

    # background: a faintly tinted grey under smooth illumination changes
    grey = _hsv_to_rgb(
        draw.uniform(0, 1, n), draw.uniform(0, look.grey_saturation, n), draw.uniform(0.3, 0.7, n)
    )
    light = 1 + 0.2 * draw.smooth(n, size, 3)
    images = grey[:, :, None, None] * light[:, None]
    masks = torch.full((n, size, size), label_of["background"], dtype=torch.long)

    # stuff: amorphous regions (thresholded smooth noise) with grating textures
    regions = list(look.regions.values())
    region_labels = torch.tensor([label_of[name] for name in look.regions])
    table = {
        field: torch.tensor([getattr(r, field) for r in regions], dtype=torch.float32)
        for field in ("hue", "saturation", "value", "contrast")
    }
    period = torch.tensor([r.period for r in regions]) * scale
    angle = torch.tensor([r.angle for r in regions])
    spots = torch.tensor([r.spots for r in regions])
    step = max(1, size // 16)
    for _ in range(3):
        kind = draw.choice(len(regions), n)
        field = draw.smooth(n, size, 4)
        coverage = draw.uniform(0.12, 0.35, n)
        sample = field[:, ::step, ::step].flatten(1)  # the coverage quantile on a sub-grid
        rank = ((1 - coverage) * (sample.shape[1] - 1)).long()
        threshold = sample.sort(dim=1).values.gather(1, rank[:, None])
        present = draw.uniform(0, 1, n) < 0.75
        inside = (field >= threshold[:, :, None]) & present[:, None, None]
        colour = _hsv_to_rgb(
            table["hue"][kind] + 0.02 * draw.normal(n),
            table["saturation"][kind] + draw.uniform(-0.1, 0.1, n),
            table["value"][kind] + draw.uniform(-0.08, 0.08, n),
        )
        wavelength = draw.uniform(period[kind, 0], period[kind, 1], n)[:, None, None]
        theta = draw.uniform(angle[kind, 0], angle[kind, 1], n)[:, None, None]
        phase = draw.uniform(0, 2 * math.pi, n)[:, None, None]
        texture = _grating(x, y, wavelength, theta, phase, spots[kind][:, None, None])
        texture = 1 + table["contrast"][kind][:, None, None] * texture
        images = torch.where(inside[:, None], colour[:, :, None, None] * texture[:, None], images)
        masks = torch.where(inside, region_labels[kind][:, None, None], masks)

    # things: compact shapes in their family's hue, side-lit
    shape_labels = torch.tensor([label_of[name] for name in look.shapes])
    hues = torch.tensor([shape.hue for shape in look.shapes.values()])
    values = torch.tensor([shape.value for shape in look.shapes.values()])
    upright = torch.tensor([name in look.upright for name in look.shapes])
    for _ in range(5):
        kind = draw.choice(len(hues), n)
        cx, cy = draw.uniform(0, size, n), draw.uniform(0, size, n)
        low, high = look.shape_radius
        radius = draw.uniform(low * scale, high * scale, n)[:, None, None]
        theta = torch.where(
            upright[kind], draw.uniform(-0.25, 0.25, n), draw.uniform(0, 2 * math.pi, n)
        )[:, None, None]
        dx, dy = x - cx[:, None, None], y - cy[:, None, None]
        u = (dx * theta.cos() + dy * theta.sin()) / radius
        v = (dy * theta.cos() - dx * theta.sin()) / radius
        present = draw.uniform(0, 1, n) < 0.8
        inside = torch.zeros(n, size, size, dtype=torch.bool)
        for k, name in enumerate(look.shapes):
            chosen = (kind == k).nonzero()[:, 0]
            inside[chosen] = _shape_mask(name, u[chosen], v[chosen])
        inside &= present[:, None, None]
        colour = _hsv_to_rgb(
            hues[kind] + 0.03 * draw.normal(n),
            draw.uniform(*look.shape_saturation, n),
            values[kind] + draw.uniform(-0.08, 0.08, n),
        )
        shade = 1 + 0.15 * u.clamp(-1, 1)
        if look.shape_texture:  # a faint grating, as on the stuff
            wavelength = draw.uniform(3 * scale, 10 * scale, n)[:, None, None]
            phase = draw.uniform(0, 2 * math.pi, n)[:, None, None]
            cross = (draw.uniform(0, 1, n) < 0.5)[:, None, None]
            shade = shade + look.shape_texture * _grating(x, y, wavelength, theta, phase, cross)
        images = torch.where(inside[:, None], colour[:, :, None, None] * shade[:, None], images)
        masks = torch.where(inside, shape_labels[kind][:, None, None], masks)

    # camera: exposure and pixel noise
    images = images * draw.uniform(0.85, 1.15, n)[:, None, None, None]
    images = (images + look.noise * draw.normal(n, 3, size, size)).clamp(0, 1)
    return images, masks


def _ignore_edges(masks: torch.Tensor) -> torch.Tensor:
    """Return masks (N, H, W) with IGNORE_INDEX where the right or lower neighbour differs."""
    edge = torch.zeros_like(masks, dtype=torch.bool)
    edge[:, :, :-1] |= masks[:, :, :-1] != masks[:, :, 1:]
    edge[:, :-1, :] |= masks[:, :-1, :] != masks[:, 1:, :]
    return masks.masked_fill(edge, IGNORE_INDEX)


class SyntheticShapes(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Procedural segmentation scenes, generated once at construction.

    Items are ``(image, mask)``: image (3, S, S) float32, standardised with the variant's
    mean and standard deviation (``SYNTHETIC_MEAN``, ``SYNTHETIC_STD`` for the default);
    mask (S, S) int64 leaf label ids (:attr:`class_names` order: ``SYNTHETIC_CLASSES``,
    or ``SYNTHETIC_HARD_CLASSES`` for ``variant="hard"``; see
    :mod:`~hl_lightning.data.synthetic_variants`),
    :data:`IGNORE_INDEX` on class edges when ``ignore_edges``. Sample ``i`` depends only on
    ``seed``, ``i``, ``image_size``, ``ignore_edges`` and ``variant``, not on
    ``num_samples`` nor on data-loader workers. It takes N x S x S x 20 bytes (42 MB for
    512 images of 64 x 64).

    Args:
        num_samples: N, the number of images.
        image_size: S, the side of the square images (sizes and textures scale with it).
        seed: seed of the scenes.
        ignore_edges: mark a one-pixel line on the boundaries between classes as ignored.
        variant: ``"default"``, or ``"hard"``: more classes per family, and thing families
            in the hues of stuff families (see the module documentation).

    Example:
        >>> data = SyntheticShapes(4, image_size=32, seed=1)
        >>> image, mask = data[0]
        >>> image.shape, mask.shape, mask.dtype
        (torch.Size([3, 32, 32]), torch.Size([32, 32]), torch.int64)
        >>> data.class_names[:3]
        ('background', 'sky', 'calm_water')
        >>> len(SyntheticShapes(4, image_size=32, variant="hard").class_names)
        17
    """

    def __init__(
        self,
        num_samples: int,
        image_size: int = 64,
        seed: int = 0,
        ignore_edges: bool = True,
        variant: Variant = "default",
    ) -> None:
        if num_samples < 0 or image_size < 1:
            raise ValueError(
                f"SyntheticShapes needs num_samples >= 0 and image_size >= 1, got "
                f"num_samples={num_samples}, image_size={image_size}"
            )
        look = synthetic_look(variant)
        self.class_names: tuple[str, ...] = look.classes
        self.image_size = image_size
        self.seed = seed
        self.variant = variant
        chunks = [
            _generate(_CHUNK, image_size, derive_seed(seed, c), look)
            for c in range(max(1, -(-num_samples // _CHUNK)))
        ]
        images = torch.cat([c[0] for c in chunks])[:num_samples]
        masks = torch.cat([c[1] for c in chunks])[:num_samples]
        mean = torch.tensor(look.mean)[:, None, None]
        std = torch.tensor(look.std)[:, None, None]
        self.images = (images - mean) / std  # (N, 3, S, S) float32
        self.masks = _ignore_edges(masks) if ignore_edges else masks  # (N, S, S) int64

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return image (3, S, S) and mask (S, S) number ``index``."""
        return self.images[index], self.masks[index]
