"""What a network costs (parameters, FLOPs), and freezing the teacher: for every architecture."""

from __future__ import annotations

import torch
import torch.nn as nn


def count_params(model: nn.Module, inference: bool = True) -> int:
    """Number of parameters; ``inference`` leaves out the auxiliary head (unused after training)."""
    return sum(
        p.numel() for n, p in model.named_parameters() if not (inference and n.startswith("aux."))
    )


def gflops(model: nn.Module, height: int, width: int) -> float:
    """Forward GFLOPs of one H×W frame in eval mode (auxiliary head off).

    Counted by ``torch.utils.flop_counter.FlopCounterMode``, which counts 2 FLOPs per
    multiply-accumulate (so GMACs = GFLOPs / 2) for convolutions, matrix products and attention
    only; pooling, normalisation, activations and interpolation are not counted. A network that
    pads its input to a multiple of its stride (etc.models.zoo) is counted on the padded frame.
    The model is copied to the meta device, so even PSPNet-101 at 1024×2048 is counted in
    seconds without allocating memory.
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
    from etc.models.registry import build_model, model_name

    model = build_model({**spec, "pretrained": None}, num_classes)
    return {
        "model": model_name(spec),
        "params": count_params(model),
        "params_with_aux": count_params(model, inference=False),
        "gflops": gflops(model, height, width),
        "size": (height, width),
    }
