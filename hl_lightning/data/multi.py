"""Several data sets at once: each with its own class list, mapped into one tree by name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import ConcatDataset, Dataset

from hl_lightning.data.datamodule import Batch, SegmentationDataModule
from hl_lightning.data.io import IGNORE_INDEX, BadDataError
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.options import OptionError

__all__ = ["MultiDataModule", "RelabelledDataset"]

_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}
_SAVED = ("image_size", "eval_size", "mean", "std", "variant")  # what hl-predict reads


class RelabelledDataset(Dataset[Batch]):
    """A dataset of ``(image, mask)`` pairs whose masks' label ids are looked up in ``table``.

    ``table[j]`` is the label id in the joint tree of the data set's label id ``j``, -1
    where that node is not in the joint tree (such a pixel is a :class:`BadDataError`
    naming ``name``); the ignore value (outside the table) stays.

    Example:
        >>> pairs = [(torch.zeros(3, 1, 3), torch.tensor([[0, 1, 255]]))]
        >>> RelabelledDataset(pairs, torch.tensor([2, 0]), "b")[0][1].tolist()
        [[2, 0, 255]]
    """

    def __init__(self, dataset: Dataset[Batch], table: torch.Tensor, name: str) -> None:
        self.dataset = dataset
        self.table = table
        self.name = name

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Batch:
        image, mask = self.dataset[index]
        known = (mask >= 0) & (mask < len(self.table))
        mapped = torch.where(known, self.table[mask.clamp(0, len(self.table) - 1)], mask)
        if bool((mapped < 0).any()):
            found = sorted(set(mask[mapped < 0].tolist()))
            raise BadDataError(
                f"data set {self.name!r}, sample {index}: label ids {found} are no node of the "
                "joint tree"
            )
        return image, mapped


class MultiDataModule(SegmentationDataModule):
    """Several data sets at once, each with its own class list, mapped into one tree by name.

    Every data set keeps its own files, layout, classes and options; their class names
    are matched to the one tree by name: the union of their class lists, in order of
    first appearance (the first data set's classes first), gives the leaf order
    (:func:`~hl_lightning.hierarchy.match_class_names`), and a class that names an
    internal node (a coarse data set's ``vehicle``) gives coarse labels. Each data set's
    label ids are translated into the tree's node ids by name.

    Sampling: the training split is the plain concatenation of the data sets' training
    splits, shuffled as one (each image once an epoch, in an order drawn from ``seed``
    and the epoch): a data set contributes in proportion to its size. Validation and
    test concatenate the splits of the data sets named in ``evaluate_on`` (all by
    default), so every metric counts their pixels together (a coarse pixel at the levels
    where it is labelled). Batches mix data sets, so their training images must have one
    size (``image_size``). The data sets' own loader options (``batch_size``,
    ``num_workers``, ...) are not used: this module's are.

    Args:
        datasets: name -> data module (any :class:`SegmentationDataModule`: a file-backed
            one, the synthetic data), in order.
        hierarchy: the tree (None: the flat one over the union of the class names);
            ``hl-train`` gives the run's tree (:meth:`use_hierarchy`).
        evaluate_on: the names of the data sets whose val and test splits are evaluated
            (None: all).
        batch_size, eval_batch_size, num_workers, seed, pin_memory: as in
            :class:`SegmentationDataModule`.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> tree = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> def data(masks):
        ...     return TensorDataset(torch.zeros(len(masks), 3, 1, 2), torch.tensor(masks))
        >>> fine = SegmentationDataModule(["sky", "car", "truck"], train_dataset=data([[[2, 0]]]))
        >>> coarse = SegmentationDataModule(["vehicle", "sky"], train_dataset=data([[[0, 1]]]))
        >>> both = MultiDataModule({"fine": fine, "coarse": coarse}, tree)
        >>> both.class_names, both.hierarchy.node_names
        (('sky', 'car', 'truck', 'vehicle'), ('sky', 'car', 'truck', 'vehicle'))
        >>> [mask.tolist() for _, mask in both.setup_split("train")]  # vehicle: a coarse label
        [[[2, 0]], [[3, 0]]]
    """

    def __init__(
        self,
        datasets: Mapping[str, SegmentationDataModule],
        hierarchy: Hierarchy | None = None,
        evaluate_on: Sequence[str] | None = None,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        members = dict(datasets.items())
        if not members:
            raise OptionError("datasets", "MultiDataModule needs at least one data set")
        for name, member in members.items():
            if not isinstance(member, SegmentationDataModule):
                raise OptionError(
                    "datasets",
                    f"data set {name!r} is a {type(member).__name__}, not a data module with "
                    "class names (a data config: data@data.datasets.<name>=folder)",
                )
        ignore = {name: member.ignore_index for name, member in members.items()}
        if len(set(ignore.values())) > 1:
            shown = ", ".join(f"{name} {value}" for name, value in ignore.items())
            raise OptionError("datasets", f"the data sets' ignore_index differ: {shown}")
        chosen = list(members) if evaluate_on is None else [str(n) for n in evaluate_on]
        unknown = [name for name in chosen if name not in members]
        if unknown or not chosen:
            raise OptionError(
                "evaluate_on",
                f"evaluate_on names data sets of datasets ({', '.join(members)}), got "
                f"{', '.join(unknown) or 'none'}",
            )
        self.datasets = members
        self.evaluate_on = chosen
        names = dict.fromkeys(n for member in members.values() for n in member.class_names)
        super().__init__(
            tuple(names),
            hierarchy,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            seed=seed,
            ignore_index=next(iter(ignore.values()), IGNORE_INDEX),
            pin_memory=pin_memory,
        )
        first = next(iter(members.values()))
        saved = {key: first.hparams[key] for key in _SAVED if key in first.hparams}
        self.save_hyperparameters(
            {
                **saved,
                "datasets": {name: dict(member.hparams) for name, member in members.items()},
                "evaluate_on": chosen,
                "batch_size": batch_size,
                "eval_batch_size": eval_batch_size,
                "seed": seed,
            }
        )

    @property
    def image_size(self) -> Any:
        """The first data set's ``image_size`` (the network's input size)."""
        return getattr(next(iter(self.datasets.values())), "image_size", None)

    def label_table(self, name: str) -> torch.Tensor:
        """Return a LongTensor (N_name,): the joint tree's node id of every node id of data
        set ``name``'s own tree, by node name (-1 where its tree has a node the joint one
        has not)."""
        own = self.datasets[name].hierarchy
        ids = {node: i for i, node in enumerate(self.hierarchy.node_names)}
        return torch.tensor([ids.get(node, -1) for node in own.node_names], dtype=torch.long)

    def setup(self, stage: str) -> None:
        """Set up the splits ``stage`` needs: each the data sets' splits, concatenated."""
        for split in _STAGE_SPLITS.get(stage, ()):
            self.setup_split(split)

    def setup_split(self, split: str) -> ConcatDataset[Batch]:
        """Return ``split``: the data sets' (``evaluate_on``'s for val and test) splits of
        that name, their label ids translated into the joint tree's, concatenated."""
        if getattr(self, f"{split}_dataset") is None:
            names = list(self.datasets) if split == "train" else self.evaluate_on
            parts: list[Dataset[Batch]] = []
            for name in names:
                part = self.datasets[name].setup_split(split)
                table = self.label_table(name)
                identity = torch.equal(table, torch.arange(len(table)))
                parts.append(part if identity else RelabelledDataset(part, table, name))
            setattr(self, f"{split}_dataset", ConcatDataset(parts))
        return getattr(self, f"{split}_dataset")
