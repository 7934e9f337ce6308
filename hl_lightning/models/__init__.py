"""Segmentation networks: the paper's U-Net, a head for any timm encoder, and builders for
smp, torchvision and Hugging Face models (any network with K logits per pixel works)."""

from hl_lightning.models.timm_fpn import TimmFPN
from hl_lightning.models.unet import UNet
from hl_lightning.models.zoo import hf_model, smp_model, torchvision_model

__all__ = ["TimmFPN", "UNet", "hf_model", "smp_model", "torchvision_model"]
