"""PSPNet on a dilated timm backbone (output stride 8): the ETC teacher and students.

Pyramid pooling bins (1, 2, 3, 6), each a 1×1 conv to C/4 channels; 3×3 conv → ``head_channels``,
BN, ReLU, dropout, 1×1 classifier; an auxiliary head on stage 3 for training only.

``forward`` always returns a dict, in training and in evaluation alike, so that callers never
branch on the mode:

- ``logits``: B×K×H×W at the input resolution (what ``etc infer`` reads);
- ``feat``: the PSP head features, B×C×H/8×W/8, after BN+ReLU and *before* dropout — the PF,
  MF and PA distillation terms compare their affinities, and dropout's random channel zeroing
  would only add noise to a target that has nothing to do with the teacher;
- ``aux``: auxiliary logits at the input resolution, only in training mode (and only when the
  model has an auxiliary head, i.e. ``aux_weight > 0``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from etc.errors import EtcError

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


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PyramidPooling(nn.Module):
    """Concatenate the input with its average pools at each bin size (upsampled back)."""

    def __init__(self, cin: int, bins: tuple[int, ...] = PSP_BINS):
        super().__init__()
        red = max(1, cin // len(bins))
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), _conv_bn_relu(cin, red, 1)) for b in bins
        )
        self.out_channels = cin + red * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(s(x), size, mode="bilinear", align_corners=False) for s in self.stages
        ]
        return torch.cat([x, *pooled], 1)


class PSPNet(nn.Module):
    """Backbone → pyramid pooling → 3×3 conv head → classifier; see the module docstring."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        head_channels: int = 256,
        dropout: float = 0.1,
        aux: bool = True,
    ):
        super().__init__()
        self.backbone = backbone
        c3, c4 = backbone.feature_info.channels()
        self.ppm = PyramidPooling(c4)
        self.head = nn.Sequential(_conv_bn_relu(self.ppm.out_channels, head_channels, 3))
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(head_channels, num_classes, 1)
        aux_channels = min(head_channels, 256)  # the reference: 256 for PSPNet-18 and -101
        self.aux = (
            nn.Sequential(
                _conv_bn_relu(c3, aux_channels, 3),
                nn.Dropout2d(dropout),
                nn.Conv2d(aux_channels, num_classes, 1),
            )
            if aux
            else None
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        f3, f4 = self.backbone(x)
        feat = self.head(self.ppm(f4))
        logits = self.classifier(self.dropout(feat))
        out = {
            "logits": F.interpolate(logits, size, mode="bilinear", align_corners=False),
            "feat": feat,
        }
        if self.training and self.aux is not None:
            out["aux"] = F.interpolate(self.aux(f3), size, mode="bilinear", align_corners=False)
        return out


def build_backbone(spec: dict) -> nn.Module:
    """The dilated (output stride 8) timm feature extractor of one model entry of the config."""
    import timm

    name = spec["backbone"]
    if name not in BACKBONES:
        raise EtcError(f"unknown backbone '{name}'; known: {', '.join(BACKBONES)}")
    timm_name, kwargs = BACKBONES[name]
    kwargs = dict(kwargs)
    width = float(spec.get("width", 1.0))
    if name == "tiny":
        channels = tuple(max(4, int(round(c * width))) for c in TINY_CHANNELS)
        kwargs["channels"] = channels
        kwargs["stem_width"] = max(2, channels[0] // 2)  # deep stem: (s, s, 2s) → stage 1 input
    elif width != 1.0:
        raise EtcError(
            f"model entry with backbone '{name}' sets width {width}: width scales only the "
            f"'tiny' backbone; remove it or use backbone: tiny"
        )
    backbone = timm.create_model(
        timm_name,
        pretrained=False,
        features_only=True,
        output_stride=8,
        out_indices=OUT_INDICES,
        **kwargs,
    )
    if spec.get("pretrained"):
        load_backbone_weights(backbone, spec["pretrained"], name)
    return backbone


def load_backbone_weights(backbone: nn.Module, path: str | Path, name: str) -> None:
    """Load ImageNet weights from a local timm state dict; nothing is downloaded at run time.

    The state dict of the whole classifier (``timm.create_model(..., pretrained=True)``) fits:
    keys the feature extractor does not have (``fc.*``, ``classifier.*``) are ignored, but every
    backbone tensor must be present with its shape.
    """
    path = Path(path)
    timm_name = BACKBONES[name][0]
    if not path.is_file():
        how = (
            'on a machine with internet run python -c "import timm, torch; '
            f"torch.save(timm.create_model('{timm_name}', pretrained=True).state_dict(), "
            f"'{path.name}')\" and copy the file to {path}"
        )
        if name == "tiny":
            how = (
                "'tiny' has no published weights: save the backbone state dict of an earlier "
                "run, or set pretrained: null"
            )
        raise EtcError(
            f"backbone weights {path} (model key 'pretrained') not found; weights are never "
            f"downloaded at run time: {how}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — any unreadable file is the user's to replace
        raise EtcError(
            f"backbone weights {path} cannot be read as a torch state dict ({exc}); "
            f"export them with torch.save(model.state_dict(), ...)"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise EtcError(f"backbone weights {path} hold a {type(state).__name__}, not a state dict")
    own = backbone.state_dict()
    usable = {
        k: v for k, v in state.items() if k in own and getattr(v, "shape", None) == own[k].shape
    }
    missing = [k for k in own if k not in usable]
    if missing:
        raise EtcError(
            f"backbone weights {path} do not fit backbone '{name}': {len(missing)} of {len(own)} "
            f"tensors missing or of another shape (first: {missing[0]}); export the state dict "
            f"of timm's '{timm_name}'"
        )
    backbone.load_state_dict(usable, strict=True)


def build_model(spec: dict, num_classes: int) -> PSPNet:
    """A PSPNet from one model entry of the config (the teacher or a student)."""
    return PSPNet(
        build_backbone(spec),
        num_classes,
        head_channels=int(spec.get("head_channels", 256)),
        dropout=float(spec.get("dropout", 0.1)),
        aux=float(spec.get("aux_weight", 0.4)) > 0,
    )


def count_params(model: nn.Module, inference: bool = True) -> int:
    """Number of parameters; ``inference`` leaves out the auxiliary head (unused after training)."""
    return sum(
        p.numel() for n, p in model.named_parameters() if not (inference and n.startswith("aux."))
    )


def gflops(model: nn.Module, height: int, width: int) -> float:
    """Forward GFLOPs of one H×W frame in eval mode (auxiliary head off).

    Counted by ``torch.utils.flop_counter.FlopCounterMode``, which counts 2 FLOPs per
    multiply-accumulate (so GMACs = GFLOPs / 2) for convolutions and matrix products only;
    pooling, BN, activations and interpolation are not counted. The model is copied to the meta
    device, so even PSPNet-101 at 1024×2048 is counted in seconds without allocating memory.
    """
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(model).to("meta").eval()
    x = torch.empty(1, 3, height, width, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(x)
    return counter.get_total_flops() / 1e9


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients: the teacher is a fixed function of its input."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def model_summary(spec: dict, num_classes: int, height: int, width: int) -> dict:
    """Parameters (inference and with the auxiliary head) and GFLOPs of one model entry."""
    model = build_model({**spec, "pretrained": None}, num_classes)
    return {
        "backbone": spec["backbone"],
        "params": count_params(model),
        "params_with_aux": count_params(model, inference=False),
        "gflops": gflops(model, height, width),
        "size": (height, width),
    }
