"""Temporal consistency of per-frame predictions.

TC (Lai et al. 2018, as in the ETC paper): for every consecutive pair (t, t+1) of every clip,
warp ``P_{t+1}`` into frame t with ``F_{t→t+1}`` (nearest sampling: labels are never blended)
and pool per-class intersection and union with ``P_t`` over all pairs of all clips; TC is the
mean over classes of I/U. Two documented choices differ from the reference code: classes with
an empty pooled union are left out (not counted as 0), and pixels whose sample falls outside
the image are left out (not clamped to the border). TC-occ also leaves out pixels that the
forward–backward check marks occluded.

mVC_n (VSPW): over windows of n consecutive frames, the share of pixels whose ground truth is
constant over the window whose prediction is constant too. ``mvc<n>`` is computed exactly as
VSPW's ``VC_perclip.py`` (the published numbers); ``mvc<n>_etc`` scores every window and leaves
void pixels out; the accuracy-aware ``mvc<n>_acc`` (etc's windows) also requires the prediction
to equal the ground truth (a constant wrong answer scores 100 in mVC).
"""

from __future__ import annotations

import numpy as np
import torch

from etc.data.label_table import IGNORE
from etc.evaluate.metrics.base import ClipData, Column, Metric, percent_or_none
from etc.flow.warp import warp_labels

# Averaging over classes: "present" (the paper form used here: classes with a non-empty pooled
# union) or "all" (the reference evaluation: every class, absent ones counting 0).
AVERAGING = ("present", "all")


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
        self.update_warped(p_t, warped, exclude)

    def update_warped(self, p_t: np.ndarray, warped: np.ndarray, exclude: np.ndarray | None = None) -> None:
        """As :meth:`update`, with P_{t+1} already warped into frame t (255 = left the image)."""
        valid = warped != IGNORE
        if exclude is not None:
            valid &= ~exclude
        a, b = p_t[valid].astype(np.int64), warped[valid]
        self.changed += int((a != b).sum())
        self.counted += int(a.size)
        self.inter += np.bincount(a[a == b], minlength=self.k)[: self.k]
        ca, cb = np.bincount(a, minlength=self.k)[: self.k], np.bincount(b, minlength=self.k)[: self.k]
        self.union += ca + cb - np.bincount(a[a == b], minlength=self.k)[: self.k]

    def update_confusion(self, cm: np.ndarray) -> None:
        """As :meth:`update_warped`, from the pair's confusion (rows P_t, an extra last row for
        its IGNORE pixels; columns warped P_{t+1}, compared pixels only: etc.evaluate.metrics.pair_counts)."""
        diag = np.diag(cm)
        self.inter += diag
        self.union += cm[: self.k].sum(1) + cm.sum(0) - diag
        total = int(cm.sum())
        self.counted += total
        self.changed += total - int(diag.sum())

    def merge(self, other: PooledTC) -> None:
        self.inter += other.inter
        self.union += other.union
        self.changed += other.changed
        self.counted += other.counted

    def per_class(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.union > 0, self.inter / np.maximum(self.union, 1), np.nan)

    def changed_pct(self) -> float:
        """Share (%) of the compared pixels whose label changes between the frames."""
        return 100.0 * self.changed / self.counted if self.counted else float("nan")

    def value(self, averaging: str = "present") -> float:
        """TC in %; NaN when no pixel was compared."""
        if averaging not in AVERAGING:
            raise ValueError(f"TC averaging must be one of {AVERAGING}, not {averaging!r}")
        pc = self.per_class()
        if not np.any(~np.isnan(pc)):
            return float("nan")
        if averaging == "all":
            return float(np.nan_to_num(pc, nan=0.0).mean() * 100.0)
        return float(np.nanmean(pc) * 100.0)


def video_consistency(pred: np.ndarray, gt: np.ndarray, n: int) -> tuple[list[float], list[float]]:
    """etc's form: per-window (mVC, accuracy-aware mVC) fractions of a T×H×W clip over all
    T − n + 1 windows (a clip of exactly n frames is scored), void ground truth left out;
    empty if T < n."""
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


def vspw_video_consistency(pred: np.ndarray, gt_stored: np.ndarray, n: int) -> list[float]:
    """Per-window mVC fractions exactly as VSPW's ``VC_perclip.py``: windows start at
    ``range(T - n)`` (a clip of T ≤ n frames has none, and the last possible window is never
    scored), the ground truth is compared as the mask files store it (void and "others" are
    values like any other, so a constant void region counts), and a window without a
    ground-truth-constant pixel is dropped (the script's 0/0, skipped by ``np.nanmean``)."""
    out = []
    for s in range(pred.shape[0] - n):
        g, p = gt_stored[s : s + n], pred[s : s + n]
        g_const = np.all(g == g[0], axis=0)
        denom = int(g_const.sum())
        if denom:
            out.append(float((g_const & np.all(p == p[0], axis=0)).sum()) / denom)
    return out


def _compared(counts: np.ndarray, exclude_occluded: bool) -> np.ndarray:
    """The confusion of a pair's compared pixels from ClipData.pair_counts' [visible, occluded]."""
    return counts[0] if exclude_occluded else counts.sum(0)


class TemporalConsistency(Metric):
    """Pooled TC over every consecutive pair of every clip (see the module docstring).

    ``exclude_occluded``: TC-occ. ``source="ground_truth"``: the same measure on the dense
    ground truth (what a perfect model scores; dense clips only). ``averaging``: see
    ``AVERAGING``. ``per_class_key``: also report the per-class values under that key.
    """

    def __init__(self, key: str, num_classes: int, *, class_names: tuple[str, ...] | None = None,
                 exclude_occluded: bool = False, source: str = "prediction", averaging: str = "present",
                 per_class_key: str | None = None, columns: tuple[Column, ...] = (), required: bool = False):
        if source not in ("prediction", "ground_truth"):
            raise ValueError(f"TC source must be 'prediction' or 'ground_truth', not {source!r}")
        if averaging not in AVERAGING:
            raise ValueError(f"TC averaging must be one of {AVERAGING}, not {averaging!r}")
        self.key, self.names = key, class_names
        self.exclude_occluded, self.source, self.averaging = exclude_occluded, source, averaging
        self.per_class_key = per_class_key
        self.columns = columns
        self.required = {key: "no pixel pair was compared (no consecutive frames, an empty flow store, "
                              "or flow that moves every pixel out of the image)"} if required else {}
        self.k = num_classes
        self.acc = PooledTC(num_classes)

    def update(self, clip: ClipData) -> None:
        if self.source == "ground_truth" and clip.dense is None:
            return
        for t in clip.pairs:
            self.acc.update_confusion(_compared(clip.pair_counts(t, self.k, self.source), self.exclude_occluded))

    def merge(self, other: TemporalConsistency) -> None:
        self.acc.merge(other.acc)

    def result(self) -> dict:
        value = self.acc.value(self.averaging) if self.acc.counted else float("nan")
        out = {self.key: None if np.isnan(value) else value}
        if self.per_class_key is not None:
            out[self.per_class_key] = {n: percent_or_none(v) for n, v in zip(self.names, self.acc.per_class(), strict=True)}
        return out


class PerClipTC(Metric):
    """TC of each clip alone (clip name → %): shows whether a gain is broad or carried by a few clips."""

    def __init__(self, num_classes: int, key: str = "tc_per_clip"):
        self.k, self.key = num_classes, key
        self.values: dict[str, float | None] = {}

    def update(self, clip: ClipData) -> None:
        acc = PooledTC(self.k)
        for t in clip.pairs:
            acc.update_confusion(_compared(clip.pair_counts(t, self.k), exclude_occluded=False))
        value = acc.value()
        self.values[clip.name] = None if np.isnan(value) else value

    def merge(self, other: PerClipTC) -> None:
        self.values.update(other.values)

    def result(self) -> dict:
        return {self.key: dict(self.values)}


class FlickerShare(Metric):
    """Share (%) of compared pixels whose predicted label changes along the flow (occluded
    pixels left out by default)."""

    columns = (Column("flicker_pct", section="detail", higher_is_better=False),)

    def __init__(self, num_classes: int, exclude_occluded: bool = True, key: str = "flicker_pct"):
        self.exclude_occluded, self.key, self.k = exclude_occluded, key, num_classes
        self.acc = PooledTC(num_classes)

    def update(self, clip: ClipData) -> None:
        for t in clip.pairs:
            self.acc.update_confusion(_compared(clip.pair_counts(t, self.k), self.exclude_occluded))

    def merge(self, other: FlickerShare) -> None:
        self.acc.merge(other.acc)

    def result(self) -> dict:
        value = self.acc.changed_pct()
        return {self.key: None if np.isnan(value) else value}


# mVC forms: "vspw" (``mvc<n>``, the published metric) and "etc" (``mvc<n>_etc`` and
# the accuracy-aware ``mvc<n>_acc``), see the module docstring.
VC_FORMS = ("vspw", "etc")


class VideoConsistency(Metric):
    """mVC_n in one form, the mean over every scored window of every dense clip; None where
    no window was scored (e.g. clips of at most n frames). ``in_table``: the "vspw" form's
    ``mvc<n>``, or the "etc" form's accuracy-aware ``mvc<n>_acc`` (its plain ``mvc<n>_etc``,
    a near-duplicate of the VSPW column, stays in the JSON)."""

    def __init__(self, n: int, form: str = "vspw", in_table: bool = True):
        if form not in VC_FORMS:
            raise ValueError(f"mVC form must be one of {VC_FORMS}, not {form!r}")
        self.n, self.form = n, form
        self.keys = (f"mvc{n}",) if form == "vspw" else (f"mvc{n}_etc", f"mvc{n}_acc")
        self.columns = (Column(self.keys[-1], section="detail", higher_is_better=True),) if in_table else ()
        self.values: tuple[list[float], ...] = tuple([] for _ in self.keys)

    def update(self, clip: ClipData) -> None:
        if clip.dense is None:
            return
        if self.form == "vspw":
            stored = clip.dense if clip.dense_stored is None else clip.dense_stored
            per_window = (vspw_video_consistency(clip.pred, stored, self.n),)
        else:
            per_window = video_consistency(clip.pred, clip.dense, self.n)
        for acc, new in zip(self.values, per_window, strict=True):
            acc.extend(new)

    def merge(self, other: VideoConsistency) -> None:
        for acc, new in zip(self.values, other.values, strict=True):
            acc.extend(new)

    def result(self) -> dict:
        return {k: float(np.mean(v) * 100) if v else None for k, v in zip(self.keys, self.values, strict=True)}
