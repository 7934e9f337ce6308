"""LightningDataModules: a generic one over (image, mask) datasets, and the synthetic default."""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Sized
from typing import Any, cast

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler

from hl_lightning.data.io import IGNORE_INDEX
from hl_lightning.data.seeds import derive_seed
from hl_lightning.data.synthetic import SyntheticShapes
from hl_lightning.data.synthetic_variants import (
    Variant,
    synthetic_classes,
    synthetic_variant_hierarchy,
)
from hl_lightning.hierarchy import Hierarchy

__all__ = [
    "EpochSeededSampler",
    "ResumableDataLoader",
    "SegmentationDataModule",
    "SyntheticDataModule",
]

Batch = tuple[torch.Tensor, torch.Tensor]


class EpochSeededSampler(Sampler[int]):
    """A random order that depends on ``seed`` and the epoch alone.

    Lightning calls :meth:`set_epoch` before every training epoch, so two runs with one
    seed see the same batches, and a run resumed from a checkpoint continues with the
    order the uninterrupted run would have had. Without it (a plain loop), each pass
    moves on to the next epoch's order.

    Example:
        >>> sampler = EpochSeededSampler(range(5), seed=0)
        >>> first, second = list(sampler), list(sampler)
        >>> sorted(first), first != second
        ([0, 1, 2, 3, 4], True)
        >>> sampler.set_epoch(0)
        >>> list(sampler) == first
        True
    """

    def __init__(self, data_source: Sized, seed: int) -> None:
        self.data_source = data_source
        self.seed = seed
        self.epoch = 0
        self.start = 0  # samples of the next pass's order to skip (a pass resumed mid-epoch)

    def __len__(self) -> int:
        return len(self.data_source)

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch``."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", self.epoch))
        order = torch.randperm(len(self.data_source), generator=generator).tolist()
        start, self.start = self.start, 0
        self.epoch += 1
        return iter(order[start:])


class ResumableDataLoader(DataLoader):
    """A DataLoader that Lightning can resume mid-epoch: its state is (epoch, samples yielded).

    Lightning saves the state of a training loader with ``state_dict`` and
    ``load_state_dict`` in its checkpoints, and, when it resumes mid-epoch, iterates the
    loader once more for the rest of that epoch. The state is the sampler's epoch of the
    current pass and the number of samples of that pass already yielded (whole batches;
    the pass's end counts as the next epoch's start). After :meth:`load_state_dict`, the
    next pass over that epoch leaves out those first samples: an
    :class:`EpochSeededSampler` starts its order past them (they are not loaded); another
    sampler with an ``epoch`` (Lightning's DistributedSampler under DDP) is iterated from
    the start and its first batches are loaded and dropped. A pass over another epoch is
    whole.

    The count is of the batches this loader handed out, which is what Lightning's loop has
    consumed when it saves a checkpoint: it fetches no batch ahead from a loader with a
    length (workers' prefetching happens below this count). Its batches are the
    DataLoader's, ``batch_size`` must be set.

    Example:
        >>> data = list(range(6))
        >>> loader = ResumableDataLoader(data, batch_size=2, sampler=EpochSeededSampler(data, 0))
        >>> it = iter(loader)
        >>> first = next(it)
        >>> loader.state_dict()
        {'epoch': 0, 'samples': 2}
        >>> again = ResumableDataLoader(data, batch_size=2, sampler=EpochSeededSampler(data, 0))
        >>> again.load_state_dict(loader.state_dict())
        >>> [b.tolist() for b in again] == [b.tolist() for b in it]
        True
    """

    _epoch: int | None = None  # the sampler's epoch of the current pass
    _batches = 0  # batches of the current pass yielded
    _resume: tuple[int | None, int] | None = None  # (epoch, samples) to leave out

    def state_dict(self) -> dict[str, Any]:
        """Return the epoch of the current pass and the samples of it yielded so far."""
        if self.batch_size is None:
            raise ValueError("a ResumableDataLoader needs batch_size")
        epoch, batches = self._epoch, self._batches
        if batches >= len(self) and epoch is not None:  # the pass is over: next epoch's start
            epoch, batches = epoch + 1, 0
        return {"epoch": epoch, "samples": batches * self.batch_size}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Leave out the first ``samples`` of the next pass if it is over ``epoch``."""
        samples = int(state_dict["samples"])
        self._resume = (state_dict["epoch"], samples) if samples > 0 else None

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        return self._pass()

    def _pass(self) -> Iterator[Any]:
        # runs at the first next(): after Lightning's set_epoch, which comes after iter()
        assert self.batch_size is not None
        epoch = getattr(self.sampler, "epoch", None)
        skip = 0  # samples
        if self._resume is not None:
            if self._resume[0] == epoch:
                skip = self._resume[1]
            self._resume = None
        seeded = isinstance(self.sampler, EpochSeededSampler)
        if isinstance(self.sampler, EpochSeededSampler):
            self.sampler.start = skip  # the sampler leaves them out: never loaded
        self._epoch, self._batches = epoch, skip // self.batch_size
        iterator = super().__iter__()
        if not seeded:  # e.g. a DistributedSampler: load the batches and drop them
            for _ in range(skip // self.batch_size):
                next(iterator, None)
        for batch in iterator:
            self._batches += 1
            yield batch


class SegmentationDataModule(LightningDataModule):
    """Data loaders over datasets of ``(image, mask)`` pairs, with their classes and tree.

    Batches are ``(images, masks)``: images (B, C, H, W) float, masks (B, H, W) int64
    leaf label ids, ``ignore_index`` where unlabelled. Label id ``i`` is
    ``class_names[i]``; :attr:`hierarchy` is the given tree reordered to that order
    (checked here, at set-up), or the flat hierarchy when none is given.

    Use it directly with ready datasets, or subclass it and assign ``train_dataset``,
    ``val_dataset`` and ``test_dataset`` in :meth:`setup`. The training loader shuffles
    in an order drawn from ``seed`` and the epoch (:class:`EpochSeededSampler`): two runs
    with the same seed see the same batches, and a resumed run continues in order, from
    the middle of an epoch too (a :class:`ResumableDataLoader`, whose state Lightning
    checkpoints).

    Args:
        class_names: the K class names in label-id order.
        hierarchy: the class tree (any leaf order), or None for the flat hierarchy.
        train_dataset, val_dataset, test_dataset: the splits (each optional).
        batch_size: images per batch.
        num_workers: data-loader worker processes (kept alive between epochs when > 0).
        seed: seed of the training order.
        ignore_index: the mask value of unlabelled pixels.
        pin_memory: pin batches in page-locked memory (faster copies to a GPU).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.randn(6, 3, 8, 8), torch.randint(2, (6, 8, 8)))
        >>> dm = SegmentationDataModule(["sky", "car"], train_dataset=data, batch_size=4)
        >>> [masks.shape[0] for _, masks in dm.train_dataloader()]
        [4, 2]
        >>> dm.hierarchy.num_levels
        1
    """

    def __init__(
        self,
        class_names: Sequence[str],
        hierarchy: Hierarchy | None = None,
        train_dataset: Dataset[Batch] | None = None,
        val_dataset: Dataset[Batch] | None = None,
        test_dataset: Dataset[Batch] | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        ignore_index: int = IGNORE_INDEX,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1 or num_workers < 0:
            raise ValueError(
                f"need batch_size >= 1 and num_workers >= 0, got batch_size={batch_size}, "
                f"num_workers={num_workers}"
            )
        self._class_names = tuple(str(name) for name in class_names)
        tree = Hierarchy.flat(self._class_names) if hierarchy is None else hierarchy
        self._hierarchy = tree.reorder(self._class_names)
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.test_dataset = test_dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self._ignore_index = ignore_index
        self.pin_memory = pin_memory

    @property
    def class_names(self) -> tuple[str, ...]:
        """The K class names; label id ``i`` is ``class_names[i]``."""
        return self._class_names

    @property
    def num_classes(self) -> int:
        """K, the number of classes (logits a network must output)."""
        return len(self._class_names)

    @property
    def ignore_index(self) -> int:
        """The mask value of pixels that losses and metrics skip."""
        return self._ignore_index

    @property
    def hierarchy(self) -> Hierarchy:
        """The class tree with leaf ``i`` being ``class_names[i]``."""
        return self._hierarchy

    def train_dataloader(self) -> DataLoader[Batch]:
        """Return the shuffled training loader (order seeded from ``seed``)."""
        return self._loader(self.train_dataset, "train", shuffle=True)

    def val_dataloader(self) -> DataLoader[Batch]:
        """Return the validation loader, in dataset order."""
        return self._loader(self.val_dataset, "val", shuffle=False)

    def test_dataloader(self) -> DataLoader[Batch]:
        """Return the test loader, in dataset order."""
        return self._loader(self.test_dataset, "test", shuffle=False)

    def _loader(self, dataset: Dataset[Batch] | None, split: str, shuffle: bool) -> DataLoader:
        """Return a loader over ``dataset``; raise if the split has none (not set up)."""
        if dataset is None:
            raise RuntimeError(
                f"{type(self).__name__} has no {split} dataset: pass {split}_dataset or call "
                f"setup() first"
            )
        return (ResumableDataLoader if shuffle else DataLoader)(
            dataset,
            batch_size=self.batch_size,
            # map-style datasets of (image, mask) pairs have a length
            sampler=EpochSeededSampler(cast(Sized, dataset), self.seed) if shuffle else None,
            generator=torch.Generator().manual_seed(self.seed),  # loader workers' seeds
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )


class SyntheticDataModule(SegmentationDataModule):
    """The embedded default data: :class:`SyntheticShapes` splits and their hierarchy.

    The train, val and test splits are drawn from independent seeds derived from
    ``seed``, so they never share a scene, and are generated in :meth:`setup` (about a
    second per 500 images of 64 x 64 on one CPU core). The defaults give 32 training
    batches an epoch, a few seconds with the default :class:`~hl_lightning.models.UNet`
    on two CPU cores.

    Args:
        num_train, num_val, num_test: images per split.
        image_size: side of the square images.
        batch_size, num_workers, seed, pin_memory: as in :class:`SegmentationDataModule`.
        ignore_edges: mark a one-pixel line on class boundaries as ``ignore_index``.
        variant: ``"default"`` (13 classes), or ``"hard"`` (17 classes, kinds and families
            not told by colour alone; its tree is the built-in ``synthetic_hard``).

    Example:
        >>> dm = SyntheticDataModule(num_train=8, num_val=4, num_test=4, batch_size=4)
        >>> dm.setup("fit")
        >>> images, masks = next(iter(dm.train_dataloader()))
        >>> images.shape, masks.shape
        (torch.Size([4, 3, 64, 64]), torch.Size([4, 64, 64]))
        >>> dm.num_classes, dm.hierarchy.num_levels
        (13, 3)
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

    def setup(self, stage: str) -> None:
        """Generate the splits ``stage`` needs: fit: train and val; validate: val; test: test."""
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}
        for split in splits.get(stage, ()):
            if getattr(self, f"{split}_dataset") is None:
                setattr(self, f"{split}_dataset", self._split(split))

    def _split(self, split: str) -> SyntheticShapes:
        """Return the dataset of ``split`` (train, val or test)."""
        return SyntheticShapes(
            self.split_sizes[split],
            self.image_size,
            seed=derive_seed(self.seed, split),
            ignore_edges=self.ignore_edges,
            variant=self.variant,
        )
