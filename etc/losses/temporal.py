"""TL — the motion-guided temporal loss: the student's prediction of frame t against its own
prediction of frame t+k warped into frame t with the (frozen) optical flow.

``L = (1/N) Σ_i V_i ‖q_t^i − warp(q_{t+k}, F_{t→t+k})^i‖²`` over all N pixels of the batch,
with ``V = exp(−|I_t − warp(I_{t+k}, F)|)`` (channel mean, images in [0, 1]) so that pixels
where the flow is wrong or occluded — and the warped image therefore differs — count less.
Pixels whose sample falls outside the image get V = 0. Dividing by N (not by ΣV) keeps the
loss from growing when much of the frame is masked out.
"""

from __future__ import annotations

import torch

from etc.flow.warp import out_of_frame, warp_backward


def temporal_weight(raw_t: torch.Tensor, raw_n: torch.Tensor, flow: torch.Tensor, mode: str = "motion",
                    occluded: torch.Tensor | None = None) -> torch.Tensor:
    """B×H×W weight in [0, 1]: ``motion`` exp(−|I_t − Î|), ``occlusion`` 1 − occluded, ``none``."""
    if mode == "motion":
        warped = warp_backward(raw_n, flow)
        v = torch.exp(-(raw_t - warped).abs().mean(1))
    elif mode == "occlusion":
        if occluded is None:
            raise ValueError("tl_mask 'occlusion' needs the forward–backward occlusion mask in the batch ('occ')")
        v = (~occluded).float()
    elif mode == "none":
        v = torch.ones_like(raw_t[:, 0])
    else:
        raise ValueError(f"unknown temporal weight '{mode}'; use motion, occlusion or none")
    return v * (~out_of_frame(flow)).float()


def temporal_loss(z_t: torch.Tensor, z_n: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor, on: str = "probs") -> torch.Tensor:
    """``z_*``: B×K×H×W logits of the student on frames t and t+k; ``flow`` = F_{t→t+k}."""
    flow = flow.detach()
    weight = weight.detach()
    if on == "probs":
        q_t, q_n = z_t.float().softmax(1), z_n.float().softmax(1)
    elif on == "logits":
        q_t, q_n = z_t.float(), z_n.float()
    else:
        raise ValueError(f"unknown TL input '{on}'; use probs or logits")
    diff = (q_t - warp_backward(q_n, flow)).pow(2).sum(1)
    return (weight * diff).mean()
