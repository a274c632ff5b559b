"""An ablation (term → weight) turned into one callable: the loss terms, weighted, and their sum.

Adding an ablation is a config entry; adding a loss term is one entry in ``TERMS`` here.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from etc.errors import EtcError
from etc.losses.ce import ce_loss
from etc.losses.distill import MultiFrameKD, pairwise_affinity_kd, pairwise_frame_kd, pixelwise_kd
from etc.losses.temporal import temporal_loss, temporal_weight

TERMS = {
    "ce": "cross-entropy on the labelled frame (+ auxiliary head)",
    "tl": "temporal loss: prediction of t vs flow-warped prediction of t+k",
    "pi": "pixel-wise distillation (KL of softened class distributions)",
    "pf": "pair-wise-frame distillation (cross-frame cosine affinity)",
    "mf": "multi-frame distillation (affinities through a ConvLSTM)",
    "pa": "intra-frame pair-wise distillation (structured KD)",
}
TEACHER_TERMS = ("pi", "pf", "mf", "pa")
NEIGHBOUR_TERMS = ("tl", "pf", "mf")


class Criterion(nn.Module):
    """``forward(out_t, out_n, tout_t, tout_n, batch)`` → {term: weighted loss, "total": sum}.

    ``out_*``: student outputs (dicts with logits/feat/aux) for the labelled frame t and the
    neighbour t+k (``out_n`` None when no term needs it); ``tout_*``: the teacher's, or None.
    ``batch``: ``label_t``, ``raw_t``, ``raw_n`` (images in [0, 1]), ``flow`` (F_{t→t+k}),
    ``occ`` (occluded, bool), ``k``.
    """

    def __init__(self, weights: dict[str, float], losses_cfg: dict, aux_weight: float = 0.4):
        super().__init__()
        unknown = sorted(set(weights) - set(TERMS))
        if unknown:
            raise EtcError(f"unknown loss term(s) {unknown}; known: {', '.join(TERMS)}")
        self.weights = {k: float(v) for k, v in weights.items() if float(v) > 0}
        self.cfg = dict(losses_cfg)
        self.aux_weight = aux_weight
        self.nodes = int(self.cfg.get("pool_nodes", 6))
        self.mf = (MultiFrameKD(self.nodes, trained=self.cfg.get("mf_convlstm", "fixed") == "trained")
                   if "mf" in self.weights else None)

    @property
    def needs_teacher(self) -> bool:
        return any(t in self.weights for t in TEACHER_TERMS)

    @property
    def needs_neighbour(self) -> bool:
        return any(t in self.weights for t in NEIGHBOUR_TERMS)

    def forward(self, out_t, out_n, tout_t, tout_n, batch) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        w = self.weights
        if "ce" in w:
            terms["ce"] = ce_loss(out_t, batch["label_t"], self.aux_weight)
        if "tl" in w:
            v = temporal_weight(batch["raw_t"], batch["raw_n"], batch["flow"], self.cfg.get("tl_mask", "motion"), batch.get("occ"))
            terms["tl"] = temporal_loss(out_t["logits"], out_n["logits"], batch["flow"], v, self.cfg.get("tl_on", "probs"))
        if self.needs_teacher and tout_t is None:
            raise EtcError("this ablation distils from the teacher, but no teacher outputs were given")
        tau = float(self.cfg.get("temperature", 1.0))
        if "pi" in w:
            pi = pixelwise_kd(out_t["logits"], tout_t["logits"], tau)
            if out_n is not None and tout_n is not None:
                pi = 0.5 * (pi + pixelwise_kd(out_n["logits"], tout_n["logits"], tau))
            terms["pi"] = pi
        if "pf" in w:
            terms["pf"] = pairwise_frame_kd(out_t["feat"], out_n["feat"], tout_t["feat"], tout_n["feat"], self.nodes)
        if "pa" in w:
            terms["pa"] = pairwise_affinity_kd(out_t["feat"], tout_t["feat"], self.nodes)
        if "mf" in w:
            # time order per sample: the earlier frame first
            forward = (batch["k"] > 0).view(-1, 1, 1, 1)
            s_seq = [torch.where(forward, out_t["feat"], out_n["feat"]), torch.where(forward, out_n["feat"], out_t["feat"])]
            t_seq = [torch.where(forward, tout_t["feat"], tout_n["feat"]), torch.where(forward, tout_n["feat"], tout_t["feat"])]
            terms["mf"] = self.mf(s_seq, t_seq)
        weighted = {k: w[k] * v for k, v in terms.items()}
        weighted["total"] = sum(weighted.values())
        return weighted


def build_criterion(ablation: dict[str, float], losses_cfg: dict, aux_weight: float = 0.4) -> Criterion:
    return Criterion(ablation, losses_cfg, aux_weight)
