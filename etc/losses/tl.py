"""TL — the motion-guided temporal loss: the student's prediction of frame t against its own
prediction of frame t+k warped into frame t with the (frozen) optical flow ``F_{t→t+k}``.

``L = (1/N) Σ_i V_i ‖q_t^i − warp(q_{t+k}, F)^i‖²``, N = every pixel of the batch. Dividing by
N rather than by ΣV keeps a mostly occluded pair from weighing as much as a fully visible one,
and keeps the loss scale independent of the mask. q are softmax probabilities (the paper) or
raw logits (the reference code), ``tl_on``. The weight V (``tl_mask``):

- ``motion``: ``exp(−|I_t − warp(I_{t+k}, F)|)``, channel mean, images in [0, 1]; pixels where
  the flow is wrong or occluded see another colour and count less;
- ``occlusion``: ``1 − occluded`` from the forward–backward check;
- ``none``: 1.

Whatever the mask, a pixel whose sample point ``p + F(p)`` lies outside the image gets V = 0:
bilinear sampling would mix in zero padding there and report a disagreement that is not one.
Gradients flow into both frames' predictions, never into the flow or the weight.
"""

from __future__ import annotations

import torch

from etc.errors import EtcError
from etc.flow.warp import warp_backward

TL_MASKS = ("motion", "occlusion", "none")
TL_INPUTS = ("probs", "logits")


def samples_inside(flow: torch.Tensor) -> torch.Tensor:
    """B×H×W bool: ``p + F(p)`` lies within the image (bilinear sampling needs no padding)."""
    _, _, h, w = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=flow.device, dtype=flow.dtype),
        torch.arange(w, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    x, y = xs + flow[:, 0], ys + flow[:, 1]
    eps = 1e-3
    return (x >= -eps) & (x <= w - 1 + eps) & (y >= -eps) & (y <= h - 1 + eps)


def temporal_weight(
    raw_t: torch.Tensor,
    raw_n: torch.Tensor,
    flow: torch.Tensor,
    mode: str = "motion",
    occluded: torch.Tensor | None = None,
) -> torch.Tensor:
    """B×H×W weight V in [0, 1] (no gradient); see the module docstring for ``mode``."""
    flow = flow.detach().float()
    if mode == "motion":
        warped = warp_backward(raw_n.detach().float(), flow)
        v = torch.exp(-(raw_t.detach().float() - warped).abs().mean(1))
    elif mode == "occlusion":
        if occluded is None:
            raise EtcError(
                "losses.tl_mask is 'occlusion' but the batch has no occlusion mask ('occ'); "
                "use a flow store with occlusion or set tl_mask: motion"
            )
        v = (~occluded.bool()).float()
    elif mode == "none":
        v = torch.ones_like(flow[:, 0])
    else:
        raise EtcError(f"losses.tl_mask '{mode}' is unknown; use one of {', '.join(TL_MASKS)}")
    return v * samples_inside(flow).float()


def temporal_loss(
    z_t: torch.Tensor,
    z_n: torch.Tensor,
    flow: torch.Tensor,
    weight: torch.Tensor,
    on: str = "probs",
) -> torch.Tensor:
    """TL of the student's logits ``z_t``, ``z_n`` (B×K×H×W, frames t, t+k); flow = F_{t→t+k}."""
    if on == "probs":
        q_t, q_n = z_t.float().softmax(1), z_n.float().softmax(1)
    elif on == "logits":
        q_t, q_n = z_t.float(), z_n.float()
    else:
        raise EtcError(f"losses.tl_on '{on}' is unknown; use one of {', '.join(TL_INPUTS)}")
    diff = (q_t - warp_backward(q_n, flow.detach().float())).pow(2).sum(1)
    return (weight.detach() * diff).mean()
