"""Cross-entropy on the labelled frame, with the auxiliary head's share (training only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = 255


def ce_loss(out: dict[str, torch.Tensor], labels: torch.Tensor, aux_weight: float = 0.4) -> torch.Tensor:
    loss = F.cross_entropy(out["logits"].float(), labels, ignore_index=IGNORE)
    if "aux" in out and aux_weight > 0:
        loss = loss + aux_weight * F.cross_entropy(out["aux"].float(), labels, ignore_index=IGNORE)
    return loss
