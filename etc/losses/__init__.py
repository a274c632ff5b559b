"""Loss terms of ETC (names from the paper): CE, TL, PI, PF, MF, and PA as an extra."""

from etc.losses.criterion import TERMS, Criterion, build_criterion

__all__ = ["TERMS", "Criterion", "build_criterion"]
