"""HierarchicalSegmenter: the LightningModule that trains any backbone with a hierarchical loss."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from omegaconf import Container, OmegaConf
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection

from hl_lightning.decode import DecodeMethod, check_method, decode_levels
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.lightning.backbones import build_backbone, with_class_count
from hl_lightning.lightning.checks import (
    ChannelCountError,
    check_channels,
    check_data_labels,
    check_module_options,
    data_input_shape,
    dry_run,
    input_shape_of,
    missing_backbone,
    non_finite_message,
    unpack_batch,
)
from hl_lightning.lightning.inference import Inference, InferenceMode, resize_logits, sides
from hl_lightning.lightning.optimization import (
    OptimizerFactory,
    SchedulerFactory,
    SchedulerInterval,
    make_optimizer,
    make_scheduler,
    run_length,
)
from hl_lightning.lightning.outputs import BackboneOutput, split_outputs
from hl_lightning.lightning.stage_metrics import per_level_values, stage_metrics, write_curve
from hl_lightning.losses import HierarchicalLoss, LossName, TreeMinLoss, build_loss
from hl_lightning.metrics import HierarchicalOperatingCurve

__all__ = [
    "ChannelCountError",
    "HierarchicalSegmenter",
    "MissingBackboneError",
    "NonFiniteLossError",
]


class NonFiniteLossError(RuntimeError):
    """A loss that went NaN or infinite; the message names the step, stage and cause."""


class MissingBackboneError(TypeError):
    """A module built, or a checkpoint reloaded, without the backbone it needs."""


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
            (any output :func:`split_outputs` reads; lower resolutions are upsampled), or a
            Hydra config (``_target_``, a ``backbone=`` preset) built here and saved with
            the checkpoint, so :meth:`load_from_checkpoint` needs no arguments; its
            class-count key set to null (:data:`~hl_lightning.lightning.backbones.CLASS_COUNT_KEYS`)
            becomes :attr:`num_channels`. See docs/backbones.md.
        hierarchy: the class tree (a :class:`Hierarchy`, or its :meth:`~Hierarchy.to_config`
            as a checkpoint holds it). Leaf ``i`` must be label id ``i``: a data module's
            ``hierarchy``, or ``Hierarchy.reorder(class_names)``.
        loss: a name of :data:`~hl_lightning.losses.LOSSES` (built by ``build_loss``).
            Every level's NLL is logged whatever the loss. With ``"tree_min"`` the backbone
            returns one channel per tree node, whose path scores
            (``TreeMinLoss.leaf_logits``) act as leaf logits everywhere else.
        level_weights: weight of each level, for the losses that take them
            (``hierarchical``, ``tree_min``); default all 1.
        loss_options: the loss's other options, e.g. ``{"alpha": 0.5}`` for ``hxe``,
            ``{"beta": 10}`` for ``soft_labels``, ``{"gamma": 2}`` for ``tree_min``,
            ``{"class_weights": [...]}`` for ``hierarchical`` and ``flat``.
        optimizer: a factory ``params -> Optimizer`` (a Hydra partial) or its config;
            default AdamW(lr=1e-3).
        scheduler: optional factory ``optimizer -> LRScheduler`` or its config.
        ignore_index: target value of unlabelled pixels.
        decode: per-level predictions of the metrics and ``predict_step``: ``"marginal"``,
            ``"leaf"``, ``"top_down"`` or ``"crm"`` (least expected tree distance). Validation
            and test also log node predictions' ``hp``, ``hr``, ``hf`` at threshold 0.5; test
            logs ``test/hpr_auc`` and writes ``hpr_curve.csv`` into the trainer's ``log_dir``.
        input_shape: (C, H, W) of the dry forward run in :meth:`setup` that checks the
            backbone's channel count; default: 3 channels at the data module's
            ``image_size`` when it has one, else (3, 64, 64). Set it for a backbone that
            takes one input size only (a ViT built for ``img_size``).
        aux_weight: weight of the auxiliary outputs' loss (torchvision's ``aux`` head,
            deep-supervision lists) in the training loss; their loss is logged as
            ``train/aux_loss``. 0.5 as in torchvision's reference recipe.
        compile: ``torch.compile`` the backbone (not the module: Lightning's ``self.log``
            does not trace) at set-up: ``True``, or ``torch.compile``'s options
            (``{"mode": "max-autotune"}``). The checkpoint's keys stay those of the
            uncompiled backbone.
        backbone_class: set by the module itself when ``backbone`` is an object (which
            checkpoints do not hold): the class a reload must be given again.
        on_nonfinite: what a NaN or infinite loss does: ``"error"`` stops the run at that
            step with a :class:`NonFiniteLossError` naming the step, the stage and what went
            non-finite (the input, the backbone's outputs, which level); ``"skip"`` skips
            the batch (no optimizer step, no metric update), warns and counts it
            (``<stage>/skipped_batches`` per epoch).
        inference: how validation, test and prediction run the backbone over an image:
            ``"whole"`` (once, at the size the data gives), or ``"slide"`` (windows of
            ``crop_size`` every ``stride`` pixels, overlapping logits averaged, as
            mmsegmentation's slide mode): see :class:`~hl_lightning.lightning.inference.Inference`.
        crop_size, stride: the windows of ``"slide"``, [height, width] each.
        scheduler_interval: step the schedule every ``"epoch"`` or every optimizer
            ``"step"`` (a poly decay per iteration). A scheduler config whose length
            (``total_iters``, ``T_max``, ``total_steps``) is null runs for the whole training.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> model = HierarchicalSegmenter(nn.Conv2d(3, 3, 1), h)
        >>> [m.shape for m in model.predict_step(torch.randn(2, 3, 8, 8)).values()]
        [torch.Size([2, 8, 8]), torch.Size([2, 8, 8])]
    """

    def __init__(
        self,
        backbone: nn.Module | Mapping[str, Any] | None = None,
        hierarchy: Hierarchy | Mapping[str, Any] | None = None,
        loss: LossName = "hierarchical",
        level_weights: Sequence[float] | None = None,
        loss_options: Mapping[str, Any] | None = None,
        optimizer: OptimizerFactory | Mapping[str, Any] | None = None,
        scheduler: SchedulerFactory | Mapping[str, Any] | None = None,
        ignore_index: int = 255,
        decode: DecodeMethod = "marginal",
        input_shape: Sequence[int] | None = None,
        aux_weight: float = 0.5,
        compile: bool | Mapping[str, Any] = False,
        backbone_class: str | None = None,
        on_nonfinite: Literal["error", "skip"] = "error",
        inference: InferenceMode = "whole",
        crop_size: Sequence[int] | None = None,
        stride: Sequence[int] | None = None,
        scheduler_interval: SchedulerInterval = "epoch",
    ) -> None:
        super().__init__()
        if backbone is None:
            raise MissingBackboneError(missing_backbone(backbone_class))
        if hierarchy is None:
            raise TypeError("HierarchicalSegmenter needs a hierarchy (a Hierarchy or its config)")
        if not isinstance(hierarchy, Hierarchy):
            hierarchy = Hierarchy.from_config(_plain(hierarchy))
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
        input_shape = None if input_shape is None else input_shape_of(_plain(input_shape))
        crop_size, stride = _plain(crop_size), _plain(stride)  # Hydra's lists, saved plain
        compile = _plain(compile)
        aux_weight = check_module_options(aux_weight, on_nonfinite, scheduler_interval)
        if isinstance(backbone, nn.Module):
            backbone_class = f"{type(backbone).__module__}.{type(backbone).__qualname__}"
        self.save_hyperparameters(ignore=["backbone", "hierarchy", "optimizer", "scheduler"])
        self.hparams["hierarchy"] = hierarchy.to_config()
        for key, value in (("optimizer", optimizer), ("scheduler", scheduler)):
            if isinstance(value, Mapping):
                self.hparams[key] = value
        if isinstance(backbone, Mapping):
            backbone = with_class_count(backbone, self.num_channels)
            self.backbone = build_backbone(backbone, self.num_channels)
            self.hparams["backbone"] = backbone
        else:
            self.backbone = backbone
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss_name = loss
        self.ignore_index = ignore_index
        self.decode = check_method(decode)
        self.input_shape = input_shape
        self.aux_weight = aux_weight
        self.on_nonfinite = on_nonfinite
        self.infer = Inference(inference, sides(crop_size), sides(stride))
        self.scheduler_interval = scheduler_interval
        self._skipped: dict[str, int] = {}  # non-finite batches skipped this epoch, per stage
        self.compile_options = compile
        # train/loss_epoch: the mean over every process. No NaN check (a sync per step on a
        # GPU): the step checked its loss already.
        self.train_loss = MeanMetric(nan_strategy="disable")
        self.train_metrics = self._make_metrics("train")
        self.val_metrics = self._make_metrics("val")
        self.test_metrics = self._make_metrics("test")
        self.test_curve = HierarchicalOperatingCurve(hierarchy, ignore_index=ignore_index)

    # ------------------------------------------------------------------ model
    def compute_logits(self, images: Tensor) -> Tensor | BackboneOutput:
        """Return the backbone's logits (B, K, H', W') and auxiliary logits, if any.

        By default the backbone's output read by :func:`split_outputs`. Override to adapt a
        backbone with another output: return the logits tensor, or a
        :class:`BackboneOutput` ``(logits, aux=(...))`` to train auxiliary heads too.
        """
        return split_outputs(self.backbone(images))

    @property
    def in_channels(self) -> int:
        """The image channels the backbone takes: ``input_shape[0]``, else 3."""
        return self.input_shape[0] if self.input_shape else 3

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
        logits = split_outputs(self.compute_logits(images)).logits
        return resize_logits(logits, images.shape[-2:])

    # ------------------------------------------------------------------ set-up checks
    def setup(self, stage: str) -> None:
        """Check the data's class names and the backbone's channel count before training."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        check_data_labels(self.hierarchy, datamodule)
        self.check_backbone(self.input_shape or data_input_shape(datamodule))
        if self.compile_options is not False and not self._compiled:
            options = {} if self.compile_options is True else dict(self.compile_options)
            self.backbone.compile(**options)  # in place: the state_dict keys stay the same
            self._compiled = True

    _compiled = False

    def check_backbone(self, input_shape: Sequence[int] = (3, 64, 64)) -> None:
        """Run one dry forward pass on zeros (1, *input_shape); raise if the backbone fails
        or its outputs' channels are not the :attr:`num_channels` the loss needs."""
        shape = (1, *input_shape)
        raw = dry_run(self, self.compute_logits, shape)
        outputs = split_outputs(raw)
        tree_min = isinstance(self.criterion, TreeMinLoss)
        check_channels(outputs.logits, self.num_channels, tree_min, shape, "the backbone returns")
        for i, logits in enumerate(outputs.aux):
            what = f"the backbone's auxiliary output {i + 1} has"
            check_channels(logits, self.num_channels, tree_min, shape, what)

    # ------------------------------------------------------------------ steps
    def _make_metrics(self, stage: str) -> MetricCollection:
        """Return the stage's metrics (:func:`stage_metrics`)."""
        return stage_metrics(self.hierarchy, self.ignore_index, self.decode, stage)

    def _metrics(self, stage: str) -> MetricCollection:
        return getattr(self, f"{stage}_metrics")

    def _shared_step(self, batch: Any, stage: str, batch_idx: int = 0) -> Tensor | None:
        images, target = unpack_batch(batch)
        if target.is_inference():  # a batch moved to the device in inference mode (val, test)
            # keeps no version counter: a plain copy lets the loss, the logged levels and the
            # metrics share one read of its label ids (hl_lightning.label_ids)
            with torch.inference_mode(False):
                target = target.clone()
        if stage == "train":
            raw = split_outputs(self.compute_logits(images))
            outputs, aux = resize_logits(raw.logits, images.shape[-2:]), raw.aux
        else:  # validation and test: the whole image, or windows over it (``inference``)
            outputs, aux = self.infer(self, images), ()
        reuse = self.criterion is self.hierarchical_loss  # the paper's loss: its logged levels
        with torch.set_grad_enabled(reuse and torch.is_grad_enabled()):
            logits = self.leaf_logits(outputs)
            levels = self.hierarchical_loss.level_losses(logits, target)
        if reuse:
            loss = (levels * self.hierarchical_loss.level_weights).sum()
        else:
            loss = self.criterion(outputs, target)
        levels = levels.detach()
        batch_size = images.shape[0]
        aux_loss = None
        if aux:
            size = images.shape[-2:]
            aux_loss = torch.stack([self.criterion(resize_logits(a, size), target) for a in aux])
            aux_loss = aux_loss.sum()
            loss = loss + self.aux_weight * aux_loss
        if not torch.isfinite(loss):  # one check of the scalar the step computed anyway
            values = {"levels": levels, "images": images, "outputs": outputs, "aux_loss": aux_loss}
            self._non_finite(stage, batch_idx, loss, **values)
            return None
        # Epoch values are means over every process: the per-step training loss through
        # a MeanMetric (synced once, at the epoch's end, by torchmetrics), the others with
        # sync_dist (Lightning reduces them once, at the epoch's end: they are not per-step).
        epoch_mean = partial(
            self.log, on_step=False, on_epoch=True, sync_dist=True, batch_size=batch_size
        )
        if aux_loss is not None:
            epoch_mean("train/aux_loss", aux_loss)
        if stage == "train":
            # weighted by the batch size as B equal values (with nan_strategy="disable"
            # torchmetrics 1.9 drops a weight argument)
            self.train_loss(loss.detach().expand(batch_size))
            self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True)
        else:
            self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch_size)
        for name, value in zip(self.hierarchy.level_names, levels, strict=True):
            epoch_mean(f"{stage}/loss/{name}", value)
        self._metrics(stage).update(logits.detach(), target)
        if stage == "test":
            self.test_curve.update(logits.detach(), target)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        return self._shared_step(batch, "train", batch_idx)

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        return self._shared_step(batch, "val", batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        return self._shared_step(batch, "test", batch_idx)

    def _non_finite(self, stage: str, batch_idx: int, loss: Tensor, **values: Any) -> None:
        """Stop the run (``on_nonfinite="error"``) or count a skipped batch: see
        :func:`~hl_lightning.lightning.checks.non_finite_message`."""
        where = f"{stage} loss is {loss.item()} at step {self.global_step} (batch {batch_idx})"
        message = non_finite_message(where, self.hierarchy.level_names, self.loss_name, **values)
        if self.on_nonfinite == "error":
            raise NonFiniteLossError(
                f"{message}. The run stops here (its last checkpoint is intact); set "
                "model.on_nonfinite=skip to skip such batches instead"
            )
        self._skipped[stage] = self._skipped.get(stage, 0) + 1
        rank_zero_warn(f"skipped a batch: {message}")

    def on_train_epoch_end(self) -> None:
        self._log_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def _log_metrics(self, stage: str) -> None:
        """Log the epoch's per-level mIoU, pixel accuracy and mistake severity, then reset."""
        values = self._metrics(stage).compute()  # synced across processes by torchmetrics
        logged = per_level_values(values, self.hierarchy.level_names, stage)
        if stage == "test":
            logged["test/hpr_auc"] = self._test_curve()
        # equal on every process (torchmetrics synced the states): a mean over processes
        # leaves them as they are and tells Lightning they are global values
        self.log_dict(logged, sync_dist=True)
        if self.on_nonfinite == "skip":  # each process counts its own: their sum
            skipped = torch.tensor(float(self._skipped.pop(stage, 0)), device=self.device)
            self.log(f"{stage}/skipped_batches", skipped, sync_dist=True, reduce_fx="sum")
        self._metrics(stage).reset()

    def _test_curve(self) -> Tensor:
        """Return the test operating curve's area; write its points to ``hpr_curve.csv`` in
        the trainer's ``log_dir`` (on the first process; not without a logger), then reset."""
        curve = self.test_curve.compute()  # synced across processes by torchmetrics
        write_curve(curve, self.trainer)
        self.test_curve.reset()
        return curve.auc

    def predict_step(self, batch: Any, batch_idx: int = 0) -> dict[str, Tensor]:
        """Return one label map (B, H, W) per level, keyed by level name, coarse to fine."""
        images = batch[0] if isinstance(batch, list | tuple) else batch
        images = images["image"] if isinstance(images, Mapping) else images
        logits = self.leaf_logits(self.infer(self, images))
        maps = decode_levels(logits, self.hierarchy, self.decode)
        return dict(zip(self.hierarchy.level_names, maps, strict=True))

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        """Return the optimizer and, if configured, its schedule (stepped every
        ``scheduler_interval``; a null length runs for the whole training)."""
        optimizer = make_optimizer(self.optimizer_factory, self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = make_scheduler(
            self.scheduler_factory, optimizer, run_length(self._trainer, self.scheduler_interval)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": self.scheduler_interval,
                "monitor": "val/loss",
            },
        }
