"""What a metric is: an accumulator fed one clip at a time that reports a dict, and declares
the table columns it fills. ``evaluate`` and the results table only talk to this interface, so
a new metric is one class plus one entry in :func:`etc.evaluate.metrics.build_metrics`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# Where a column goes in the results table; the table lists sections in this order, and the
# ``delta_*`` columns (against the student's baseline) right after "main".
SECTIONS = ("main", "detail", "cost", "context")


@dataclass(frozen=True)
class Column:
    """One results-table column filled from the metrics JSON key of the same name."""

    key: str
    header: str = ""  # Markdown header; defaults to the key
    section: str = "main"
    fmt: str | None = ".2f"  # format spec of a number; None: str(value)
    higher_is_better: bool | None = None  # None: never bolded
    delta: bool = False  # the table adds ``delta_<key>`` against the same student's baseline
    delta_of: str | None = None  # set on those added columns: the key they are the change of

    def __post_init__(self):
        if not self.header:
            object.__setattr__(self, "header", self.key)
        if self.section not in SECTIONS:
            raise ValueError(f"column {self.key}: section must be one of {SECTIONS}, not {self.section!r}")

    def format(self, value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        if self.fmt is not None and isinstance(value, float):
            return format(value, self.fmt)
        return str(value)


@dataclass
class ClipData:
    """One clip as the metrics see it: predictions, ground truth and (lazily) the flow of each
    consecutive pair. Each pair's flow is read once, and one pass over it
    (etc.evaluate.metrics.pair_counts) gives the small count matrices that every consistency metric
    reads (TC, TC-occ, per-clip TC, flicker, ground-truth TC); no flow or warped map outlives
    its pair, so a clip's memory is its label maps plus one pair's."""

    name: str
    pred: np.ndarray  # T×H×W train ids
    labels: dict[int, np.ndarray]  # frame position → H×W ground truth (sparse labels)
    dense: np.ndarray | None  # T×H×W ground truth of every frame, or None
    flow_reader: Callable[[int], tuple[torch.Tensor, torch.Tensor]]  # t → (F_{t→t+1}, occluded)
    dense_stored: np.ndarray | None = None  # ``dense`` as the label files store it (mVC, VSPW form)
    device: str = "cpu"  # where the pair counts are computed (integer counts: the same on any)
    _counts: dict = field(default_factory=dict, repr=False)
    _on_device: dict = field(default_factory=dict, repr=False)

    @property
    def pairs(self) -> range:
        """Positions t of the consecutive pairs (t, t+1)."""
        return range(len(self.pred) - 1)

    def flow(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(F_{t→t+1} as 2×H×W, occluded H×W bool) at the prediction's size (read anew each call)."""
        return self.flow_reader(t)

    def pair_counts(self, t: int, num_classes: int, source: str = "prediction") -> np.ndarray:
        """2×(K+1)×K int64 ``[visible, occluded][label of t][label of t+1 warped into t]`` over
        the pixels whose warped label is a class (etc.evaluate.metrics.pair_counts.PairWarp.confusion);
        ``source`` is "prediction" or "ground_truth" (dense clips only). One flow read and one
        warp per pair serve both sources."""
        key = (t, num_classes)
        if key not in self._counts:
            from etc.evaluate.metrics.pair_counts import PairWarp

            flow, occluded = self.flow(t)
            warp = PairWarp(flow.to(self.device), occluded.to(self.device))
            self._counts[key] = {src: warp.confusion(seq[t], seq[t + 1], num_classes).cpu().numpy()
                                 for src, seq in self._sequences().items()}
        return self._counts[key][source]

    def _sequences(self) -> dict:
        """The label sequences as uint8 tensors on ``device`` (moved once per clip)."""
        if not self._on_device:
            import torch

            for src, seq in (("prediction", self.pred), ("ground_truth", self.dense)):
                if seq is not None:
                    self._on_device[src] = torch.from_numpy(np.ascontiguousarray(seq, np.uint8)).to(self.device)
        return self._on_device


class Metric:
    """Base class: ``update`` once per clip, ``merge`` with the same metric fed later clips
    (worker processes), ``result`` once at the end.

    ``columns`` are the results-table columns this metric fills (empty: JSON only).
    ``required`` maps keys that must be defined to why they may not be: ``evaluate`` then
    fails with that reason (e.g. TC over zero compared pixels) instead of writing a result
    without the number.
    """

    columns: tuple[Column, ...] = ()
    required: dict[str, str] = {}

    def update(self, clip: ClipData) -> None:  # noqa: B027 - metrics without per-clip data keep it
        pass

    def merge(self, other: Metric) -> None:  # noqa: B027 - metrics without per-clip data keep it
        """Take in ``other``, the same metric fed the clips that follow this one's (``etc
        evaluate`` with workers): the result must be the one a single pass gives."""

    def result(self) -> dict:
        raise NotImplementedError


def percent_or_none(value: float) -> float | None:
    """A [0, 1] fraction as %; None where it is undefined (JSON has no NaN)."""
    return None if np.isnan(value) else float(value * 100)
