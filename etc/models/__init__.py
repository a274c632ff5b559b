"""Segmentation networks: PSPNet teacher and students on dilated timm backbones."""

from etc.models.pspnet import BACKBONES, PSPNet, build_model, count_params, freeze, gflops

__all__ = ["BACKBONES", "PSPNet", "build_model", "count_params", "freeze", "gflops"]
