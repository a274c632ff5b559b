"""CE — cross-entropy on the labelled frame, plus the auxiliary head's share (training only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from etc.data.labels import IGNORE


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean CE over the labelled pixels (IGNORE labels left out).

    A crop without any labelled pixel gives 0 (with a gradient path), not the NaN of
    ``F.cross_entropy``'s mean, which would stop training for a harmless batch.
    """
    total = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE, reduction="sum")
    return total / (labels != IGNORE).sum().clamp(min=1)


def ce_loss(
    out: dict[str, torch.Tensor], labels: torch.Tensor, aux_weight: float
) -> torch.Tensor:
    """CE of ``out["logits"]`` + ``aux_weight`` × CE of ``out["aux"]`` when the model gave one."""
    loss = cross_entropy(out["logits"], labels)
    if "aux" in out and aux_weight > 0:
        loss = loss + aux_weight * cross_entropy(out["aux"], labels)
    return loss
