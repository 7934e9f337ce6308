"""The generic LightningDataModule over (image, mask) datasets, its class list and tree, and
its loaders: seeded, resumable training order; batches of one image size."""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Sized
from dataclasses import dataclass
from typing import Any, cast

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from hl_lightning.data.io import IGNORE_INDEX, BadDataError
from hl_lightning.data.seeds import derive_seed
from hl_lightning.hierarchy import (
    Hierarchy,
    check_ignore_index,
    class_label_ids,
    match_class_names,
)
from hl_lightning.options import OptionError

__all__ = [
    "SPLIT_STAGE",
    "EpochSeededSampler",
    "OneSizeCollate",
    "ResumableDataLoader",
    "SegmentationDataModule",
]

Batch = tuple[torch.Tensor, torch.Tensor]
#: The stage whose set-up loads each split.
SPLIT_STAGE = {"train": "fit", "val": "validate", "test": "test"}


@dataclass(frozen=True)
class OneSizeCollate:
    """Collate the ``(image, mask)`` pairs of one batch of ``split``; images of different
    sizes (whole frames at their own size, data sets of other sizes) are a
    :class:`BadDataError` that names the sizes and the options that fix it, not torch's
    "stack expects each tensor to be equal size".

    Example:
        >>> collate = OneSizeCollate("val")
        >>> frame = (torch.zeros(3, 4, 6), torch.zeros(4, 6))
        >>> collate([frame, frame])[0].shape
        torch.Size([2, 3, 4, 6])
        >>> collate([frame, (torch.zeros(3, 2, 6), torch.zeros(2, 6))])
        Traceback (most recent call last):
        hl_lightning.data.io.BadDataError: val images of different sizes in one batch (4 x 6, \
2 x 6): set data.eval_batch_size=1 (one image a batch) or one data.eval_size for them all
    """

    split: str

    def __call__(self, items: list[Any]) -> Any:
        sizes = {
            tuple(item[0].shape[-2:])
            for item in items
            if isinstance(item, list | tuple) and isinstance(item[0], torch.Tensor)
        }
        if len(sizes) > 1:
            shown = ", ".join(f"{h} x {w}" for h, w in sorted(sizes, reverse=True))
            fix = (
                "give the data sets one data.image_size"
                if self.split == "train"
                else "set data.eval_batch_size=1 (one image a batch) or one data.eval_size for "
                "them all"
            )
            raise BadDataError(
                f"{self.split} images of different sizes in one batch ({shown}): {fix}"
            )
        return default_collate(items)


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
    label ids, ``ignore_index`` where unlabelled. The class names are matched to the tree
    by name (:func:`~hl_lightning.hierarchy.match_class_names`, checked here, at set-up):
    :attr:`hierarchy` is the given tree (or the flat one over the class names) with leaf
    ``i`` being ``class_names[i]`` where the class names are its leaves. A class name may
    be an internal node: a coarse class, whose pixels hold that node's id (a coarse
    label). :attr:`label_ids` gives the label id of every class; ready datasets hold
    these label ids, and the file-backed subclasses map their files' values to them.

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
        batch_size: images per training batch.
        eval_batch_size: images per validation and test batch (None: ``batch_size``); 1
            where the images keep sizes of their own (whole frames).
        num_workers: data-loader worker processes (kept alive between epochs when > 0).
        seed: seed of the training order.
        ignore_index: the mask value of unlabelled pixels: no node id of the tree.
        pin_memory: pin batches in page-locked memory (faster copies to a GPU).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.randn(6, 3, 8, 8), torch.randint(2, (6, 8, 8)))
        >>> dm = SegmentationDataModule(["sky", "car"], train_dataset=data, batch_size=4)
        >>> [masks.shape[0] for _, masks in dm.train_dataloader()]
        [4, 2]
        >>> dm.hierarchy.num_levels
        1
        >>> tree = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> coarse = SegmentationDataModule(["sky", "vehicle"], tree)  # "vehicle": coarse
        >>> coarse.hierarchy.leaves, coarse.label_ids.tolist(), coarse.num_classes
        (('sky', 'car', 'truck'), [0, 3], 3)
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
        eval_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        eval_batch = batch_size if eval_batch_size is None else eval_batch_size
        if batch_size < 1 or eval_batch < 1 or num_workers < 0:
            raise ValueError(
                f"need batch_size >= 1, eval_batch_size >= 1 (or None) and num_workers >= 0, "
                f"got batch_size={batch_size}, eval_batch_size={eval_batch_size}, "
                f"num_workers={num_workers}"
            )
        self._class_names = tuple(str(name) for name in class_names)
        self._ignore_index = ignore_index
        self.use_hierarchy(Hierarchy.flat(self._class_names) if hierarchy is None else hierarchy)
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.test_dataset = test_dataset
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch
        self.num_workers = num_workers
        self.seed = seed
        self.pin_memory = pin_memory

    def use_hierarchy(self, hierarchy: Hierarchy) -> Hierarchy:
        """Match the class names to ``hierarchy`` by name and use it; return the matched tree.

        The label ids of the masks become its node ids (:attr:`label_ids`). ``hl-train``
        calls it with the run's tree (``hierarchy=``) before the splits are set up. A
        class name that is no node of the tree, a leaf neither named nor under a named node
        (:class:`~hl_lightning.hierarchy.HierarchyError`) and an ``ignore_index`` that is a
        node id (an :class:`~hl_lightning.options.OptionError`) are refused.
        """
        matched = match_class_names(hierarchy, self._class_names)
        try:
            check_ignore_index(matched, self._ignore_index)
        except ValueError as error:
            raise OptionError("ignore_index", str(error)) from None
        self._hierarchy = matched
        self._label_ids = class_label_ids(matched, self._class_names)
        return matched

    @property
    def class_names(self) -> tuple[str, ...]:
        """The data set's class names: mask value (class) ``i`` is ``class_names[i]``."""
        return self._class_names

    @property
    def label_ids(self) -> torch.Tensor:
        """LongTensor (C,): the label id (node id of :attr:`hierarchy`) of class ``i``.

        ``i`` itself for a class list of the leaves; an internal node's id for a coarse class.
        """
        return self._label_ids.clone()

    @property
    def num_classes(self) -> int:
        """K, the number of leaves of the tree (logits a network must output)."""
        return self._hierarchy.num_leaves

    @property
    def ignore_index(self) -> int:
        """The mask value of pixels that losses and metrics skip."""
        return self._ignore_index

    @property
    def hierarchy(self) -> Hierarchy:
        """The class tree matched to the class names (leaf ``i``: ``class_names[i]`` where
        they are the leaves); its node ids are the masks' label ids."""
        return self._hierarchy

    def setup_split(self, split: str) -> Dataset[Batch]:
        """Return the dataset of ``split`` (train, val or test), set up where it is not yet
        (by :meth:`setup` of the stage that reads it; subclasses set up that split alone)."""
        if getattr(self, f"{split}_dataset") is None:
            self.setup(SPLIT_STAGE[split])
        dataset = getattr(self, f"{split}_dataset")
        if dataset is None:
            raise RuntimeError(
                f"{type(self).__name__} has no {split} dataset: pass {split}_dataset or call "
                f"setup() first"
            )
        return dataset

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
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            # map-style datasets of (image, mask) pairs have a length
            sampler=EpochSeededSampler(cast(Sized, dataset), self.seed) if shuffle else None,
            collate_fn=OneSizeCollate(split),
            generator=torch.Generator().manual_seed(self.seed),  # loader workers' seeds
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )
