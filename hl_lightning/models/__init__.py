"""Segmentation networks: the paper's U-Net baseline (any network with K logits works)."""

from hl_lightning.models.unet import UNet

__all__ = ["UNet"]
