"""PSPNet on a dilated timm backbone (output stride 8), as the ETC teacher and students use.

Pyramid pooling bins (1, 2, 3, 6), each to C/4 channels; 3×3 conv → ``head_channels``, BN,
ReLU, dropout, 1×1 classifier; an auxiliary head on stage 3 for training. ``forward`` returns a
dict: ``logits`` (at input resolution), ``feat`` (the head features before the classifier,
which the PF/MF/PA distillation terms compare), and ``aux`` while training. The dict costs
nothing at inference — ``etc infer`` reads ``logits`` only.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from etc.errors import EtcError

# name → (timm model, extra kwargs); `tiny` is a narrow one-block-per-stage timm ResNet so the
# default pipeline trains on 2 CPU cores (its width multiplies the channels).
BACKBONES = {
    "resnet18": ("resnet18", {}),
    "resnet34": ("resnet34", {}),
    "resnet50": ("resnet50", {}),
    "resnet101": ("resnet101", {}),
    "mobilenetv2_100": ("mobilenetv2_100", {}),
    "tiny": ("resnet18", {"layers": (1, 1, 1, 1)}),
}
PSP_BINS = (1, 2, 3, 6)


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class PyramidPooling(nn.Module):
    def __init__(self, cin: int, bins=PSP_BINS):
        super().__init__()
        red = max(1, cin // len(bins))
        self.stages = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), _conv_bn_relu(cin, red, 1)) for b in bins)
        self.out_channels = cin + red * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return torch.cat([x] + [F.interpolate(s(x), (h, w), mode="bilinear", align_corners=False) for s in self.stages], 1)


class PSPNet(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, head_channels: int = 256, dropout: float = 0.1, aux: bool = True):
        super().__init__()
        self.backbone = backbone
        c3, c4 = backbone.feature_info.channels()
        self.ppm = PyramidPooling(c4)
        self.head = nn.Sequential(_conv_bn_relu(self.ppm.out_channels, head_channels, 3), nn.Dropout2d(dropout))
        self.classifier = nn.Conv2d(head_channels, num_classes, 1)
        self.aux = (
            nn.Sequential(_conv_bn_relu(c3, max(8, head_channels // 2), 3), nn.Dropout2d(dropout),
                          nn.Conv2d(max(8, head_channels // 2), num_classes, 1))
            if aux else None
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        f3, f4 = self.backbone(x)
        feat = self.head(self.ppm(f4))
        out = {"logits": F.interpolate(self.classifier(feat), size, mode="bilinear", align_corners=False), "feat": feat}
        if self.training and self.aux is not None:
            out["aux"] = F.interpolate(self.aux(f3), size, mode="bilinear", align_corners=False)
        return out


def build_backbone(spec: dict) -> nn.Module:
    import timm

    name = spec["backbone"]
    if name not in BACKBONES:
        raise EtcError(f"unknown backbone '{name}'; known: {', '.join(BACKBONES)}")
    timm_name, kwargs = BACKBONES[name]
    kwargs = dict(kwargs)
    if name == "tiny":
        width = float(spec.get("width", 1.0))
        kwargs["channels"] = tuple(max(4, int(round(c * width))) for c in (16, 32, 64, 128))
        kwargs["stem_width"] = max(4, int(round(16 * width)))
    backbone = timm.create_model(timm_name, pretrained=False, features_only=True, output_stride=8, out_indices=(3, 4), **kwargs)
    if spec.get("pretrained"):
        load_backbone_weights(backbone, spec["pretrained"], name)
    return backbone


def load_backbone_weights(backbone: nn.Module, path: str | Path, name: str) -> None:
    """Load ImageNet weights from a local timm state dict (downloads are not possible here)."""
    path = Path(path)
    if not path.is_file():
        raise EtcError(
            f"backbone weights {path} not found. Weights are never downloaded at run time: on a "
            f"machine with internet run python -c \"import timm, torch; torch.save(timm.create_model("
            f"'{BACKBONES[name][0]}', pretrained=True).state_dict(), '{path.name}')\" and copy the file to {path}"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = backbone.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in usable]
    if missing:
        raise EtcError(f"{path} does not fit backbone '{name}': {len(missing)} tensors missing or of another shape "
                       f"(first: {missing[0]}); export the weights of timm's '{BACKBONES[name][0]}'")
    backbone.load_state_dict(usable, strict=True)


def build_model(spec: dict, num_classes: int) -> PSPNet:
    """A PSPNet from one model entry of the config (teacher or a student)."""
    return PSPNet(
        build_backbone(spec),
        num_classes,
        head_channels=int(spec.get("head_channels", 256)),
        dropout=float(spec.get("dropout", 0.1)),
        aux=float(spec.get("aux_weight", 0.4)) > 0,
    )


def count_params(model: nn.Module, inference: bool = True) -> int:
    """Parameters; ``inference`` leaves out the auxiliary head, which is dropped after training."""
    return sum(p.numel() for n, p in model.named_parameters() if not (inference and n.startswith("aux.")))


def gflops(model: nn.Module, height: int, width: int) -> float:
    """Forward GFLOPs (FLOPs = 2 × multiply-accumulates) of one frame in eval mode, counted by
    torch's FlopCounterMode on the meta device (no memory or time spent on real tensors)."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    m = copy.deepcopy(model).to("meta").eval()
    x = torch.empty(1, 3, height, width, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        m(x)
    return counter.get_total_flops() / 1e9


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients: the teacher is a fixed function of its input."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
