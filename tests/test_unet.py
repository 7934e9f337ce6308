"""Tests of hl_lightning.models.unet: shapes, configuration, gradients, errors."""

from __future__ import annotations

import pytest
import torch

from hl_lightning.models import UNet


@pytest.mark.parametrize("up", ["bilinear", "transposed"])
@pytest.mark.parametrize("size", [(16, 16), (17, 23), (33, 8), (41, 64)])
def test_output_has_input_size_and_one_channel_per_class(up: str, size: tuple[int, int]) -> None:
    net = UNet(num_classes=5, width=4, depth=3, up=up)
    assert net(torch.randn(2, 3, *size)).shape == (2, 5, *size)


@pytest.mark.parametrize("depth", [0, 1, 2, 4])
def test_depth_sets_number_of_down_samplings(depth: int) -> None:
    net = UNet(num_classes=3, width=4, depth=depth)
    assert len(net.down) == len(net.ups) == depth
    assert net(torch.randn(2, 3, 16, 19)).shape == (2, 3, 16, 19)


def test_width_doubles_per_stage() -> None:
    net = UNet(num_classes=3, width=6, depth=3)
    assert net.stem[0].out_channels == 6
    assert [block[0].out_channels for block in net.down] == [12, 24, 48]
    assert net.head.in_channels == 6


def test_in_channels_and_group_norm() -> None:
    net = UNet(num_classes=2, in_channels=1, width=6, depth=2, norm="group")
    assert any(isinstance(m, torch.nn.GroupNorm) for m in net.modules())
    assert net(torch.randn(1, 1, 12, 12)).shape == (1, 2, 12, 12)


def test_gradient_reaches_every_parameter() -> None:
    net = UNet(num_classes=4, width=4, depth=2, up="transposed")
    logits = net(torch.randn(2, 3, 15, 18))
    torch.nn.functional.cross_entropy(logits, torch.randint(4, (2, 15, 18))).backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_wrong_channel_count_is_reported() -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\), got shape \(1, 4, 16, 16\)"):
        UNet(num_classes=2)(torch.randn(1, 4, 16, 16))


def test_image_smaller_than_down_sampling_is_reported() -> None:
    with pytest.raises(ValueError, match="H and W >= 8"):
        UNet(num_classes=2, width=4, depth=3)(torch.randn(1, 3, 7, 32))


@pytest.mark.parametrize(
    "kwargs",
    [{"num_classes": 0}, {"width": 0}, {"depth": -1}, {"norm": "layer"}, {"up": "nearest"}],
)
def test_bad_configuration_is_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        UNet(**{"num_classes": 2, **kwargs})
