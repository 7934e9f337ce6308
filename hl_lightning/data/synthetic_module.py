"""The embedded default data module: :class:`SyntheticShapes` splits, their tree, a coarse mode."""

from __future__ import annotations

from hl_lightning.data.datamodule import SegmentationDataModule
from hl_lightning.data.io import IGNORE_INDEX
from hl_lightning.data.seeds import derive_seed
from hl_lightning.data.synthetic import SyntheticShapes
from hl_lightning.data.synthetic_variants import (
    Variant,
    synthetic_classes,
    synthetic_variant_hierarchy,
)
from hl_lightning.hierarchy import ancestor_ids
from hl_lightning.options import OptionError

__all__ = ["SyntheticDataModule", "coarse_count"]


def coarse_count(num_train: int, coarse_fraction: float) -> int:
    """Return how many training images are labelled coarsely: the last of them.

    ``round(coarse_fraction * num_train)``: a run of ``N + M`` images with
    ``coarse_fraction = M / (N + M)`` labels its last ``M`` coarsely and shares its first
    ``N`` (fine) images with a run of ``N`` fine images.

    Example:
        >>> coarse_count(384, 256 / 384), coarse_count(10, 0.25), coarse_count(8, 0.0)
        (256, 2, 0)
    """
    if not 0.0 <= coarse_fraction <= 1.0:
        raise OptionError(
            "coarse_fraction", f"coarse_fraction is a share in [0, 1], got {coarse_fraction}"
        )
    return round(coarse_fraction * num_train)


class SyntheticDataModule(SegmentationDataModule):
    """The embedded default data: :class:`SyntheticShapes` splits and their hierarchy.

    The train, val and test splits are drawn from independent seeds derived from
    ``seed``, so they never share a scene, and are generated in :meth:`setup` (about a
    second per 500 images of 64 x 64 on one CPU core). The defaults give 32 training
    batches an epoch, a few seconds with the default :class:`~hl_lightning.models.UNet`
    on two CPU cores.

    Coarse mode: with ``coarse_fraction`` > 0, the last ``round(coarse_fraction *
    num_train)`` training images are labelled at ``coarse_level`` only: every pixel holds
    the node id of its class's group there (its level-1 ancestor by default: ``round``
    rather than ``disc``), a leaf that is a group at that level (a shallow one) stays a
    leaf; validation and test stay fine. Image ``i`` does not depend on ``num_train``, so
    ``num_train=N`` and ``num_train=N+M, coarse_fraction=M/(N+M)`` share their first
    ``N`` fine images, and ``num_train=N+M`` (fine) the same ``N + M`` images.

    Args:
        num_train, num_val, num_test: images per split.
        image_size: side of the square images.
        batch_size, num_workers, seed, pin_memory: as in :class:`SegmentationDataModule`.
        ignore_edges: mark a one-pixel line on class boundaries as ``ignore_index``.
        variant: ``"default"`` (13 classes), or ``"hard"`` (17 classes, kinds and families
            not told by colour alone; its tree is the built-in ``synthetic_hard``).
        coarse_fraction: the share of the training images labelled coarsely (0: none).
        coarse_level: the level of their labels, coarser than the finest (0: kind, 1: family).

    Example:
        >>> dm = SyntheticDataModule(num_train=8, num_val=4, num_test=4, batch_size=4)
        >>> dm.setup("fit")
        >>> images, masks = next(iter(dm.train_dataloader()))
        >>> images.shape, masks.shape
        (torch.Size([4, 3, 64, 64]), torch.Size([4, 64, 64]))
        >>> dm.num_classes, dm.hierarchy.num_levels
        (13, 3)
        >>> coarse = SyntheticDataModule(num_train=8, num_val=4, num_test=4, coarse_fraction=0.5)
        >>> coarse.setup("fit")
        >>> [bool((m[m != 255] >= 13).any()) for _, m in coarse.train_dataset]  # node ids
        [False, False, False, False, True, True, True, True]
    """

    def __init__(
        self,
        num_train: int = 512,
        num_val: int = 128,
        num_test: int = 128,
        image_size: int = 64,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        ignore_edges: bool = True,
        pin_memory: bool = False,
        variant: Variant = "default",
        coarse_fraction: float = 0.0,
        coarse_level: int = 1,
    ) -> None:
        super().__init__(
            synthetic_classes(variant),
            synthetic_variant_hierarchy(variant),
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
            ignore_index=IGNORE_INDEX,
            pin_memory=pin_memory,
        )
        self.save_hyperparameters()
        self.split_sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.image_size = image_size
        self.ignore_edges = ignore_edges
        self.variant: Variant = variant
        self.num_coarse = coarse_count(num_train, coarse_fraction)
        self.coarse_level = coarse_level
        self._check_coarse_level()

    def _check_coarse_level(self) -> None:
        """Raise an OptionError where ``coarse_level`` is not coarser than the finest level."""
        levels = self.hierarchy.num_levels
        if not self.num_coarse or 0 <= self.coarse_level < levels - 1:
            return
        if levels < 2:
            raise OptionError(
                "coarse_fraction",
                "coarse labels need a tree of 2 levels or more (one coarser than the finest); "
                "this one has 1",
            )
        raise OptionError(
            "coarse_level",
            f"coarse_level must be a level coarser than the finest (0..{levels - 2} for a tree "
            f"of {levels} levels), got {self.coarse_level}",
        )

    def setup(self, stage: str) -> None:
        """Generate the splits ``stage`` needs: fit: train and val; validate: val; test: test."""
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}
        for split in splits.get(stage, ()):
            self.setup_split(split)

    def setup_split(self, split: str) -> SyntheticShapes:
        """Return the dataset of ``split``, generated once (that split alone)."""
        if getattr(self, f"{split}_dataset") is None:
            self._check_coarse_level()  # the tree may have changed since (use_hierarchy)
            setattr(self, f"{split}_dataset", self._split(split))
        return getattr(self, f"{split}_dataset")

    def _split(self, split: str) -> SyntheticShapes:
        """Return the dataset of ``split`` (train, val or test), its coarse images relabelled."""
        data = SyntheticShapes(
            self.split_sizes[split],
            self.image_size,
            seed=derive_seed(self.seed, split),
            ignore_edges=self.ignore_edges,
            variant=self.variant,
        )
        if split == "train" and self.num_coarse:
            first = len(data) - self.num_coarse
            masks = data.masks[first:]  # leaf ids (the class names are the leaves)
            coarse = ancestor_ids(self.hierarchy, self.coarse_level)[
                masks.clamp(max=self.num_classes - 1)
            ]
            data.masks[first:] = coarse.where(masks != self.ignore_index, masks)
        return data
