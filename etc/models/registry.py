"""The model registry: a network is architecture × backbone, both by name.

A model entry of the config (the teacher or a student) names ``arch`` (default ``pspnet``) and
``backbone``; :data:`ARCHITECTURES` is the only list of both, and the config schema's enums are
tested against it. Every family returns the same dict from ``forward`` (``logits`` at the input
resolution, ``feat`` from its documented feature tap, ``aux`` in training) and keeps its
encoder in ``.backbone`` and its stride of ``feat`` in ``.feat_stride``:

=============  ==========================  ===============================================
family         architectures               feature tap (``feat``)
=============  ==========================  ===============================================
pspnet         pspnet                      PSP head after BN+ReLU, stride 8
zoo            segformer, deeplabv3plus,   decoder output, stride 4 (see etc.models.zoo)
               fpn, upernet
=============  ==========================  ===============================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

from etc.core.errors import EtcError
from etc.models import pspnet, zoo

DEFAULT_ARCH = "pspnet"


@dataclass(frozen=True)
class Architecture:
    family: str
    backbones: tuple[str, ...]
    build: Callable[[dict, int], nn.Module]
    description: str


def _zoo(arch: str) -> Callable[[dict, int], nn.Module]:
    return lambda spec, k: zoo.build_zoo_model(arch, spec, k)


ARCHITECTURES: dict[str, Architecture] = {
    "pspnet": Architecture(
        "pspnet", tuple(pspnet.BACKBONES), pspnet.build_pspnet,
        "PSPNet on a dilated (output stride 8) timm backbone, as in ETC",
    ),
    "segformer": Architecture(
        "zoo", tuple(zoo.ENCODERS), _zoo("segformer"), "SegFormer all-MLP decoder (smp)"
    ),
    "deeplabv3plus": Architecture(
        "zoo", tuple(zoo.ENCODERS), _zoo("deeplabv3plus"),
        "DeepLabV3+ (ASPP, output stride 16, stride-4 skip; smp)",
    ),
    "fpn": Architecture("zoo", tuple(zoo.ENCODERS), _zoo("fpn"), "Panoptic FPN decoder (smp)"),
    "upernet": Architecture(
        "zoo", tuple(zoo.ENCODERS), _zoo("upernet"), "UPerNet: PPM + FPN fusion (smp)"
    ),
}


def registered_models() -> list[tuple[str, str]]:
    """Every (architecture, backbone) pair that builds."""
    return [(a, b) for a, arch in ARCHITECTURES.items() for b in arch.backbones]


def model_name(spec: dict) -> str:
    """``arch/backbone`` of a model entry, e.g. ``segformer/mit_b1``."""
    return f"{spec.get('arch', DEFAULT_ARCH)}/{spec['backbone']}"


def build_model(spec: dict, num_classes: int) -> nn.Module:
    """The network of one model entry of the config (or of a checkpoint's stored entry;
    entries written before architectures had names are PSPNets); keys it lacks take the
    schema's defaults (etc.core.config.model_defaults)."""
    from etc.core.config import model_defaults
    from etc.models.layers import batchnorm_without_single_values

    spec = {**model_defaults(), **spec}
    arch = spec["arch"]
    if arch not in ARCHITECTURES:
        raise EtcError(f"unknown architecture '{arch}' (model key 'arch'); known: "
                       f"{', '.join(ARCHITECTURES)}")
    entry = ARCHITECTURES[arch]
    if spec["backbone"] not in entry.backbones:
        raise EtcError(f"architecture '{arch}' has no backbone '{spec['backbone']}' (model key "
                       f"'backbone'); its backbones: {', '.join(entry.backbones)}")
    return batchnorm_without_single_values(entry.build(spec, num_classes))


def set_feature_tap(model: nn.Module, tap: str, role: str) -> None:
    """Point the ``feat`` output (what PF, MF and PA compare) at ``tap`` (``losses.kd_features``)."""
    taps = getattr(model, "feature_taps", ("head",))
    if tap not in taps:
        raise EtcError(
            f"losses.kd_features is '{tap}', but the {role} ({type(model).__name__}) has no such "
            f"features; it offers: {', '.join(taps)} (the pyramid-pooling output exists in PSPNet only)"
        )
    if hasattr(model, "feature_tap"):
        model.feature_tap = tap
