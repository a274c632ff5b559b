"""Cosine affinities between pooled feature nodes, shared by PF, MF and PA.

The true cosine ``A_ij = <f^i, g^j> / (‖f^i‖ ‖g^j‖)``, so every entry lies in [-1, 1] and the
affinity ignores the feature scale (the reference code normalises with mismatched indices and
leaves that range). Only M×M matrices are compared, so student and teacher may have different
channel counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pooled_nodes(feat: torch.Tensor, nodes: int) -> torch.Tensor:
    """B×C×h×w → B×M×C unit vectors of the ``nodes × nodes`` adaptive-average-pooled cells."""
    pooled = F.adaptive_avg_pool2d(feat.float(), nodes).flatten(2).transpose(1, 2)
    return F.normalize(pooled, dim=2, eps=1e-8)


def cross_affinity(f_a: torch.Tensor, f_b: torch.Tensor, nodes: int) -> torch.Tensor:
    """B×M×M cosine similarities ``A_ij = cos(f_a^i, f_b^j)`` of pooled nodes, M = nodes²."""
    return pooled_nodes(f_a, nodes) @ pooled_nodes(f_b, nodes).transpose(1, 2)


def self_affinity(feat: torch.Tensor, nodes: int) -> torch.Tensor:
    """B×M×M intra-frame affinity (symmetric, ones on the diagonal)."""
    n = pooled_nodes(feat, nodes)
    return n @ n.transpose(1, 2)
