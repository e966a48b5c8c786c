"""ReID models: timm ViT (TransReID, PASS), DINOv2, SOLIDER Swin, ResNet; BNNeck; loaders."""

from reidcli.models.checkpoint import load_model, read_config, save_model
from reidcli.models.config import (
    BACKBONES,
    ModelConfig,
    model_config_from,
    model_setting,
    stage_values,
)
from reidcli.models.pretrained import LoadReport, load_pretrained
from reidcli.models.reid_model import ReidModel, ReidOutput, build_model, unwrap

__all__ = [
    "BACKBONES",
    "LoadReport",
    "ModelConfig",
    "ReidModel",
    "ReidOutput",
    "build_model",
    "load_model",
    "load_pretrained",
    "model_config_from",
    "model_setting",
    "read_config",
    "save_model",
    "stage_values",
    "unwrap",
]
