"""PA — intra-frame pair-wise distillation (structured KD, Liu et al. CVPR 2019): the student's
self-affinity of pooled features within one frame matches the teacher's."""

from __future__ import annotations

import torch

from etc.losses.affinity import self_affinity


def pairwise_affinity_kd(fs: torch.Tensor, ft: torch.Tensor, nodes: int = 6) -> torch.Tensor:
    """Mean (A_S − A_T)² of the M×M self-affinities (teacher detached)."""
    a_s = self_affinity(fs, nodes)
    with torch.no_grad():
        a_t = self_affinity(ft, nodes)
    return (a_s - a_t).pow(2).mean()


NEIGHBOUR_SHARE = 0.4  # the reference's weight of each other frame (util/crit.py CriterionSDcos_self)


def reference_pairwise_affinity_kd(
    fs: list[torch.Tensor], ft: list[torch.Tensor], nodes: int = 6
) -> torch.Tensor:
    """The reference form over the frames a step ran, labelled frame first: its term plus 0.4 ×
    each other frame's (the reference runs t−k, t, t+k: ``loss_t + 0.4 (loss_t−k + loss_t+k)``)."""
    loss = pairwise_affinity_kd(fs[0], ft[0], nodes)
    for s, t in zip(fs[1:], ft[1:], strict=True):
        loss = loss + NEIGHBOUR_SHARE * pairwise_affinity_kd(s, t, nodes)
    return loss
