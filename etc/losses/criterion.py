"""The registry of loss terms, and an ablation (term → weight) turned into one callable.

Adding an ablation is a config entry. Adding a loss term is a module in ``etc/losses/``, its
name and needs in ``etc.losses.registry.TERMS``, its computation in ``COMPUTE`` below, and its
name in the config schema's ablation properties (a test checks the three agree).

Batch contract of :class:`Criterion` — ``criterion(out_t, out_n, tout_t, tout_n, batch)``:

- ``out_t``, ``out_n``: the student's output dicts (``logits``, ``feat``, ``aux`` in training;
  see ``etc.models.pspnet``) for the labelled frame t and its neighbour n = t+k. ``out_n`` may
  be None when no term of the ablation needs the neighbour (``criterion.needs_neighbour``).
- ``tout_t``, ``tout_n``: the teacher's output dicts, or None when no term needs the teacher
  (``criterion.needs_teacher``); they are detached here whatever the caller did.
- ``batch``: ``label_t`` (B×H×W long, 255 = ignore; CE only looks at frame t), ``raw_t``,
  ``raw_n`` (B×3×H×W images in [0, 1], for the motion weight), ``flow`` (F_{t→n}, B×2×H×W
  at the logits' resolution), ``occ`` (B×H×W bool, True = occluded; needed by
  ``tl_mask: occlusion`` only), ``k`` (B, frame offset n − t; MF orders the two frames in time
  with it, and assumes k > 0 when absent).

It returns ``{term: weight × value for each term of weight > 0, "total": their sum}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from etc.errors import EtcError
from etc.losses.ce import ce_loss
from etc.losses.mf import MultiFrameKD
from etc.losses.pa import pairwise_affinity_kd
from etc.losses.pf import pairwise_frame_kd
from etc.losses.pi import pixelwise_kd
from etc.losses.registry import TERMS, TermInfo, ablation_needs
from etc.losses.tl import temporal_loss, temporal_weight


@dataclass
class LossInputs:
    """What one training step hands to every term (see the module docstring)."""

    out_t: dict
    out_n: dict | None
    tout_t: dict | None
    tout_n: dict | None
    batch: dict


@dataclass(frozen=True)
class LossTerm:
    """A registered term: ``compute(inputs, settings, module)`` → scalar tensor.

    ``module`` builds the term's own state (MF's ConvLSTM) from the settings, or is None.
    """

    info: TermInfo
    compute: Callable[[LossInputs, dict, nn.Module | None], torch.Tensor]
    module: Callable[[dict], nn.Module] | None = None

    def __getattr__(self, name):  # description and needs_* come from the registry
        if name == "info":
            raise AttributeError(name)
        return getattr(self.info, name)


def _ce(inputs: LossInputs, settings: dict, _module) -> torch.Tensor:
    return ce_loss(inputs.out_t, inputs.batch["label_t"], settings["aux_weight"])


def _tl(inputs: LossInputs, settings: dict, _module) -> torch.Tensor:
    batch = inputs.batch
    v = temporal_weight(batch["raw_t"], batch["raw_n"], batch["flow"], settings["tl_mask"], batch.get("occ"))
    return temporal_loss(inputs.out_t["logits"], inputs.out_n["logits"], batch["flow"], v, settings["tl_on"])


def _pi(inputs: LossInputs, settings: dict, _module) -> torch.Tensor:
    """On both frames of the pair when the neighbour was run (docs/design.md §1), else on frame t."""
    tau = float(settings["temperature"])
    pi = pixelwise_kd(inputs.out_t["logits"], inputs.tout_t["logits"], tau)
    if inputs.out_n is not None and inputs.tout_n is not None:
        pi = 0.5 * (pi + pixelwise_kd(inputs.out_n["logits"], inputs.tout_n["logits"], tau))
    return pi


def _pf(inputs: LossInputs, settings: dict, _module) -> torch.Tensor:
    return pairwise_frame_kd(
        inputs.out_t["feat"], inputs.out_n["feat"], inputs.tout_t["feat"], inputs.tout_n["feat"], int(settings["pool_nodes"])
    )


def _pa(inputs: LossInputs, settings: dict, _module) -> torch.Tensor:
    return pairwise_affinity_kd(inputs.out_t["feat"], inputs.tout_t["feat"], int(settings["pool_nodes"]))


def _time_ordered(inputs: LossInputs, key: str, which: str) -> list[torch.Tensor]:
    """[earlier frame, later frame] per sample, from the sign of ``k``."""
    a, b = (inputs.out_t, inputs.out_n) if which == "student" else (inputs.tout_t, inputs.tout_n)
    k = inputs.batch.get("k")
    if k is None:
        return [a[key], b[key]]
    forward = (k > 0).view(-1, 1, 1, 1).to(a[key].device)
    return [torch.where(forward, a[key], b[key]), torch.where(forward, b[key], a[key])]


def _mf(inputs: LossInputs, _settings: dict, module: nn.Module | None) -> torch.Tensor:
    return module(_time_ordered(inputs, "feat", "student"), _time_ordered(inputs, "feat", "teacher"))


COMPUTE: dict[str, tuple] = {  # name -> (computation, builder of its own module or None)
    "ce": (_ce, None),
    "tl": (_tl, None),
    "pi": (_pi, None),
    "pf": (_pf, None),
    "mf": (_mf, lambda s: MultiFrameKD(int(s["pool_nodes"]), trained=s["mf_convlstm"] == "trained")),
    "pa": (_pa, None),
}
if set(COMPUTE) != set(TERMS):  # a term registered without a computation, or the reverse
    raise ImportError(f"etc.losses: registry {sorted(TERMS)} vs computations {sorted(COMPUTE)}")
LOSS_TERMS: dict[str, LossTerm] = {name: LossTerm(TERMS[name], *COMPUTE[name]) for name in TERMS}



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
        from etc.config import schema_defaults

        self.settings = {**schema_defaults("losses"), **(losses_cfg or {}), "aux_weight": float(aux_weight)}
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

    def forward(
        self, out_t: dict, out_n: dict | None, tout_t: dict | None, tout_n: dict | None, batch: dict
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
                )
                if needed and given is None
            ]
            if missing:
                raise ValueError(f"loss term '{name}' needs {' and '.join(missing)}")
        x = LossInputs(out_t, out_n, tout_t, tout_n, batch)
        out = {}
        for name, weight in self.weights.items():
            module = self.term_modules[name] if name in self.term_modules else None
            out[name] = weight * LOSS_TERMS[name].compute(x, self.settings, module)
        out["total"] = sum(out.values()) if out else torch.zeros((), device=out_t["logits"].device)
        return out


def build_criterion(ablation: dict[str, float], losses_cfg: dict | None, aux_weight: float) -> Criterion:
    """The loss of one ablation: ``ablation`` = {term: weight}, ``losses_cfg`` = the config's
    resolved ``losses`` section (None: the schema's defaults), ``aux_weight`` = the model
    entry's auxiliary-head weight."""
    return Criterion(ablation, losses_cfg, aux_weight)
