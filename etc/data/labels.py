"""Class definitions: Cityscapes label ids → 19 train ids (from cityscapesscripts) and CamVid's
11 classes, mapped by name; palettes for overlays. Every label map the models see holds train
ids with 255 = ignore."""

from __future__ import annotations

import functools

import numpy as np

IGNORE = 255

# CamVid (SegNet release): annotation value = index in this list, 11 = void.  Mapped by name so
# a source with another order (e.g. the ETC reference code's) can be remapped explicitly.
CAMVID_CLASSES = (
    "sky", "building", "pole", "road", "sidewalk", "tree",
    "sign", "fence", "car", "pedestrian", "bicyclist",
)
CAMVID_PALETTE = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (0, 0, 192), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)


@functools.cache
def cityscapes_table():
    """(label-id → train-id LUT of 256 entries, 19 class names, 19 colours)."""
    from cityscapesscripts.helpers.labels import labels

    lut = np.full(256, IGNORE, dtype=np.uint8)
    names: dict[int, str] = {}
    colors: dict[int, tuple] = {}
    for lab in labels:
        if 0 <= lab.id < 256 and 0 <= lab.trainId < IGNORE:
            lut[lab.id] = lab.trainId
            names[lab.trainId] = lab.name
            colors[lab.trainId] = tuple(lab.color)
    n = len(names)
    return lut, tuple(names[i] for i in range(n)), tuple(colors[i] for i in range(n))


@functools.cache
def cityscapes_label_ids() -> frozenset[int]:
    """Every label id a gtFine ``*_labelIds.png`` may contain (0..33)."""
    from cityscapesscripts.helpers.labels import labels

    return frozenset(lab.id for lab in labels if lab.id >= 0)


def camvid_lut(source_order: tuple[str, ...] = CAMVID_CLASSES) -> np.ndarray:
    """LUT from annotation values in ``source_order`` to our train ids (by class name)."""
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for value, name in enumerate(source_order):
        lut[value] = CAMVID_CLASSES.index(name)
    return lut


def class_names(dataset: str) -> tuple[str, ...]:
    return CAMVID_CLASSES if dataset == "camvid" else cityscapes_table()[1]


def palette(dataset: str) -> np.ndarray:
    """K×3 uint8 colours of the train ids (index 255 is rendered black by callers)."""
    colors = CAMVID_PALETTE if dataset == "camvid" else cityscapes_table()[2]
    return np.asarray(colors, dtype=np.uint8)


def to_train_ids(raw: np.ndarray, dataset: str) -> np.ndarray:
    """Map a stored label map (Cityscapes label ids, or CamVid SegNet values) to train ids."""
    lut = camvid_lut() if dataset == "camvid" else cityscapes_table()[0]
    return lut[raw]


def num_classes(dataset: str) -> int:
    return len(class_names(dataset))
