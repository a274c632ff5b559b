"""The loss terms by name and what each needs: the one list of them.

Importable without torch, because the workflow asks it which inputs a student's rule needs
(flow for TL, the teacher for distillation). ``etc.losses.criterion`` attaches the computation
to each name; the config schema's ablation keys are checked against ``TERMS`` by a test.
"""

from __future__ import annotations

from dataclasses import dataclass

NEEDS = ("needs_teacher", "needs_neighbour", "needs_flow")


@dataclass(frozen=True)
class TermInfo:
    description: str
    needs_teacher: bool = False
    needs_neighbour: bool = False
    needs_flow: bool = False


TERMS: dict[str, TermInfo] = {
    "ce": TermInfo("cross-entropy on the labelled frame (+ auxiliary head)"),
    "tl": TermInfo("temporal loss: prediction of t vs flow-warped prediction of t+k",
                   needs_neighbour=True, needs_flow=True),
    "pi": TermInfo("pixel-wise distillation (KL of softened class distributions)", needs_teacher=True),
    "pf": TermInfo("pair-wise-frame distillation (cross-frame cosine affinity)",
                   needs_teacher=True, needs_neighbour=True),
    "mf": TermInfo("multi-frame distillation (affinity maps through a ConvLSTM)",
                   needs_teacher=True, needs_neighbour=True),
    "pa": TermInfo("intra-frame pair-wise distillation (structured KD)", needs_teacher=True),
}


def ablation_needs(weights: dict[str, float], flag: str) -> bool:
    """Whether any term of positive weight has ``flag`` (needs_teacher/_neighbour/_flow)."""
    if flag not in NEEDS:
        raise ValueError(f"unknown need '{flag}'; known: {', '.join(NEEDS)}")
    return any(float(w) > 0 and getattr(TERMS[t], flag) for t, w in weights.items() if t in TERMS)
