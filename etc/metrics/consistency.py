"""Temporal consistency of per-frame predictions.

TC (Lai et al. 2018, as in the ETC paper): for every consecutive pair (t, t+1) of every clip,
warp ``P_{t+1}`` into frame t with ``F_{t→t+1}`` (nearest sampling: labels are never blended)
and pool per-class intersection and union with ``P_t`` over all pairs of all clips; TC is the
mean over classes of I/U. Two documented choices differ from the reference code: classes with
an empty pooled union are left out (not counted as 0), and pixels whose sample falls outside
the image are left out (not clamped to the border). TC-occ also leaves out pixels that the
forward–backward check marks occluded.

mVC_n (VSPW): over windows of n consecutive frames, the share of pixels whose ground truth is
constant over the window whose prediction is constant too; the accuracy-aware variant also
requires the prediction to equal the ground truth (a constant wrong answer scores 100 in mVC).
"""

from __future__ import annotations

import numpy as np
import torch

from etc.data.labels import IGNORE
from etc.flow.warp import warp_labels


class PooledTC:
    """Accumulates per-class intersection/union of (P_t, warp(P_{t+1})) over many pairs."""

    def __init__(self, num_classes: int):
        self.k = num_classes
        self.inter = np.zeros(num_classes, np.int64)
        self.union = np.zeros(num_classes, np.int64)
        self.changed = 0  # pixels whose label differs from the warped next one
        self.counted = 0

    def update(self, p_t: np.ndarray, p_next: np.ndarray, flow: torch.Tensor, exclude: np.ndarray | None = None) -> None:
        """``flow`` = F_{t→t+1} (2×H×W); ``exclude`` (H×W bool) leaves pixels out (occlusion)."""
        warped = warp_labels(torch.from_numpy(p_next.astype(np.int64))[None], flow[None].float())[0].numpy()
        valid = warped != IGNORE
        if exclude is not None:
            valid &= ~exclude
        a, b = p_t[valid].astype(np.int64), warped[valid]
        self.changed += int((a != b).sum())
        self.counted += int(a.size)
        self.inter += np.bincount(a[a == b], minlength=self.k)[: self.k]
        ca, cb = np.bincount(a, minlength=self.k)[: self.k], np.bincount(b, minlength=self.k)[: self.k]
        self.union += ca + cb - np.bincount(a[a == b], minlength=self.k)[: self.k]

    def per_class(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.union > 0, self.inter / np.maximum(self.union, 1), np.nan)

    def changed_pct(self) -> float:
        """Share (%) of the compared pixels whose label changes between the frames."""
        return 100.0 * self.changed / self.counted if self.counted else float("nan")

    def value(self) -> float:
        pc = self.per_class()
        return float(np.nanmean(pc) * 100.0) if np.any(~np.isnan(pc)) else float("nan")


def video_consistency(pred: np.ndarray, gt: np.ndarray, n: int) -> tuple[list[float], list[float]]:
    """Per-window (mVC, accuracy-aware mVC) fractions for a T×H×W clip; empty if T < n."""
    vc, vc_acc = [], []
    for s in range(0, pred.shape[0] - n + 1):
        g, p = gt[s : s + n], pred[s : s + n]
        g_const = np.all(g == g[0], axis=0) & (g[0] != IGNORE)
        denom = int(g_const.sum())
        if denom == 0:
            continue
        p_const = np.all(p == p[0], axis=0)
        vc.append(float((g_const & p_const).sum()) / denom)
        vc_acc.append(float((g_const & p_const & (p[0] == g[0])).sum()) / denom)
    return vc, vc_acc
