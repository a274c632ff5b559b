"""PSPNet on a dilated timm backbone (output stride 8): the ETC teacher and students.

Pyramid pooling bins (1, 2, 3, 6), each a 1×1 conv to C/4 channels; 3×3 conv → ``head_channels``,
BN, ReLU, dropout, 1×1 classifier; an auxiliary head on stage 3 for training only.

``forward`` always returns a dict, in training and in evaluation alike, so that callers never
branch on the mode:

- ``logits``: B×K×H×W at the input resolution (what ``etc infer`` reads);
- ``feat``: the features the PF, MF and PA distillation terms compare the affinities of,
  B×C×H/8×W/8. ``feature_tap`` picks them: ``head`` (default), the 3×3 head conv's output after
  BN+ReLU and *before* dropout (dropout's random channel zeroing would only add noise to a
  target that has nothing to do with the teacher); ``pyramid``, the pyramid-pooling output
  (backbone ⊕ pooled branches, 2× the backbone's channels), where the reference code takes them
  (``losses.kd_features``; docs/fidelity.md row 13);
- ``aux``: auxiliary logits at the input resolution, only in training mode (and only when the
  model has an auxiliary head, i.e. ``aux_weight > 0``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from etc.core.errors import EtcError
from etc.models.layers import aux_head, conv_bn_relu, upsample_bilinear
from etc.models.weights import IMAGENET, fetched, load_weights

# name → (timm architecture, extra kwargs). `tiny` is a one-block-per-stage timm ResNet with a
# narrow 3-conv ("deep") stem and its channels multiplied by `width`, so that the default
# pipeline trains on 2 CPU cores; timm's default 7×7 stem is always 64 channels wide, which
# would dominate such a small network's cost.
BACKBONES: dict[str, tuple[str, dict]] = {
    "resnet18": ("resnet18", {}),
    "resnet34": ("resnet34", {}),
    "resnet50": ("resnet50", {}),
    "resnet101": ("resnet101", {}),
    "mobilenetv2_100": ("mobilenetv2_100", {}),
    "tiny": ("resnet18", {"layers": (1, 1, 1, 1), "stem_type": "deep"}),
}
TINY_CHANNELS = (16, 32, 64, 128)  # stage widths of `tiny` at width 1.0
PSP_BINS = (1, 2, 3, 6)
OUT_INDICES = (3, 4)  # timm feature levels at strides 16 and 32 (before dilation): stage 3, stage 4


class PyramidPooling(nn.Module):
    """Concatenate the input with its average pools at each bin size (upsampled back)."""

    def __init__(self, cin: int, bins: tuple[int, ...] = PSP_BINS):
        super().__init__()
        red = max(1, cin // len(bins))
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), conv_bn_relu(cin, red, 1)) for b in bins
        )
        self.out_channels = cin + red * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [
            upsample_bilinear(s(x), size) for s in self.stages
        ]
        return torch.cat([x, *pooled], 1)


class PSPNet(nn.Module):
    """Backbone → pyramid pooling → 3×3 conv head → classifier; see the module docstring."""

    feat_stride = 8  # ``feat`` is B×C×ceil(H/8)×ceil(W/8)
    feature_taps = ("head", "pyramid")

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        head_channels: int,
        dropout: float,
        aux: bool,
    ):
        super().__init__()
        self.backbone = backbone
        c3, c4 = backbone.feature_info.channels()
        self.ppm = PyramidPooling(c4)
        self.head = nn.Sequential(conv_bn_relu(self.ppm.out_channels, head_channels, 3))
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(head_channels, num_classes, 1)
        self.aux = aux_head(c3, head_channels, num_classes, dropout) if aux else None
        self.feature_tap = "head"  # not a weight: set per run by etc.models.set_feature_tap

    def forward(self, x: torch.Tensor, full_logits: bool = True) -> dict:
        """``full_logits=False``: ``logits_low`` (stride 8) and ``logits_size`` (what to
        upsample them to) instead of ``logits``, for etc.infer.upsample_argmax."""
        size = x.shape[-2:]
        f3, f4 = self.backbone(x)
        pyramid = self.ppm(f4)
        feat = self.head(pyramid)
        logits = self.classifier(self.dropout(feat))
        out = {"feat": pyramid if self.feature_tap == "pyramid" else feat}
        if full_logits:
            out["logits"] = upsample_bilinear(logits, size)
        else:
            out["logits_low"], out["logits_size"] = logits, tuple(size)
        if self.training and self.aux is not None:
            out["aux"] = upsample_bilinear(self.aux(f3), size)
        return out

    # The backbone/head split a keyframe method warps features across (etc.infer.keyframe, DFF-style):
    # ``head_logits(backbone_features(x))`` is ``forward``'s ``logits_low`` in evaluation mode.
    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's last features (stride 8), the input of the pyramid pooling."""
        return self.backbone(x)[-1]

    def head_logits(self, f4: torch.Tensor) -> torch.Tensor:
        """Pyramid pooling, 3×3 conv head and classifier: stride-8 class scores."""
        return self.classifier(self.dropout(self.head(self.ppm(f4))))


def build_backbone(spec: dict) -> nn.Module:
    """The dilated (output stride 8) timm feature extractor of one model entry of the config."""
    import timm

    from etc.core.config import model_defaults

    spec = {**model_defaults(), **spec}
    name = spec["backbone"]
    if name not in BACKBONES:
        raise EtcError(f"unknown PSPNet backbone '{name}'; known: {', '.join(BACKBONES)}")
    timm_name, kwargs = BACKBONES[name]
    kwargs = dict(kwargs)
    width = float(spec["width"])
    if name == "tiny":
        channels = tuple(max(4, int(round(c * width))) for c in TINY_CHANNELS)
        kwargs["channels"] = channels
        kwargs["stem_width"] = max(2, channels[0] // 2)  # deep stem: (s, s, 2s) → stage 1 input
    elif width != 1.0:
        raise EtcError(
            f"model entry with backbone '{name}' sets width {width}: width scales only the "
            f"'tiny' backbone; remove it or use backbone: tiny"
        )
    pretrained = spec["pretrained"]
    if pretrained == IMAGENET and name == "tiny":
        raise EtcError(
            "backbone 'tiny' (model key pretrained: imagenet) has no published weights: save the "
            "backbone state dict of an earlier run and give its path, or set pretrained: null"
        )

    def create(download: bool) -> nn.Module:
        return timm.create_model(
            timm_name,
            pretrained=download,
            features_only=True,
            output_stride=8,
            out_indices=OUT_INDICES,
            **kwargs,
        )

    if pretrained == IMAGENET:
        return fetched(name, lambda: create(True))
    backbone = create(False)
    if pretrained:
        load_backbone_weights(backbone, pretrained, name)
    return backbone


def load_backbone_weights(backbone: nn.Module, path: str | Path, name: str) -> None:
    """Load ImageNet weights from a local timm state dict (the whole classifier's fits)."""
    timm_name = BACKBONES[name][0]
    how = (
        'export them on a machine with internet: python -c "import timm, torch; '
        f"torch.save(timm.create_model('{timm_name}', pretrained=True).state_dict(), "
        f"'{Path(path).name}')\", or set pretrained: imagenet to let timm download them"
    )
    if name == "tiny":
        how = (
            "'tiny' has no published weights: save the backbone state dict of an earlier run, "
            "or set pretrained: null"
        )
    load_weights(backbone, path, name, how)


def build_pspnet(spec: dict, num_classes: int) -> PSPNet:
    """A PSPNet from one model entry of the config (the teacher or a student), its defaults
    filled (etc.models.build_model)."""
    return PSPNet(
        build_backbone(spec),
        num_classes,
        head_channels=int(spec["head_channels"]),
        dropout=float(spec["dropout"]),
        aux=float(spec["aux_weight"]) > 0,
    )
