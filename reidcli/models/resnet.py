"""ResNet for the BoT baseline: timm's ResNet with last stride 1 and global average pooling."""

from __future__ import annotations

import timm
import torch
from timm.models.resnet import ResNet
from torch import nn

from reidcli.models.config import BACKBONES, ModelConfig


class ResNetBackbone(nn.Module):
    """Keys are timm's / torchvision's ResNet names (`conv1`, `bn1`, `layer1..4`), no `fc`."""

    def __init__(self, resnet: ResNet) -> None:
        super().__init__()
        for name in ("conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            self.add_module(name, getattr(resnet, name))
        self.num_features = int(resnet.num_features)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled descriptor (B, C)."""
        return self.feature_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def set_last_stride_one(resnet: ResNet) -> None:
    """BoT's last stride 1: the first block of layer4 keeps the resolution (no dilation, unlike
    timm's `output_stride=16`), doubling the final map to 16x8 at 256x128. Only strides
    change, so ImageNet weights load unchanged."""
    for module in resnet.layer4[0].modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (1, 1)


def build_resnet(cfg: ModelConfig) -> ResNetBackbone:
    spec = BACKBONES[cfg.backbone]
    resnet = timm.create_model(
        spec.timm_name, pretrained=False, num_classes=0, drop_path_rate=cfg.drop_path,
        **spec.overrides,
    )
    if not isinstance(resnet, ResNet):
        raise TypeError(f"{spec.timm_name} is not a timm ResNet")
    set_last_stride_one(resnet)
    return ResNetBackbone(resnet)
