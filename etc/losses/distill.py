"""Distillation from the frozen teacher: PI (pixel-wise), PF (pair-wise across frames),
MF (multi-frame, through a ConvLSTM) and PA (intra-frame pair-wise, structured KD).

Affinities use the true cosine between pooled feature nodes (the reference code normalises with
mismatched indices and leaves [-1, 1]); student and teacher may have different channel counts
because only M×M affinities are compared.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def pixelwise_kd(z_s: torch.Tensor, z_t: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean over pixels of KL(softmax(z_T/τ) ‖ softmax(z_S/τ)), × τ² so gradients keep their
    scale across temperatures (Hinton et al.)."""
    z_t = z_t.detach().float()
    log_p_s = F.log_softmax(z_s.float() / temperature, dim=1)
    log_p_t = F.log_softmax(z_t / temperature, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(1)
    return kl.mean() * temperature**2


def pooled_nodes(feat: torch.Tensor, nodes: int) -> torch.Tensor:
    """B×C×h×w → B×M×C unit vectors of ``nodes × nodes`` average-pooled cells."""
    pooled = F.adaptive_avg_pool2d(feat.float(), nodes).flatten(2).transpose(1, 2)
    return F.normalize(pooled, dim=2, eps=1e-8)


def cross_affinity(f_a: torch.Tensor, f_b: torch.Tensor, nodes: int) -> torch.Tensor:
    """B×M×M cosine similarities ``A_ij = cos(f_a^i, f_b^j)``, in [-1, 1]."""
    return pooled_nodes(f_a, nodes) @ pooled_nodes(f_b, nodes).transpose(1, 2)


def pairwise_frame_kd(fs_t, fs_n, ft_t, ft_n, nodes: int = 6) -> torch.Tensor:
    """PF: mean (A_S − A_T)² of the cross-frame affinity between frames t and t+k."""
    a_s = cross_affinity(fs_t, fs_n, nodes)
    with torch.no_grad():
        a_t = cross_affinity(ft_t.detach(), ft_n.detach(), nodes)
    return (a_s - a_t).pow(2).mean()


def pairwise_affinity_kd(fs: torch.Tensor, ft: torch.Tensor, nodes: int = 6) -> torch.Tensor:
    """PA (structured KD): mean (A_S − A_T)² of the intra-frame self-affinity."""
    a_s = cross_affinity(fs, fs, nodes)
    with torch.no_grad():
        a_t = cross_affinity(ft.detach(), ft.detach(), nodes)
    return (a_s - a_t).pow(2).mean()


class ConvLSTMCell(nn.Module):
    def __init__(self, cin: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(cin + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def forward(self, x, state):
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class MultiFrameKD(nn.Module):
    """MF: each frame's M×M self-affinity map is a 1-channel image fed, in time order, to one
    ConvLSTM shared by teacher and student; the loss is the MSE of the final hidden and cell
    states. By default the ConvLSTM is a fixed random function (seeded, no gradients): trained
    jointly with the student it could shrink its outputs and make the loss vanish, which is
    also why the reference code, which never steps it, works. ``trained=True`` optimises it."""

    def __init__(self, nodes: int = 6, hidden: int = 8, trained: bool = False, seed: int = 0):
        super().__init__()
        self.nodes = nodes
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.cell = ConvLSTMCell(1, hidden)
        torch.random.set_rng_state(gen_state)
        self.cell.requires_grad_(trained)

    def run(self, affinities: list[torch.Tensor]):
        b, m, _ = affinities[0].shape
        h = affinities[0].new_zeros(b, self.cell.hidden, m, m)
        c = torch.zeros_like(h)
        for a in affinities:
            h, c = self.cell(a.unsqueeze(1), (h, c))
        return h, c

    def forward(self, student_feats: list[torch.Tensor], teacher_feats: list[torch.Tensor]) -> torch.Tensor:
        a_s = [cross_affinity(f, f, self.nodes) for f in student_feats]
        with torch.no_grad():
            a_t = [cross_affinity(f.detach(), f.detach(), self.nodes) for f in teacher_feats]
            h_t, c_t = self.run(a_t)
        h_s, c_s = self.run(a_s)
        return F.mse_loss(h_s, h_t) + F.mse_loss(c_s, c_t)
