"""mIoU from a confusion matrix accumulated over every labelled frame."""

from __future__ import annotations

import numpy as np

from etc.data.label_table import IGNORE
from etc.evaluate.metrics.base import ClipData, Column, Metric, percent_or_none


def confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """K×K counts, rows = ground truth, columns = prediction; IGNORE pixels skipped."""
    keep = gt != IGNORE
    g = gt[keep].astype(np.int64)
    p = pred[keep].astype(np.int64)
    if g.size and (g.max() >= num_classes or p.max() >= num_classes):
        raise ValueError(f"label ids must be < {num_classes} (or {IGNORE} in the ground truth)")
    return np.bincount(g * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU per class in [0, 1]; NaN where the class is in neither ground truth nor prediction."""
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def miou(cm: np.ndarray) -> float:
    """Mean IoU (in %) over classes present in the ground truth or the prediction."""
    iou = iou_per_class(cm)
    return float(np.nanmean(iou) * 100.0) if np.any(~np.isnan(iou)) else float("nan")


class MeanIoU(Metric):
    """mIoU and per-class IoU over every labelled frame of the split (one pooled confusion)."""

    columns = (Column("miou", section="main", higher_is_better=True, delta=True),)
    required = {"miou": "no labelled pixel outside the ignore label"}

    def __init__(self, class_names: tuple[str, ...]):
        self.names = class_names
        self.cm = np.zeros((len(class_names), len(class_names)), np.int64)

    def update(self, clip: ClipData) -> None:
        for t, gt in clip.labels.items():
            self.cm += confusion(clip.pred[t], gt, len(self.names))

    def merge(self, other: MeanIoU) -> None:
        self.cm += other.cm

    def result(self) -> dict:
        value = miou(self.cm)
        return {
            "miou": None if np.isnan(value) else value,
            "iou": {n: percent_or_none(v) for n, v in zip(self.names, iou_per_class(self.cm), strict=True)},
            "confusion": self.cm.tolist(),
        }
