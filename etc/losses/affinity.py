"""Cosine affinities between pooled feature nodes, shared by PF, MF and PA.

The true cosine ``A_ij = <f^i, g^j> / (‖f^i‖ ‖g^j‖)``, so every entry lies in [-1, 1] and the
affinity ignores the feature scale. The reference code's cross-frame affinity normalises with
mismatched indices and leaves that range (:func:`reference_cross_affinity`, PF's ``reference``
form; docs/fidelity.md). Only M×M matrices are compared, so student and teacher may have different
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


def reference_cross_affinity(f_a: torch.Tensor, f_b: torch.Tensor, nodes: int) -> torch.Tensor:
    """B×M×M ``A_ij = <a^i, b^j> / (‖b^i‖ ‖a^j‖)`` of the pooled nodes: the reference code's
    cross-frame "cosine" (util/crit.py Cos_Attn_no), whose norms swap i and j; it equals the
    cosine only where ‖a^i‖ ‖b^j‖ = ‖b^i‖ ‖a^j‖ (e.g. a = b)."""
    pa = F.adaptive_avg_pool2d(f_a.float(), nodes).flatten(2).transpose(1, 2)  # B×M×C
    pb = F.adaptive_avg_pool2d(f_b.float(), nodes).flatten(2).transpose(1, 2)
    norms = pb.norm(dim=2).unsqueeze(2) * pa.norm(dim=2).unsqueeze(1)  # [i, j] = ‖b^i‖ ‖a^j‖
    return (pa @ pb.transpose(1, 2)) / norms.clamp_min(1e-12)
