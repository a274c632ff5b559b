"""The metrics of ``etc evaluate``, one object each (see etc.evaluate.metrics.base).

:func:`build_metrics` is the one list: ``evaluate`` feeds every clip to these objects and merges
their results into the metrics JSON, and the results table takes its columns from their
declarations. Adding a metric = one class + one entry here.
"""

from __future__ import annotations

from pathlib import Path

from etc.evaluate.metrics.base import SECTIONS, ClipData, Column, Metric

__all__ = ["ClipData", "Column", "Metric", "build_metrics", "table_columns"]


def build_metrics(config: dict, *, model_ckpt: str | Path | None = None,
                  timing: str | Path | None = None) -> list[Metric]:
    """The metrics of ``config`` in JSON order; the cost metrics are empty without their source."""
    from etc.data.labels import class_names
    from etc.evaluate.metrics.consistency import (
        FlickerShare,
        PerClipTC,
        TemporalConsistency,
        VideoConsistency,
    )
    from etc.evaluate.metrics.cost import InferenceTiming, ModelCost
    from etc.evaluate.metrics.miou import MeanIoU
    from etc.evaluate.metrics.provenance import FlowProvenance

    dataset = config["dataset"]["name"]
    names = class_names(dataset)
    k = len(names)
    windows = config["evaluate"]["vc_windows"]
    return [
        MeanIoU(names),
        # two class averagings of the same pooled TC (etc.evaluate.metrics.consistency.AVERAGING)
        TemporalConsistency("tc", k, class_names=names, per_class_key="tc_per_class", required=True,
                            columns=(Column("tc", "TC (present classes)", higher_is_better=True, delta=True),)),
        TemporalConsistency("tc_all", k, averaging="all",
                            columns=(Column("tc_all", "TC (all classes, as the published table)",
                                            higher_is_better=True, delta=True),)),
        TemporalConsistency("tc_occ", k, exclude_occluded=True,
                            columns=(Column("tc_occ", section="main", higher_is_better=True),)),
        FlickerShare(k),
        TemporalConsistency("tc_ground_truth", k, source="ground_truth"),
        PerClipTC(k),
        # every window is in the JSON; the table shows the first window (the paper's n), and on
        # VSPW every window in VSPW's form (it publishes mVC8 and mVC16)
        *(VideoConsistency(n, "vspw", in_table=i == 0 or dataset == "vspw") for i, n in enumerate(windows)),
        *(VideoConsistency(n, "etc", in_table=i == 0) for i, n in enumerate(windows)),
        InferenceTiming(timing),
        ModelCost(model_ckpt, timing),
        FlowProvenance(config, model_ckpt),
    ]


def table_columns(metrics: list[Metric]) -> list[Column]:
    """The metrics' columns in table order: "main", their deltas, then the other sections."""
    cols = [c for m in metrics for c in m.columns]
    ordered = []
    for section in SECTIONS:
        ordered += [c for c in cols if c.section == section]
        if section == "main":
            ordered += [Column(f"delta_{c.key}", section="main", fmt="+.2f",
                               higher_is_better=c.higher_is_better, delta_of=c.key) for c in cols if c.delta]
    return ordered
