"""Loss terms of ETC (names from the paper): CE, TL, PI, PF, MF, and PA as an extra."""

from etc.losses.criterion import LOSS_TERMS, TERMS, Criterion, LossInputs, LossTerm, build_criterion

__all__ = ["LOSS_TERMS", "TERMS", "Criterion", "LossInputs", "LossTerm", "build_criterion"]
