"""Loss terms of ETC (names from the paper): CE, TL, PI, PF, MF, and PA as an extra.

The names and needs are in ``etc.losses.registry`` (no torch); the computations, imported on
first use, in ``etc.losses.criterion``.
"""

from etc.losses.registry import TERMS, ablation_needs

__all__ = ["LOSS_TERMS", "TERMS", "Criterion", "LossInputs", "LossTerm", "ablation_needs", "build_criterion"]


def __getattr__(name):  # torch only when a computation is asked for
    if name in {"LOSS_TERMS", "Criterion", "LossInputs", "LossTerm", "build_criterion"}:
        from etc.losses import criterion

        return getattr(criterion, name)
    raise AttributeError(name)
