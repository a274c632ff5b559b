"""The registry of loss terms, and an ablation (term → weight) turned into one callable.

Adding an ablation is a config entry. Adding a loss term is a module in ``etc/losses/``, its
name, needs and forms in ``etc.losses.registry.TERMS``, one computation per form in ``COMPUTE``
below, and its name in the config schema's ablation properties and ``losses.<term>_form`` enum
(a test checks they agree). The forms and why they differ: docs/fidelity.md.

Batch contract of :class:`Criterion` — ``criterion(out_t, out_n, tout_t, tout_n, batch)``:

- ``out_t``, ``out_n``: the student's output dicts (``logits``, ``feat``, ``aux`` in training;
  see ``etc.models.pspnet``) for the labelled frame t and its neighbour n = t+k. ``out_n`` may
  be None when no term of the ablation needs the neighbour (``criterion.needs_neighbour``).
- ``tout_t``, ``tout_n``: the teacher's output dicts, or None when no term needs the teacher
  (``criterion.needs_teacher``); they are detached here whatever the caller did.
- ``batch``: ``label_t`` (B×H×W long, 255 = ignore; CE only looks at frame t), ``raw_t``,
  ``raw_n`` (B×3×H×W images in [0, 1], for the motion weight), ``flow`` (F_{t→n}, B×2×H×W
  at the logits' resolution), ``occ`` (B×H×W bool, True = occluded; needed by
  ``tl_mask: occlusion`` only), ``k`` (B, frame offset n − t; MF orders the frames in time
  with it, and assumes k > 0 when absent), ``k_third`` (B, offset of the third frame; with it).
- keyword ``out_3``, ``tout_3``: student and teacher outputs of a third frame (the neighbour
  mirrored about t, ``etc.data.clips.third_frame``), given when ``criterion.needs_third``;
  MF then runs over the three frames in time order, PA's reference form adds it too.

It returns ``{term: weight × value for each term of weight > 0, "total": their sum}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from etc.core.errors import EtcError
from etc.losses.ce import ce_loss, check_ce_weights
from etc.losses.mf import MultiFrameKD
from etc.losses.pa import pairwise_affinity_kd, reference_pairwise_affinity_kd
from etc.losses.pf import pairwise_frame_kd
from etc.losses.pi import pixelwise_kd, reference_pixelwise_kd
from etc.losses.registry import ETC_FORM, REFERENCE_FORM, TERMS, TermInfo, ablation_needs, form_key
from etc.losses.tl import (
    reference_temporal_loss,
    reference_temporal_weight,
    temporal_loss,
    temporal_weight,
)


@dataclass
class LossInputs:
    """What one training step hands to every term (see the module docstring)."""

    out_t: dict
    out_n: dict | None
    tout_t: dict | None
    tout_n: dict | None
    batch: dict
    out_3: dict | None = None
    tout_3: dict | None = None

    def frames(self, which: str) -> list[tuple[dict, torch.Tensor | None]]:
        """[(outputs, offset from t or None)] of the frames run: t, then n, then the third."""
        if which == "student":
            outs = (self.out_t, self.out_n, self.out_3)
        else:
            outs = (self.tout_t, self.tout_n, self.tout_3)
        offsets = (None, self.batch.get("k"), self.batch.get("k_third"))
        return [(o, k) for o, k in zip(outs, offsets, strict=True) if o is not None]


Compute = Callable[[LossInputs, dict, "nn.Module | None"], torch.Tensor]


@dataclass(frozen=True)
class LossTerm:
    """A registered term: ``forms[form](inputs, settings, module)`` → scalar tensor, one entry
    per form of the registry (``losses.<term>_form`` picks one).

    ``module`` builds the term's own state (MF's ConvLSTM) from the settings, or is None.
    """

    name: str
    info: TermInfo
    forms: dict[str, Compute]
    module: Callable[[dict], nn.Module] | None = None

    def form(self, settings: dict) -> str:
        """The form ``settings`` names (``losses.<term>_form``; the first form when none)."""
        form = settings.get(form_key(self.name), next(iter(self.forms)))
        if form not in self.forms:
            raise EtcError(f"losses.{form_key(self.name)} '{form}' is unknown; use one of {', '.join(self.forms)}")
        return form

    def __getattr__(self, name):  # description and needs_* come from the registry
        if name == "info":
            raise AttributeError(name)
        return getattr(self.info, name)


def _ce(inputs: LossInputs, settings: dict, _module) -> torch.Tensor:
    weights = settings.get("ce_weights")
    if weights is not None:
        check_ce_weights(weights, inputs.out_t["logits"].shape[1])
        weights = torch.as_tensor(weights, dtype=torch.float32)
    return ce_loss(inputs.out_t, inputs.batch["label_t"], settings["aux_weight"], weights)


def _tl(inputs: LossInputs, settings: dict, _module) -> torch.Tensor:
    batch = inputs.batch
    v = temporal_weight(batch["raw_t"], batch["raw_n"], batch["flow"], settings["tl_mask"], batch.get("occ"))
    return temporal_loss(inputs.out_t["logits"], inputs.out_n["logits"], batch["flow"], v, settings["tl_on"])


def _tl_reference(inputs: LossInputs, settings: dict, _module) -> torch.Tensor:
    batch = inputs.batch
    v = reference_temporal_weight(batch["raw_t"], batch["raw_n"], batch["flow"], settings["tl_mask"], batch.get("occ"))
    return reference_temporal_loss(inputs.out_t["logits"], inputs.out_n["logits"], batch["flow"], v, settings["tl_on"])


def _pi(inputs: LossInputs, settings: dict, _module) -> torch.Tensor:
    """On both frames of the pair when the neighbour was run (docs/design.md §1), else on frame t."""
    tau = float(settings["temperature"])
    pi = pixelwise_kd(inputs.out_t["logits"], inputs.tout_t["logits"], tau)
    if inputs.out_n is not None and inputs.tout_n is not None:
        pi = 0.5 * (pi + pixelwise_kd(inputs.out_n["logits"], inputs.tout_n["logits"], tau))
    return pi


def _pi_reference(inputs: LossInputs, settings: dict, _module) -> torch.Tensor:
    """Summed over t and t+k when the neighbour was run (CriterionKD), else frame t alone."""
    tau = float(settings["temperature"])
    pi = reference_pixelwise_kd(inputs.out_t["logits"], inputs.tout_t["logits"], tau)
    if inputs.out_n is not None and inputs.tout_n is not None:
        pi = pi + reference_pixelwise_kd(inputs.out_n["logits"], inputs.tout_n["logits"], tau)
    return pi


def _pf_form(form: str) -> Compute:
    def pf(inputs: LossInputs, settings: dict, _module) -> torch.Tensor:
        return pairwise_frame_kd(inputs.out_t["feat"], inputs.out_n["feat"], inputs.tout_t["feat"],
                                 inputs.tout_n["feat"], int(settings["pool_nodes"]), form=form)
    return pf


def _pa(inputs: LossInputs, settings: dict, _module) -> torch.Tensor:
    return pairwise_affinity_kd(inputs.out_t["feat"], inputs.tout_t["feat"], int(settings["pool_nodes"]))


def _pa_reference(inputs: LossInputs, settings: dict, _module) -> torch.Tensor:
    """Over the frames the step ran with the teacher (t first)."""
    slots = [(inputs.out_t, inputs.tout_t), (inputs.out_n, inputs.tout_n), (inputs.out_3, inputs.tout_3)]
    run = [(s["feat"], t["feat"]) for s, t in slots if s is not None and t is not None]
    return reference_pairwise_affinity_kd([s for s, _ in run], [t for _, t in run], int(settings["pool_nodes"]))


def _time_ordered(inputs: LossInputs, key: str, which: str) -> list[torch.Tensor]:
    """The frames run, earliest first per sample (from the offsets ``k``, ``k_third``)."""
    frames = inputs.frames(which)
    if len(frames) == 2:  # the pair: one comparison, as before a third frame existed
        (a, _), (b, k) = frames
        if k is None:
            return [a[key], b[key]]
        forward = (k > 0).view(-1, 1, 1, 1).to(a[key].device)
        return [torch.where(forward, a[key], b[key]), torch.where(forward, b[key], a[key])]
    if any(k is None for _, k in frames[1:]):
        raise ValueError("ordering three frames in time needs the batch's offsets 'k' and 'k_third'")
    x = torch.stack([o[key] for o, _ in frames])  # F×B×C×h×w
    offsets = torch.stack([torch.zeros_like(frames[1][1]) if k is None else k for _, k in frames])
    order = offsets.to(x.device).argsort(dim=0, stable=True)  # F×B
    picked = x.gather(0, order.view(*order.shape, 1, 1, 1).expand_as(x))
    return list(picked.unbind(0))


def _mf(inputs: LossInputs, _settings: dict, module: nn.Module | None) -> torch.Tensor:
    return module(_time_ordered(inputs, "feat", "student"), _time_ordered(inputs, "feat", "teacher"))


def _mf_module(settings: dict) -> nn.Module:
    return MultiFrameKD(int(settings["pool_nodes"]), hidden=int(settings["mf_hidden"]),
                        trained=settings["mf_convlstm"] == "trained")


COMPUTE: dict[str, tuple] = {  # name -> ({form: computation}, builder of its own module or None)
    "ce": ({ETC_FORM: _ce}, None),
    "tl": ({ETC_FORM: _tl, REFERENCE_FORM: _tl_reference}, None),
    "pi": ({ETC_FORM: _pi, REFERENCE_FORM: _pi_reference}, None),
    "pf": ({ETC_FORM: _pf_form(ETC_FORM), REFERENCE_FORM: _pf_form(REFERENCE_FORM)}, None),
    "mf": ({ETC_FORM: _mf}, _mf_module),
    "pa": ({ETC_FORM: _pa, REFERENCE_FORM: _pa_reference}, None),
}
if set(COMPUTE) != set(TERMS) or any(set(COMPUTE[t][0]) != set(TERMS[t].forms) for t in TERMS):
    raise ImportError(f"etc.losses: registry forms {({t: list(i.forms) for t, i in TERMS.items()})} vs "
                      f"computations {({t: list(c[0]) for t, c in COMPUTE.items()})}")
LOSS_TERMS: dict[str, LossTerm] = {name: LossTerm(name, TERMS[name], *COMPUTE[name]) for name in TERMS}



class Criterion(nn.Module):
    """The weighted sum of an ablation's terms; an ``nn.Module`` so that MF's ConvLSTM moves
    with ``.to(device)`` and travels in ``state_dict()`` (resumable training)."""

    def __init__(self, weights: dict[str, float], losses_cfg: dict | None, aux_weight: float):
        super().__init__()
        unknown = sorted(set(weights) - set(LOSS_TERMS))
        if unknown:
            raise EtcError(
                f"unknown loss term(s) {unknown} in the ablation; known: {', '.join(LOSS_TERMS)}"
            )
        self.weights = {k: float(v) for k, v in weights.items() if float(v) > 0}
        from etc.core.config import schema_defaults

        self.settings = {**schema_defaults("losses"), **(losses_cfg or {}), "aux_weight": float(aux_weight)}
        self.forms = {k: LOSS_TERMS[k].form(self.settings) for k in self.weights}
        self.term_modules = nn.ModuleDict(
            {
                k: LOSS_TERMS[k].module(self.settings)
                for k in self.weights
                if LOSS_TERMS[k].module is not None
            }
        )

    def _any(self, flag: str) -> bool:
        return ablation_needs(self.weights, flag)

    @property
    def needs_teacher(self) -> bool:
        return self._any("needs_teacher")

    @property
    def needs_neighbour(self) -> bool:
        return self._any("needs_neighbour")

    @property
    def needs_flow(self) -> bool:
        return self._any("needs_flow")

    @property
    def needs_third(self) -> bool:
        """A third frame per sample: only MF over three frames (``losses.mf_frames: 3``) asks."""
        return self._any("needs_third") and int(self.settings["mf_frames"]) == 3

    def forward(
        self, out_t: dict, out_n: dict | None, tout_t: dict | None, tout_n: dict | None, batch: dict,
        *, out_3: dict | None = None, tout_3: dict | None = None,
    ) -> dict[str, torch.Tensor]:
        for name in self.weights:
            term = LOSS_TERMS[name]
            missing = [
                what
                for what, needed, given in (
                    ("student neighbour outputs (out_n)", term.needs_neighbour, out_n),
                    ("teacher outputs (tout_t)", term.needs_teacher, tout_t),
                    (
                        "teacher neighbour outputs (tout_n)",
                        term.needs_teacher and term.needs_neighbour,
                        tout_n,
                    ),
                    ("third-frame outputs (out_3, tout_3)", term.needs_third and self.needs_third,
                     out_3 if tout_3 is not None else None),
                )
                if needed and given is None
            ]
            if missing:
                raise ValueError(f"loss term '{name}' needs {' and '.join(missing)}")
        x = LossInputs(out_t, out_n, tout_t, tout_n, batch, out_3, tout_3)
        out = {}
        for name, weight in self.weights.items():
            module = self.term_modules[name] if name in self.term_modules else None
            out[name] = weight * LOSS_TERMS[name].forms[self.forms[name]](x, self.settings, module)
        out["total"] = sum(out.values()) if out else torch.zeros((), device=out_t["logits"].device)
        return out


def build_criterion(ablation: dict[str, float], losses_cfg: dict | None, aux_weight: float) -> Criterion:
    """The loss of one ablation: ``ablation`` = {term: weight}, ``losses_cfg`` = the config's
    resolved ``losses`` section (None: the schema's defaults), ``aux_weight`` = the model
    entry's auxiliary-head weight."""
    return Criterion(ablation, losses_cfg, aux_weight)
