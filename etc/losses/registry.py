"""The loss terms by name, what each needs, and the forms (normalisations) each can take: the
one list of them.

Importable without torch, because the workflow asks it which inputs a student's rule needs
(flow for TL, the teacher for distillation). ``etc.losses.criterion`` attaches one computation
to each (term, form); the config schema's ablation keys and ``losses.<term>_form`` choices are
checked against ``TERMS`` by a test. Why the forms differ: docs/fidelity.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NEEDS = ("needs_teacher", "needs_neighbour", "needs_flow", "needs_third")

ETC_FORM = "etc"
REFERENCE_FORM = "reference"


@dataclass(frozen=True)
class TermInfo:
    description: str
    needs_teacher: bool = False
    needs_neighbour: bool = False
    needs_flow: bool = False
    # a third frame (the neighbour mirrored about t) when the term's settings ask for one
    # (MF with losses.mf_frames: 3); the criterion decides, see Criterion.needs_third
    needs_third: bool = False
    # form name -> what it computes; the first is the schema default (``losses.<term>_form``)
    forms: dict[str, str] = field(default_factory=lambda: {ETC_FORM: "the only form"})


TERMS: dict[str, TermInfo] = {
    "ce": TermInfo("cross-entropy on the labelled frame (+ auxiliary head)"),
    "tl": TermInfo(
        "temporal loss: prediction of t vs flow-warped prediction of t+k",
        needs_neighbour=True, needs_flow=True,
        forms={ETC_FORM: "(1/N) Σ V ‖q_t − warp(q_t+k)‖², V from images in [0, 1] (channel mean); "
                         "samples outside the image get V = 0",
               REFERENCE_FORM: "mean over B·C·H·W of (V q_t − V warp(q_t+k))², V from ImageNet-"
                               "normalised images (signed channel sum), border-clamped warping "
                               "(model/flow_model.py)"}),
    "pi": TermInfo(
        "pixel-wise distillation (KL of softened class distributions)", needs_teacher=True,
        forms={ETC_FORM: "per-pixel KL × τ², averaged over pixels and over the frames run",
               REFERENCE_FORM: "KLDivLoss() per frame (mean over B·C·H·W, no τ²), summed over the "
                               "frames t and t+k (util/crit.py CriterionKD)"}),
    "pf": TermInfo(
        "pair-wise-frame distillation (cross-frame cosine affinity)",
        needs_teacher=True, needs_neighbour=True,
        forms={ETC_FORM: "mean (A_S − A_T)², A the true cosine of pooled nodes",
               REFERENCE_FORM: "mean (A_S − A_T)², A_ij = <f_t^i, f_n^j> / (‖f_n^i‖ ‖f_t^j‖) "
                               "(the reference's index mismatch, util/crit.py Cos_Attn_no)"}),
    "mf": TermInfo(
        "multi-frame distillation (affinity maps through a ConvLSTM)",
        needs_teacher=True, needs_neighbour=True, needs_third=True,
        forms={ETC_FORM: "MSE(h_S, h_T) + MSE(c_S, c_T) of the final ConvLSTM state — the "
                         "reference's normalisation too (util/crit.py CriterionLSTM)"}),
    "pa": TermInfo(
        "intra-frame pair-wise distillation (structured KD)", needs_teacher=True,
        forms={ETC_FORM: "mean (A_S − A_T)² of frame t's self-affinity",
               REFERENCE_FORM: "frame t's term + 0.4 × each other frame run (util/crit.py "
                               "CriterionSDcos_self)"}),
}


def form_key(term: str) -> str:
    """The ``losses`` config key that picks ``term``'s form."""
    return f"{term}_form"


def active_terms(weights: dict[str, float]) -> list[str]:
    """The loss terms of an ablation that run: known to the registry, of positive weight."""
    return [t for t, w in weights.items() if t in TERMS and float(w) > 0]


def ablation_needs(weights: dict[str, float], flag: str) -> bool:
    """Whether any term of positive weight has ``flag`` (needs_teacher/_neighbour/_flow/_third).

    ``needs_third`` says a term *can* use a third frame; whether it does depends on its settings
    (``Criterion.needs_third``)."""
    if flag not in NEEDS:
        raise ValueError(f"unknown need '{flag}'; known: {', '.join(NEEDS)}")
    return any(getattr(TERMS[t], flag) for t in active_terms(weights))
