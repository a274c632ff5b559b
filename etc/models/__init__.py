"""Segmentation networks by name (architecture × backbone): PSPNet on dilated timm backbones,
and segmentation_models_pytorch architectures on timm / MiT encoders; see etc.models.registry."""

from etc.models.info import count_params, freeze, gflops, model_summary
from etc.models.pspnet import BACKBONES, PSPNet
from etc.models.registry import (
    ARCHITECTURES,
    build_model,
    model_name,
    registered_models,
    set_feature_tap,
)

__all__ = [
    "ARCHITECTURES",
    "BACKBONES",
    "PSPNet",
    "build_model",
    "count_params",
    "freeze",
    "gflops",
    "model_name",
    "model_summary",
    "registered_models",
    "set_feature_tap",
]
