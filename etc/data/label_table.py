"""Label conventions, below every dataset spec. Every label map the models and metrics see holds train ids 0..K-1 with
``IGNORE`` for pixels without a class; each dataset's :class:`LabelTable` (in
:mod:`etc.data.sets`) says how its stored values map to them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

IGNORE = 255  # the one ignore value of the package: losses, metrics, warps, augmentation


@dataclass(frozen=True, eq=False)
class LabelTable:
    """How a dataset's stored label values become train ids."""

    classes: tuple[str, ...]  # train id -> class name
    palette: tuple[tuple[int, int, int], ...]  # train id -> RGB colour (overlays)
    lut: np.ndarray  # 256 × uint8: stored value -> train id, IGNORE where no class (make_lut)
    values: frozenset[int]  # every value a stored label map may hold; any other is an error

    def describe_values(self) -> str:
        """The allowed values as short ranges, e.g. ``0..33`` or ``0..124, 255``."""
        runs, vals = [], sorted(self.values)
        for v in vals:
            if runs and v == runs[-1][1] + 1:
                runs[-1][1] = v
            else:
                runs.append([v, v])
        return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in runs)


def make_lut(mapping: dict[int, int]):
    """A 256-entry uint8 LUT: ``mapping`` (stored value -> train id), IGNORE elsewhere."""
    import numpy as np

    lut = np.full(256, IGNORE, dtype=np.uint8)
    for value, train_id in mapping.items():
        lut[value] = train_id
    return lut
