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
