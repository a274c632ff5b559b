"""Backward warping, forward–backward occlusion and flow resizing — shared by losses and metrics.

Convention used throughout the project: a flow ``F_{t→s}`` is a tensor ``B×2×H×W`` living in
frame ``t`` (channel 0 = x, channel 1 = y, in pixels at that tensor's resolution), such that the
point at pixel ``p`` of frame ``t`` is found at ``p + F(p)`` in frame ``s``. Backward warping
``warp_backward(x_s, F_{t→s})`` therefore brings frame ``s`` into frame ``t``'s pixel grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from etc.data.label_table import IGNORE


def _target(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates ``p + F(p)`` (x, y: B×H×W each); the pixel grid is broadcast, not built."""
    _, _, h, w = flow.shape
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1)
    return flow[:, 0] + xs, flow[:, 1] + ys


def _sampling_grid(flow: torch.Tensor) -> torch.Tensor:
    """Normalised grid_sample coordinates (align_corners=True) of ``p + flow(p)``."""
    _, _, h, w = flow.shape
    x, y = _target(flow)
    gx = x.mul_(2.0 / max(w - 1, 1)).sub_(1.0)
    gy = y.mul_(2.0 / max(h - 1, 1)).sub_(1.0)
    return torch.stack((gx, gy), dim=-1)


def warp_backward(
    x: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear", padding: str = "zeros"
) -> torch.Tensor:
    """Sample ``x`` (B×C×H×W, frame s) at ``p + F_{t→s}(p)``: the result lives in frame t.

    ``mode="bilinear"`` for images, probabilities and features; ``"nearest"`` for label maps
    (it never invents a label). Samples outside the image are zero (``padding="zeros"``; use
    :func:`out_of_frame` to know which) or the nearest border pixel (``"border"``, what
    FlowNet2's Resample2d does, which the reference code warps with).
    """
    if x.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"warp_backward: input {tuple(x.shape)} and flow {tuple(flow.shape)} differ in size")
    grid = _sampling_grid(flow.to(torch.float32 if not flow.is_floating_point() else flow.dtype))
    src = x if x.is_floating_point() else x.to(grid.dtype)
    out = F.grid_sample(src.to(grid.dtype), grid, mode=mode, padding_mode=padding, align_corners=True)
    return out if x.is_floating_point() else out.round().to(x.dtype)


def _nearest(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integer pixel ``⌊p + F(p) + ½⌋`` (x, y) and whether it lies inside the image.

    One rounding rule for the label warp and the out-of-frame mask: halves round up (float16
    flow often lands on them; ``torch.round`` would round them to even and ``grid_sample`` its
    own way), and a target counts as inside exactly when its rounded pixel exists.
    """
    _, _, h, w = flow.shape
    x, y = _target(flow.to(torch.float32))
    ix, iy = x.add_(0.5).floor_().long(), y.add_(0.5).floor_().long()
    inside = (ix >= 0) & (ix <= w - 1) & (iy >= 0) & (iy <= h - 1)
    return ix, iy, inside


def warp_labels(labels: torch.Tensor, flow: torch.Tensor, fill: int = IGNORE) -> torch.Tensor:
    """Nearest backward warp of integer label maps (B×H×W) by direct indexing (no resampling, so
    no label is ever invented); out-of-frame samples get ``fill``."""
    b, h, w = labels.shape
    if flow.shape[-2:] != (h, w):
        raise ValueError(f"warp_labels: labels {tuple(labels.shape)} and flow {tuple(flow.shape)} differ in size")
    ix, iy, inside = _nearest(flow)
    index = iy.clamp_(0, h - 1).mul_(w).add_(ix.clamp_(0, w - 1)).view(b, -1)
    warped = labels.reshape(b, -1).gather(1, index).view(b, h, w)
    return torch.where(inside, warped, torch.full_like(warped, fill))


def out_of_frame(flow: torch.Tensor) -> torch.Tensor:
    """B×H×W bool: pixels whose target ``p + F(p)`` falls outside the image (nearest rounding,
    the same rule as :func:`warp_labels`)."""
    return ~_nearest(flow)[2]


def fb_occlusion(
    flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha: float = 0.01, beta: float = 0.5
) -> torch.Tensor:
    """Forward–backward consistency check (Sundaram et al. 2010; as in UnFlow / Ruder et al.).

    ``flow_fw = F_{t→s}``, ``flow_bw = F_{s→t}``. A pixel of frame t is occluded (or leaves the
    frame) when going there and back does not return:
    ``|F_fw + warp(F_bw, F_fw)|² > alpha (|F_fw|² + |warp(F_bw, F_fw)|²) + beta``.
    Returns B×H×W bool, True = occluded / out of frame.
    """
    bw_at_fw = warp_backward(flow_bw, flow_fw, mode="bilinear")
    round_trip = (flow_fw + bw_at_fw).square_().sum(dim=1)
    scale = flow_fw.square().sum(dim=1).add_(bw_at_fw.square_().sum(dim=1)).mul_(alpha).add_(beta)
    return (round_trip > scale) | out_of_frame(flow_fw)


def resize_flow(flow: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize a flow field to ``size = (H, W)`` and rescale its vectors to the new pixel units."""
    h0, w0 = flow.shape[-2:]
    h1, w1 = size
    if (h0, w0) == (h1, w1):
        return flow
    out = F.interpolate(flow, size=(h1, w1), mode=mode, align_corners=False if mode != "nearest" else None)
    scale = torch.tensor([w1 / w0, h1 / h0], dtype=flow.dtype, device=flow.device).view(1, 2, 1, 1)
    return out * scale
