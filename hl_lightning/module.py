"""HierarchicalSegmenter: the LightningModule that trains any backbone with a hierarchical loss."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import Container, OmegaConf
from torch import Tensor, nn
from torchmetrics import MetricCollection

from hl_lightning.decode import check_method, decode
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.losses import LOSSES as LOSS_CLASSES
from hl_lightning.losses import HierarchicalLoss, TreeMinLoss, build_loss
from hl_lightning.metrics import (
    HierarchicalJaccardIndex,
    HierarchicalPixelAccuracy,
    MistakeSeverity,
)

__all__ = ["LOSSES", "HierarchicalSegmenter"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]
LOSSES = tuple(LOSS_CLASSES)  # hierarchical, flat, hxe, soft_labels, tree_min


def _plain(spec: Any) -> Any:
    """Return a Hydra/OmegaConf config (DictConfig, ListConfig) as plain containers.

    Other values are returned unchanged. Checkpoints then hold plain data only, which
    ``torch.load(weights_only=True)`` (Lightning's default) accepts.
    """
    return OmegaConf.to_container(spec, resolve=True) if isinstance(spec, Container) else spec


class HierarchicalSegmenter(L.LightningModule):
    """Train a segmentation ``backbone`` (K logits per pixel) with the hierarchical loss.

    Args:
        backbone: an ``nn.Module`` mapping images (B, C, H, W) to logits (B, K, H', W')
            (a dict output with key ``"out"``, as torchvision's models return, is accepted;
            logits at a lower resolution are upsampled to the target). Or a Hydra config
            (mapping with ``_target_``): it is instantiated here and saved with the
            checkpoint, so :meth:`load_from_checkpoint` needs no arguments; a
            ``num_classes: null`` in it becomes the channel count the loss needs
            (:attr:`num_channels`: the leaves, or the tree's nodes for ``tree_min``).
        hierarchy: the class tree (a :class:`Hierarchy` or its :meth:`~Hierarchy.to_config`).
            Leaf ``i`` must be label id ``i``; pass ``class_names`` to reorder it.
        loss: the training loss, a name of :data:`LOSSES` (built by
            :func:`hl_lightning.losses.build_loss`): ``"hierarchical"`` (the paper's loss),
            ``"flat"`` (cross-entropy), ``"hxe"``, ``"soft_labels"`` or ``"tree_min"``.
            Every level's NLL (the paper's level losses) is logged whatever the loss. With
            ``"tree_min"`` the backbone returns one channel per tree node
            (``TreeMinLoss.node_names``); its path scores (``TreeMinLoss.leaf_logits``) act
            as leaf logits for the logged level NLLs, the metrics and the predictions, and
            ``decode="leaf"`` picks the best root-to-leaf path.
        level_weights: weight of each level, for the losses that take them
            (``hierarchical``, ``tree_min``); default all 1.
        loss_options: the loss's other options, e.g. ``{"alpha": 0.5}`` for ``hxe``,
            ``{"beta": 10}`` for ``soft_labels``, ``{"gamma": 2}`` for ``tree_min``,
            ``{"class_weights": [...]}`` for ``hierarchical`` and ``flat``.
        optimizer: a factory ``params -> Optimizer`` (a Hydra partial) or its config;
            default AdamW(lr=1e-3).
        scheduler: optional factory ``optimizer -> LRScheduler`` or its config.
        ignore_index: target value of unlabelled pixels.
        decode: how per-level predictions are made for metrics and ``predict_step``:
            ``"marginal"``, ``"leaf"`` or ``"top_down"``.
        class_names: the dataset's class names in label-id order; the hierarchy is
            reordered to them (a mismatch raises, naming the missing and extra names).
        input_shape: (C, H, W) of the dry forward run in :meth:`setup` that checks the
            backbone's channel count.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> model = HierarchicalSegmenter(nn.Conv2d(3, 3, 1), h)
        >>> [m.shape for m in model.predict_step(torch.randn(2, 3, 8, 8)).values()]
        [torch.Size([2, 8, 8]), torch.Size([2, 8, 8])]
    """

    def __init__(
        self,
        backbone: nn.Module | Mapping[str, Any],
        hierarchy: Hierarchy | Mapping[str, Any],
        loss: str = "hierarchical",
        level_weights: Sequence[float] | None = None,
        loss_options: Mapping[str, Any] | None = None,
        optimizer: OptimizerFactory | Mapping[str, Any] | None = None,
        scheduler: SchedulerFactory | Mapping[str, Any] | None = None,
        ignore_index: int = 255,
        decode: str = "marginal",
        class_names: Sequence[str] | None = None,
        input_shape: Sequence[int] = (3, 64, 64),
    ) -> None:
        super().__init__()
        if not isinstance(hierarchy, Hierarchy):
            hierarchy = Hierarchy.from_config(_plain(hierarchy))
        if class_names is not None:
            hierarchy = hierarchy.reorder(list(_plain(class_names)))
        self.hierarchy = hierarchy
        backbone, optimizer, scheduler = _plain(backbone), _plain(optimizer), _plain(scheduler)
        # Plain data only (save_hyperparameters reads these locals), so that the checkpoint
        # loads with weights_only=True and load_from_checkpoint(path) rebuilds the model.
        level_weights = None if level_weights is None else [float(w) for w in level_weights]
        loss_options = dict(_plain(loss_options) or {})
        options = dict(loss_options)
        if level_weights is not None:
            options["level_weights"] = level_weights
        self.criterion = build_loss(loss, hierarchy, ignore_index, **options)
        if isinstance(self.criterion, HierarchicalLoss) and self.criterion.class_weights is None:
            self.hierarchical_loss = self.criterion  # logged levels and loss: one pass
        else:  # the paper's level NLLs, logged
            self.hierarchical_loss = HierarchicalLoss(hierarchy, ignore_index)
        input_shape = tuple(int(n) for n in input_shape)
        self.save_hyperparameters(
            ignore=["backbone", "hierarchy", "optimizer", "scheduler", "class_names"]
        )
        self.hparams["hierarchy"] = hierarchy.to_config()
        for key, value in (("optimizer", optimizer), ("scheduler", scheduler)):
            if isinstance(value, Mapping):
                self.hparams[key] = value
        if isinstance(backbone, Mapping):
            if "num_classes" in backbone and backbone["num_classes"] is None:
                backbone = {**backbone, "num_classes": self.num_channels}
            self.hparams["backbone"] = backbone
            backbone = instantiate(backbone)
        self.backbone = backbone
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss_name = loss
        self.ignore_index = ignore_index
        self.decode = check_method(decode)
        self.input_shape = input_shape
        self.train_metrics = self._make_metrics("train")
        self.val_metrics = self._make_metrics("val")
        self.test_metrics = self._make_metrics("test")

    # ------------------------------------------------------------------ model
    def compute_logits(self, images: Tensor) -> Tensor:
        """Return the backbone's logits (B, K, H', W'); override to adapt another backbone."""
        out = self.backbone(images)
        return out["out"] if isinstance(out, Mapping) else out

    @property
    def num_channels(self) -> int:
        """The backbone's channel count: K leaves, or the tree's nodes for ``tree_min``."""
        if isinstance(self.criterion, TreeMinLoss):
            return self.criterion.num_nodes
        return self.hierarchy.num_leaves

    def leaf_logits(self, outputs: Tensor) -> Tensor:
        """Return leaf logits (B, K, H, W) of the backbone's outputs: the outputs themselves,
        or for ``tree_min`` the path scores of its node logits."""
        if isinstance(self.criterion, TreeMinLoss):
            return self.criterion.leaf_logits(outputs)
        return outputs

    def forward(self, images: Tensor) -> Tensor:
        """Return the backbone's outputs (B, C, H, W) at the images' resolution.

        C = K leaf logits, or one logit per tree node for ``loss="tree_min"``.
        """
        logits = self.compute_logits(images)
        if logits.shape[-2:] != images.shape[-2:]:
            logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear")
        return logits

    # ------------------------------------------------------------------ set-up checks
    def setup(self, stage: str) -> None:
        """Check the data's class names and the backbone's channel count before training."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        names = getattr(datamodule, "class_names", None)
        if names is not None and tuple(names) != self.hierarchy.leaves:
            self.hierarchy.reorder(list(names))  # raises, listing missing and extra names
            raise ValueError(
                "the data's label ids follow another order than the hierarchy's leaves: pass "
                "class_names=datamodule.class_names (or hierarchy.reorder(...)) to the model"
            )
        self.check_backbone()

    def check_backbone(self) -> None:
        """Run one dry forward pass; raise if the backbone's channels are not the leaves."""
        param = next(self.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                logits = self.compute_logits(torch.zeros(1, *self.input_shape, device=device))
        finally:
            self.train(was_training)
        if not isinstance(logits, Tensor):
            raise TypeError(
                f"compute_logits returned a {type(logits).__name__}, not a logits tensor "
                "(B, K, H, W): for a backbone with another output, override "
                "HierarchicalSegmenter.compute_logits to pick the logits out"
            )
        k = self.num_channels
        if logits.dim() != 4 or logits.shape[1] != k:
            channels = logits.shape[1] if logits.dim() > 1 else None
            if isinstance(self.criterion, TreeMinLoss):
                has = f"loss 'tree_min' needs one channel per node of the tree, {k} nodes"
            else:
                has = f"the hierarchy has {k} leaves"
            raise ValueError(
                f"the backbone returns {channels} channels (logits of shape "
                f"{tuple(logits.shape)} for input {(1, *self.input_shape)}), but {has}: "
                f"it must return (B, {k}, H, W); set the backbone's number of output classes "
                f"to {k}"
            )

    # ------------------------------------------------------------------ steps
    def _make_metrics(self, stage: str) -> MetricCollection:
        h, ignore = self.hierarchy, self.ignore_index
        return MetricCollection(
            {
                "miou": HierarchicalJaccardIndex(h, ignore, decode=self.decode),
                "acc": HierarchicalPixelAccuracy(h, ignore, decode=self.decode),
                "severity": MistakeSeverity(h, ignore),
            },
            prefix=f"{stage}/",
            compute_groups=[["miou", "acc"], ["severity"]],
        )

    def _metrics(self, stage: str) -> MetricCollection:
        return getattr(self, f"{stage}_metrics")

    def _shared_step(self, batch: Any, stage: str) -> Tensor:
        images, target = _unpack(batch)
        outputs = self(images)
        reuse = self.criterion is self.hierarchical_loss  # the paper's loss: its logged levels
        with torch.set_grad_enabled(reuse and torch.is_grad_enabled()):
            logits = self.leaf_logits(outputs)
            levels = self.hierarchical_loss.level_losses(logits, target)
        if reuse:
            loss = (levels * self.hierarchical_loss.level_weights).sum()
        else:
            loss = self.criterion(outputs, target)
        levels = levels.detach()
        on_step, sync = stage == "train", stage != "train"
        batch_size = images.shape[0]
        self.log(
            f"{stage}/loss",
            loss,
            on_step=on_step,
            on_epoch=True,
            prog_bar=True,
            sync_dist=sync,
            batch_size=batch_size,
        )
        for name, value in zip(self.hierarchy.level_names, levels, strict=True):
            self.log(
                f"{stage}/loss/{name}",
                value,
                on_step=False,
                on_epoch=True,
                sync_dist=sync,
                batch_size=batch_size,
            )
        self._metrics(stage).update(logits.detach(), target)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def _log_metrics(self, stage: str) -> None:
        """Log the epoch's per-level mIoU, pixel accuracy and mistake severity, then reset."""
        values = self._metrics(stage).compute()  # synced across processes by torchmetrics
        names = self.hierarchy.level_names
        logged: dict[str, Tensor] = {}
        for key, value in values.items():  # {stage}/miou, /acc: (D,); /severity, /serious: ()
            if key.endswith(("/miou", "/acc")):  # torchmetrics squeezes (1,) to () for D = 1
                per_level = value.reshape(-1)
                logged.update({f"{key}/{n}": v for n, v in zip(names, per_level, strict=True)})
            else:
                logged[key] = value
        logged[f"{stage}/miou"] = logged[f"{stage}/miou/{names[-1]}"]  # the finest level's
        self.log_dict(logged)
        self._metrics(stage).reset()

    def predict_step(self, batch: Any, batch_idx: int = 0) -> dict[str, Tensor]:
        """Return one label map (B, H, W) per level, keyed by level name, coarse to fine."""
        images = batch[0] if isinstance(batch, list | tuple) else batch
        images = images["image"] if isinstance(images, Mapping) else images
        maps = decode(self.leaf_logits(self(images)), self.hierarchy, self.decode)
        return dict(zip(self.hierarchy.level_names, maps, strict=True))

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        factory = self.optimizer_factory
        if factory is None:
            optimizer = torch.optim.AdamW(self.parameters(), lr=1e-3)
        elif isinstance(factory, Mapping):
            optimizer = instantiate(factory, _partial_=True)(self.parameters())
        else:
            optimizer = factory(self.parameters())
        factory = self.scheduler_factory
        if factory is None:
            return optimizer
        if isinstance(factory, Mapping):
            scheduler = instantiate(factory, _partial_=True)(optimizer)
        else:
            scheduler = factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"},
        }


def _unpack(batch: Any) -> tuple[Tensor, Tensor]:
    """Return (images, masks) from a tuple/list batch or a dict with image and mask keys."""
    if isinstance(batch, Mapping):
        images, masks = batch["image"], batch["mask"]
    else:
        images, masks = batch[0], batch[1]
    return images, masks.long()
