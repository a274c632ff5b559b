"""CE — cross-entropy on the labelled frame, plus the auxiliary head's share (training only).

Optional class weights (``losses.ce_weights``; the reference's 19 Cityscapes weights are in the
Cityscapes preset) make it the weighted mean ``Σ w_y CE / Σ w_y`` over the labelled pixels, as
``torch.nn.CrossEntropyLoss(weight=...)`` in the reference's ``CriterionDSN``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from etc.core.errors import EtcError
from etc.data.label_table import IGNORE


def cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean CE over the labelled pixels (IGNORE labels left out), weighted by class when
    ``weight`` (one per class) is given.

    A crop without any labelled pixel gives 0 (with a gradient path), not the NaN of
    ``F.cross_entropy``'s mean, which would stop training for a harmless batch.
    """
    if weight is None:
        total = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE, reduction="sum")
        return total / (labels != IGNORE).sum().clamp(min=1)
    weight = weight.to(device=logits.device, dtype=torch.float32)
    total = F.cross_entropy(logits.float(), labels, weight=weight, ignore_index=IGNORE, reduction="sum")
    labelled = labels[labels != IGNORE]
    norm = weight[labelled].sum()
    return total / torch.where(norm > 0, norm, torch.ones_like(norm))


def check_ce_weights(weights, n_classes: int) -> None:
    """``losses.ce_weights`` has one weight per class (or is None): the one check, run before
    training starts (etc.train.loop) and by CE on the logits it weighs."""
    if weights is not None and len(weights) != n_classes:
        raise EtcError(f"losses.ce_weights has {len(weights)} entries but the model predicts {n_classes} "
                       f"classes; give one weight per class (train-id order), or null")


def ce_loss(
    out: dict[str, torch.Tensor], labels: torch.Tensor, aux_weight: float,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """CE of ``out["logits"]`` + ``aux_weight`` × CE of ``out["aux"]`` when the model gave one."""
    loss = cross_entropy(out["logits"], labels, weight)
    if "aux" in out and aux_weight > 0:
        loss = loss + aux_weight * cross_entropy(out["aux"], labels, weight)
    return loss
