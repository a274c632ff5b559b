"""What a metric is: an accumulator fed one clip at a time that reports a dict, and declares
the table columns it fills. ``evaluate`` and the results table only talk to this interface, so
a new metric is one class plus one entry in :func:`etc.metrics.build_metrics`."""

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
    consecutive pair. Flows and warped labels are computed once per clip and shared by every
    metric that asks (TC, TC-occ, per-clip TC, flicker, ground-truth TC)."""

    name: str
    pred: np.ndarray  # T×H×W train ids
    labels: dict[int, np.ndarray]  # frame position → H×W ground truth (sparse labels)
    dense: np.ndarray | None  # T×H×W ground truth of every frame, or None
    flow_reader: Callable[[int], tuple[torch.Tensor, torch.Tensor]]  # t → (F_{t→t+1}, occluded)
    dense_stored: np.ndarray | None = None  # ``dense`` as the label files store it (mVC, VSPW form)
    _flows: dict = field(default_factory=dict, repr=False)
    _warped: dict = field(default_factory=dict, repr=False)

    @property
    def pairs(self) -> range:
        """Positions t of the consecutive pairs (t, t+1)."""
        return range(len(self.pred) - 1)

    def flow(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(F_{t→t+1} as 2×H×W, occluded H×W bool) at the prediction's size."""
        if t not in self._flows:
            self._flows[t] = self.flow_reader(t)
        return self._flows[t]

    def warped_next(self, t: int, source: str = "prediction") -> np.ndarray:
        """Labels of frame t+1 warped into frame t (nearest; 255 where the sample leaves the
        image); ``source`` is "prediction" or "ground_truth" (dense clips only)."""
        key = (t, source)
        if key not in self._warped:
            import torch

            from etc.flow.warp import warp_labels

            seq = self.pred if source == "prediction" else self.dense
            nxt = torch.from_numpy(seq[t + 1].astype(np.int64))[None]
            warped = warp_labels(nxt, self.flow(t)[0][None].float())[0].numpy()
            self._warped[key] = warped.astype(np.uint8)  # ids and 255 only: 8× less memory per pair
        return self._warped[key]


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
