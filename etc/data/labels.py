"""Label conventions. Every label map the models and metrics see holds train ids 0..K-1 with
``IGNORE`` for pixels without a class; each dataset's :class:`LabelTable` (in
:mod:`etc.data.sets`) says how its stored values map to them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from etc.errors import EtcError

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


def label_table(dataset: str) -> LabelTable:
    from etc.data.sets import get_spec

    return get_spec(dataset).labels()


def class_names(dataset: str) -> tuple[str, ...]:
    return label_table(dataset).classes


def num_classes(dataset: str) -> int:
    return len(class_names(dataset))


def palette(dataset: str):
    """K×3 uint8 colours of the train ids (index 255 is rendered black by callers)."""
    import numpy as np

    return np.asarray(label_table(dataset).palette, dtype=np.uint8)


def to_train_ids(raw, dataset: str, source=None):
    """Map a stored label map (H×W, 8 or 16 bit) to uint8 train ids.

    A value the dataset does not define is an error naming ``source`` (the file) and the
    values — never silently ignored: it means a wrong file, a wrong dataset name or a broken
    conversion, and training on it would teach the model nothing about those pixels.
    """
    import cv2
    import numpy as np

    table = label_table(dataset)
    raw = np.ascontiguousarray(raw)
    if raw.dtype == np.uint8:  # OpenCV's histogram and LUT: ~10× faster than numpy's here
        present = np.flatnonzero(cv2.calcHist([raw], [0], None, [256], [0, 256]))
    else:
        present = np.unique(raw)
    bad = sorted(set(present.tolist()) - table.values)
    if bad:
        shown = ", ".join(map(str, bad[:12])) + (", ..." if len(bad) > 12 else "")
        where = f" in {source}" if source is not None else ""
        raise EtcError(f"unknown label id(s) [{shown}]{where}; {dataset} label maps hold "
                       f"{table.describe_values()} (wrong file, or wrong dataset name?)")
    return cv2.LUT(raw.astype(np.uint8, copy=False), table.lut)
