"""segmentation_models_pytorch architectures on timm / MiT encoders, as ETC students or teachers.

The library builds encoder, decoder and 1×1 segmentation head; :class:`ZooNet` calls them in
turn so that it can hand out what the training code needs besides the logits (the output
contract is the same as :mod:`etc.models.pspnet`'s):

- ``logits``: B×K×H×W at the input resolution, bilinear (align_corners=False) from stride 4;
- ``feat`` — the feature tap of this family: the **decoder output**, B×head_channels×
  ceil(H/4)×ceil(W/4), the last features before dropout and the 1×1 classifier (Segformer:
  the fused all-MLP features after BN+ReLU; DeepLabV3+: ASPP ⊕ stride-4 skip after its
  separable conv-BN-ReLU; FPN: the sum of the four GN-ReLU pyramid branches, whose dropout
  moves behind the tap; UPerNet: the PPM+FPN fusion conv-BN-ReLU);
- ``aux``: in training only, when ``aux_weight > 0``: PSPNet's auxiliary head on the stride-16
  encoder stage.

Decoders that upsample by fixed factors need H and W divisible by the encoder's output stride
(32; 16 for DeepLabV3+), so other frame sizes (CamVid 720×960, VSPW 480×853) are zero-padded
at the bottom/right — the ImageNet mean after normalisation — and logits, features and aux
logits are cropped back. The encoder is ``backbone`` so that the training code's
backbone/head learning rates apply as for PSPNet.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from etc.core.errors import EtcError
from etc.models.layers import aux_head, upsample_bilinear
from etc.models.weights import IMAGENET, fetched, load_weights

# config name → segmentation_models_pytorch class name, and its keyword for the decoder width
ARCHS: dict[str, tuple[str, str]] = {
    "segformer": ("Segformer", "decoder_segmentation_channels"),
    "deeplabv3plus": ("DeepLabV3Plus", "decoder_channels"),
    "fpn": ("FPN", "decoder_segmentation_channels"),
    "upernet": ("UPerNet", "decoder_channels"),
}
# config name → segmentation_models_pytorch encoder name: timm models through the library's
# universal `tu-` wrapper, and its native Mix Transformer (SegFormer's encoder; not in timm)
ENCODERS: dict[str, str] = {
    "mit_b0": "mit_b0",
    "mit_b1": "mit_b1",
    "mit_b2": "mit_b2",
    "resnet18": "tu-resnet18",
    "resnet50": "tu-resnet50",
    "mobilenetv3_large_100": "tu-mobilenetv3_large_100",
    "efficientnet_b0": "tu-efficientnet_b0",
}


class ZooNet(nn.Module):
    """Encoder → decoder (the feature tap) → dropout → 1×1 classifier; see the module docstring."""

    feat_stride = 4
    feature_taps = ("head",)

    def __init__(self, smp_model: nn.Module, num_classes: int, head_channels: int,
                 dropout: float, aux: bool):
        super().__init__()
        self.backbone = smp_model.encoder
        self.decoder = smp_model.decoder
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = smp_model.segmentation_head[0]  # the library's 1×1 conv
        self.size_multiple = int(self.backbone.output_stride)
        self.aux = (
            aux_head(self.backbone.out_channels[-2], head_channels, num_classes, dropout)
            if aux
            else None
        )

    def forward(self, x: torch.Tensor, full_logits: bool = True) -> dict:
        """``full_logits=False``: ``logits_low`` (stride 4, of the padded frame) and
        ``logits_size`` (the padded size to upsample them to, before cropping to the frame)
        instead of ``logits``, for etc.infer.upsample_argmax."""
        h, w = x.shape[-2:]
        m = self.size_multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        size = x.shape[-2:]
        features = self.backbone(x)
        feat = self.decoder(features)
        logits = self.classifier(self.dropout(feat))
        s = self.feat_stride
        out = {"feat": feat[..., : math.ceil(h / s), : math.ceil(w / s)]}
        if full_logits:
            out["logits"] = upsample_bilinear(logits, size)[..., :h, :w]
        else:
            out["logits_low"], out["logits_size"] = logits, tuple(size)
        if self.training and self.aux is not None:
            aux = upsample_bilinear(self.aux(features[-2]), size)
            out["aux"] = aux[..., :h, :w]
        return out


def build_zoo_model(arch: str, spec: dict, num_classes: int) -> ZooNet:
    """A ``arch`` network on encoder ``spec["backbone"]`` from one model entry of the config."""
    import segmentation_models_pytorch as smp

    name = spec["backbone"]
    if arch not in ARCHS:
        raise EtcError(f"unknown architecture '{arch}'; known: {', '.join(ARCHS)}")
    if name not in ENCODERS:
        raise EtcError(
            f"architecture '{arch}' has no encoder '{name}'; known: {', '.join(ENCODERS)}"
        )
    if float(spec["width"]) != 1.0:
        raise EtcError(
            f"model entry '{arch}' on '{name}' sets width {spec['width']}: width scales only "
            f"PSPNet's 'tiny' backbone; remove it"
        )
    head_channels = int(spec["head_channels"])
    if arch == "fpn" and head_channels % 32:
        raise EtcError(
            f"model entry 'fpn' on '{name}': head_channels {head_channels} must be a multiple "
            f"of 32 (FPN's GroupNorm has 32 groups)"
        )
    cls_name, width_key = ARCHS[arch]
    pretrained = spec["pretrained"]
    encoder = ENCODERS[name]

    def create(download: bool) -> nn.Module:
        weights = (True if encoder.startswith("tu-") else IMAGENET) if download else None
        return getattr(smp, cls_name)(
            encoder_name=encoder, encoder_weights=weights, classes=num_classes,
            **{width_key: head_channels},
        )

    if pretrained == IMAGENET:
        model = fetched(name, lambda: create(True))
    else:
        model = create(False)
        if pretrained:
            load_encoder_weights(model.encoder, pretrained, name)
    if arch == "fpn":  # its decoder ends in dropout, which would sit in front of the tap
        model.decoder.dropout = nn.Identity()
    return ZooNet(
        model,
        num_classes,
        head_channels,
        dropout=float(spec["dropout"]),
        aux=float(spec["aux_weight"]) > 0,
    )


def load_encoder_weights(encoder: nn.Module, path, name: str) -> None:
    """Local ImageNet weights: a timm classifier's state dict for `tu-` encoders (loaded into
    the timm feature extractor), the library's MiT encoder state dict for ``mit_*``."""
    smp_name = ENCODERS[name]
    if smp_name.startswith("tu-"):
        target = encoder.model
        how = (
            'export them on a machine with internet: python -c "import timm, torch; '
            f"torch.save(timm.create_model('{smp_name[3:]}', pretrained=True).state_dict(), "
            f"'{name}.pth')\", or set pretrained: imagenet"
        )
    else:
        target = encoder
        how = (
            "export them on a machine with internet: python -c \"import torch, "
            "segmentation_models_pytorch as smp; torch.save(smp.encoders.get_encoder("
            f"'{smp_name}', weights='imagenet').state_dict(), '{name}.pth')\" (or use the "
            f"model.safetensors of the hub repository smp-hub/{smp_name}.imagenet), or set "
            "pretrained: imagenet"
        )
    load_weights(target, path, name, how)
