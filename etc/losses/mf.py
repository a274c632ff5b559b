"""MF — multi-frame dependency distillation: the teacher's and the student's per-frame affinity
maps, fed in time order through one shared ConvLSTM, must end in the same hidden and cell states.

Each frame's M×M intra-frame affinity (pooled nodes, true cosine) is a 1-channel M×M image.

The ConvLSTM is **fixed and random by default** (``mf_convlstm: fixed``): initialised from a
seed of its own (the global RNG is left untouched, so adding MF does not change the rest of a
run), never optimised. Trained jointly on this loss it has a trivial minimum — saturate or
shrink its gates so that every input sequence ends in the same state — and the term would
vanish without teaching the student anything; the reference code never steps its ConvLSTM
either. ``trained`` optimises it anyway (the training code adds its parameters to the optimiser).

Frames (``losses.mf_frames``): 3 — (t−k, t, t+k), the reference's sequence — or 2, the pair
(t, t+k) the other terms use (no third frame to decode and run). Hidden size
(``losses.mf_hidden``): the reference's is 4. The normalisation — MSE of the final hidden plus
MSE of the final cell state — is the reference's (util/crit.py CriterionLSTM); docs/fidelity.md.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from etc.losses.affinity import self_affinity


class ConvLSTMCell(nn.Module):
    """One ConvLSTM cell (Shi et al. 2015): LSTM gates computed by a 3×3 convolution."""

    def __init__(self, cin: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(cin + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class MultiFrameKD(nn.Module):
    """``forward(student_feats, teacher_feats)``: lists (time order, ≥ 2 frames) of B×C×h×w
    features → MSE(h_S, h_T) + MSE(c_S, c_T) of the final ConvLSTM states."""

    def __init__(self, nodes: int = 6, hidden: int = 4, trained: bool = False, seed: int = 0):
        super().__init__()
        self.nodes = nodes
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.cell = ConvLSTMCell(1, hidden)
        self.cell.requires_grad_(trained)

    def run(self, affinities: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (hidden, cell) state after the B×M×M affinity maps, from a zero state."""
        b, m, _ = affinities[0].shape
        h = affinities[0].new_zeros(b, self.cell.hidden, m, m)
        c = torch.zeros_like(h)
        for a in affinities:
            h, c = self.cell(a.unsqueeze(1), (h, c))
        return h, c

    def forward(
        self, student_feats: list[torch.Tensor], teacher_feats: list[torch.Tensor]
    ) -> torch.Tensor:
        if len(student_feats) < 2 or len(student_feats) != len(teacher_feats):
            raise ValueError(
                f"MF needs the same ≥ 2 frames from student and teacher, got "
                f"{len(student_feats)} and {len(teacher_feats)}"
            )
        with torch.no_grad():
            h_t, c_t = self.run([self_affinity(f.detach(), self.nodes) for f in teacher_feats])
        h_s, c_s = self.run([self_affinity(f, self.nodes) for f in student_feats])
        return F.mse_loss(h_s, h_t) + F.mse_loss(c_s, c_t)
