"""The train ids, names and colours of a named dataset, and stored label maps mapped to them."""

from __future__ import annotations

from etc.core.errors import EtcError
from etc.data.label_table import LabelTable


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
    if raw.dtype == np.uint8:  # OpenCV's histogram and LUT: much faster than numpy's here
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
