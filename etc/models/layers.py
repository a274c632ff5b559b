"""Layers shared by every architecture family: conv-BN-ReLU and the auxiliary training head."""

from __future__ import annotations

import torch.nn as nn


def conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def aux_head(cin: int, head_channels: int, num_classes: int, dropout: float) -> nn.Sequential:
    """The deep-supervision head of PSPNet (3×3 conv-BN-ReLU, dropout, 1×1 classifier), used in
    training only; 256 channels at most, as in the reference code for PSPNet-18 and -101."""
    channels = min(head_channels, 256)
    return nn.Sequential(
        conv_bn_relu(cin, channels, 3),
        nn.Dropout2d(dropout),
        nn.Conv2d(channels, num_classes, 1),
    )
