"""PI — pixel-wise distillation: the student's softened class distribution matches the teacher's."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixelwise_kd(z_s: torch.Tensor, z_t: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean over pixels of KL(softmax(z_T/τ) ‖ softmax(z_S/τ)) × τ².

    The τ² factor (Hinton et al. 2015) keeps the gradient's size independent of τ, so a
    temperature change does not silently rescale the term's weight. The teacher is detached.
    """
    log_p_s = F.log_softmax(z_s.float() / temperature, dim=1)
    log_p_t = F.log_softmax(z_t.detach().float() / temperature, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(1)
    return kl.mean() * temperature**2


def reference_pixelwise_kd(z_s: torch.Tensor, z_t: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The reference form of one frame: ``KLDivLoss()`` with its default reduction, i.e. the
    pointwise ``p_T (log p_T − log p_S)`` averaged over B·C·H·W — the class axis too, so it is
    the per-pixel KL / C — and no τ² (util/crit.py CriterionKD). The teacher is detached."""
    log_p_s = F.log_softmax(z_s.float() / temperature, dim=1)
    log_p_t = F.log_softmax(z_t.detach().float() / temperature, dim=1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).mean()
