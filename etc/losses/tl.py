"""TL — the motion-guided temporal loss: the student's prediction of frame t against its own
prediction of frame t+k warped into frame t with the (frozen) optical flow ``F_{t→t+k}``.

Two forms (``losses.tl_form``; docs/fidelity.md says why and by how much they differ):

- ``etc``: ``L = (1/N) Σ_i V_i ‖q_t^i − warp(q_{t+k}, F)^i‖²``, N = every pixel of the batch.
  Dividing by N rather than by ΣV keeps a mostly occluded pair from weighing as much as a fully
  visible one, and keeps the loss scale independent of the mask.
- ``reference``: the reference code's value (``model/flow_model.py``): ``mean over B·C·H·W of
  (V q_t − V warp(q_{t+k}))²`` — V applied to both operands, so V² —, the motion weight
  ``exp(−|Σ_c (x_t − warp(x_{t+k}))_c|)`` of ImageNet-normalised images (a *signed* channel
  sum), and border-clamped warping (FlowNet2's Resample2d) with no out-of-image mask. The
  paper's λ (0.1 for TL alone, 0.01 in the full ETC run) were tuned for this form on logits.

q are softmax probabilities (the paper) or raw logits (what the reference code applies it to),
``tl_on``; "logits" alone is not the reference's value: that needs ``tl_form: reference`` too.
The weight V (``tl_mask``) of the ``etc`` form:

- ``motion``: ``exp(−|I_t − warp(I_{t+k}, F)|)``, channel mean, images in [0, 1]; pixels where
  the flow is wrong or occluded see another colour and count less;
- ``occlusion``: ``1 − occluded`` from the forward–backward check;
- ``none``: 1.

Whatever the mask, in the ``etc`` form a pixel whose sample point ``p + F(p)`` lies outside the image gets V = 0:
bilinear sampling would mix in zero padding there and report a disagreement that is not one.
Gradients flow into both frames' predictions, never into the flow or the weight.
"""

from __future__ import annotations

import torch

from etc.core.errors import EtcError
from etc.data.pairs import normalise
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
    else:
        v = _binary_weight(mode, occluded, flow)
    return v * samples_inside(flow).float()


def _binary_weight(mode: str, occluded: torch.Tensor | None, flow: torch.Tensor) -> torch.Tensor:
    if mode == "occlusion":
        if occluded is None:
            raise EtcError(
                "losses.tl_mask is 'occlusion' but the batch has no occlusion mask ('occ'); "
                "use a flow store with occlusion or set tl_mask: motion"
            )
        return (~occluded.bool()).float()
    if mode == "none":
        return torch.ones_like(flow[:, 0])
    raise EtcError(f"losses.tl_mask '{mode}' is unknown; use one of {', '.join(TL_MASKS)}")


def _operands(z_t: torch.Tensor, z_n: torch.Tensor, on: str) -> tuple[torch.Tensor, torch.Tensor]:
    if on == "probs":
        return z_t.float().softmax(1), z_n.float().softmax(1)
    if on == "logits":
        return z_t.float(), z_n.float()
    raise EtcError(f"losses.tl_on '{on}' is unknown; use one of {', '.join(TL_INPUTS)}")


def temporal_loss(
    z_t: torch.Tensor,
    z_n: torch.Tensor,
    flow: torch.Tensor,
    weight: torch.Tensor,
    on: str = "probs",
) -> torch.Tensor:
    """TL of the student's logits ``z_t``, ``z_n`` (B×K×H×W, frames t, t+k); flow = F_{t→t+k}."""
    q_t, q_n = _operands(z_t, z_n, on)
    diff = (q_t - warp_backward(q_n, flow.detach().float())).pow(2).sum(1)
    return (weight.detach() * diff).mean()


def reference_temporal_weight(
    raw_t: torch.Tensor,
    raw_n: torch.Tensor,
    flow: torch.Tensor,
    mode: str = "motion",
    occluded: torch.Tensor | None = None,
) -> torch.Tensor:
    """B×H×W weight V of the ``reference`` form (no gradient, no out-of-image mask).

    ``motion``: ``exp(−|Σ_c (x_t − warp(x_n))|)``, x the ImageNet-normalised images (the
    reference normalises before its loss sees them), warped with border clamping; ``occlusion``
    and ``none`` as in :func:`temporal_weight` (0/1, so V² = V).
    """
    flow = flow.detach().float()
    if mode != "motion":
        return _binary_weight(mode, occluded, flow)
    x_t, x_n = normalise(raw_t.detach().float()), normalise(raw_n.detach().float())
    return torch.exp(-(x_t - warp_backward(x_n, flow, padding="border")).sum(1).abs())


def reference_temporal_loss(
    z_t: torch.Tensor,
    z_n: torch.Tensor,
    flow: torch.Tensor,
    weight: torch.Tensor,
    on: str = "logits",
) -> torch.Tensor:
    """The reference form: ``mean over B·C·H·W of (V q_t − V warp(q_n))²`` (border warping)."""
    q_t, q_n = _operands(z_t, z_n, on)
    v = weight.detach().unsqueeze(1)
    warped = warp_backward(q_n, flow.detach().float(), padding="border")
    return (v * q_t - v * warped).pow(2).mean()
