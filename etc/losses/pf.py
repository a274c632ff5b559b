"""PF — pair-wise-frame dependency distillation: the student's cross-frame affinity between the
pooled features of frames t and t+k matches the teacher's."""

from __future__ import annotations

import torch

from etc.losses.affinity import cross_affinity, reference_cross_affinity


def pairwise_frame_kd(
    fs_t: torch.Tensor, fs_n: torch.Tensor, ft_t: torch.Tensor, ft_n: torch.Tensor, nodes: int = 6,
    form: str = "etc",
) -> torch.Tensor:
    """Mean (A_S − A_T)² of ``A_ij = cos(f_t^i, f_{t+k}^j)`` over the M×M entries (M = nodes²).

    ``fs_*`` student features, ``ft_*`` teacher features (detached) of frames t and t+k.
    ``form="reference"``: A is the reference code's mis-normalised affinity instead
    (:func:`etc.losses.affinity.reference_cross_affinity`); the mean is the same.
    """
    affinity = reference_cross_affinity if form == "reference" else cross_affinity
    a_s = affinity(fs_t, fs_n, nodes)
    with torch.no_grad():
        a_t = affinity(ft_t, ft_n, nodes)
    return (a_s - a_t).pow(2).mean()
