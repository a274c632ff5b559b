"""The paper's results table: one row per model (teacher; each student × ablation), deltas
against that student's baseline, and — for Cityscapes — the reference numbers beside ours."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from etc.core.filekind import read_metrics_json
from etc.evaluate.metrics.base import Column

# Cityscapes val, PSPNet-18, from the ETC reference repository (docs/design.md §3).
REFERENCE_CITYSCAPES = {
    "baseline": {"ref_miou": 69.79, "ref_tc": 68.50},
    "tl": {"ref_miou": 71.72, "ref_tc": 69.99},
    "tl_kd": {"ref_miou": 73.06, "ref_tc": 70.56},
}

# Columns of every table around the metrics' own (etc.evaluate.metrics): which row, and the reference.
IDENTITY = (Column("model", fmt=None), Column("ablation", fmt=None))
REFERENCE_COLUMNS = (Column("ref_miou", "published mIoU", higher_is_better=True),
                     Column("ref_tc", "published TC (all classes)", higher_is_better=True))


# TC over the classes that *every* row of the same student predicts (a non-empty pooled union
# in each): the paper's averaging on one class set, so that an ablation is not scored on a class
# the others never predict. It depends on the table's rows: adding an ablation can shrink the set.
COMMON_TC = Column("tc_common", "TC (classes every ablation predicts)", higher_is_better=True, delta=True)


@dataclass(frozen=True)
class _TableColumns:
    """A report-level column, placed among the metrics' for etc.evaluate.metrics.table_columns."""

    columns: tuple[Column, ...]


# The keyframe comparison (etc.evaluate.keyframe_score): mIoU under the keyframe protocol (every frame
# where all are labelled, the labelled frame at every keyframe offset otherwise) and the
# streamed latency per frame (etc latency: every model in turns, one frame at a time) — the
# table's only per-frame speed, for per-frame and keyframe rows alike: mean, median, p95, and
# p99 over frames as the robust worst case (the maximum is a single frame, often a scheduler
# hiccup; it stays in the row JSON); for keyframe rows the medians over keyframes and over
# propagated frames. Batched throughput stays in the timing JSONs and `etc bench`.
KEYFRAME_COLUMNS = (Column("miou_protocol", "mIoU (every frame / offset)", higher_is_better=True),
                    Column("miou_worst_offset", "mIoU (worst keyframe offset)", higher_is_better=True),
                    Column("ms_per_frame_mean", "ms/frame stream (mean)", section="cost", higher_is_better=False),
                    Column("ms_per_frame_p50", "ms/frame stream (p50)", section="cost", higher_is_better=False),
                    Column("ms_per_frame_p95", "ms/frame stream (p95)", section="cost", higher_is_better=False),
                    Column("ms_per_frame_p99", "ms/frame stream (worst: p99 over frames)", section="cost",
                           higher_is_better=False),
                    Column("ms_keyframe_p50", "ms/keyframe stream (p50)", section="cost", higher_is_better=False),
                    Column("ms_propagated_p50", "ms/propagated frame stream (p50)", section="cost",
                           higher_is_better=False))


def report_columns(config: dict, keyframe: bool = False) -> list[Column]:
    """The table's columns: the row's name, what the config's metrics declare (etc.evaluate.metrics),
    the common-class TC beside the other TC averagings, ``keyframe``: the keyframe comparison's,
    and for Cityscapes the reference numbers."""
    from etc.evaluate.metrics import build_metrics, table_columns

    metrics: list = build_metrics(config)
    after = [i for i, m in enumerate(metrics) if any(c.key == "tc_all" for c in m.columns)]
    if after:
        metrics.insert(after[0] + 1, _TableColumns((COMMON_TC,)))
    if keyframe:
        metrics.append(_TableColumns(KEYFRAME_COLUMNS))
    cols = [*IDENTITY, *table_columns(metrics)]
    if config["dataset"]["name"] == "cityscapes":
        cols += REFERENCE_COLUMNS
    return cols


def load_metrics(paths, dataset: str | None = None) -> list[dict]:
    """The metrics JSONs of one table (of ``dataset`` where given). Refused, naming two files:
    JSONs measured on different datasets or with TC under different flow (one column would mix
    two metrics), and two JSONs that record the same run (two rows of one name)."""
    from etc.core.errors import EtcError

    rows = []
    first: dict[str, tuple[Path, object]] = {}  # what must agree → (first file, its value)
    runs: dict[str, Path] = {}
    for p in paths:
        p = Path(p)
        m = read_metrics_json(p, dataset)
        for key, what, fix in (("dataset", "were measured on", "one table compares models on one dataset"),
                               ("flow_eval", "measured TC with the flow of", "TC under another flow is another "
                                "metric: evaluate every model with one evaluate.flow_estimator")):
            value = m.get(key)
            if value is None:
                continue
            if key in first and first[key][1] != value:
                raise EtcError(f"metrics {first[key][0]} {what} {first[key][1]}, metrics {p} {what} {value}: {fix}")
            first.setdefault(key, (p, value))
        if m.get("run") in runs:
            raise EtcError(f"metrics {runs[m['run']]} and {p} are both of run '{m['run']}': one table has one row "
                           f"per run; delete the stray file or rerun `etc evaluate` for the right model")
        if m.get("run"):
            runs[m["run"]] = p
        run = m.get("run") or p.stem
        model, _, ablation = run.partition("/")
        m["model"], m["ablation"] = model, ablation or "-"
        rows.append(m)
    return rows


def results_table(metrics: list[dict], columns: list[Column], baseline: str = "baseline") -> pd.DataFrame:
    """One row per metrics JSON, ``columns`` (see :func:`report_columns`) in order; a missing
    value is None, ``delta_<key>`` is against the same model's ``baseline`` row."""
    df = pd.DataFrame(metrics)
    keys = [c.key for c in columns]
    if COMMON_TC.key in keys and "tc_per_class" in df:
        df[COMMON_TC.key] = common_class_tc(df)
    for key in keys:
        if key not in df:
            df[key] = None
    base = df[df["ablation"] == baseline].set_index("model")
    for c in columns:
        if c.delta_of is not None:
            df[c.key] = [_difference(v, base.loc[m, c.delta_of]) if m in base.index and a != "-" else None
                         for m, a, v in zip(df["model"], df["ablation"], df[c.delta_of], strict=True)]
        elif c in REFERENCE_COLUMNS:
            df[c.key] = [REFERENCE_CITYSCAPES.get(a, {}).get(c.key) for a in df["ablation"]]
    return df[keys].reset_index(drop=True)  # rows in run order: teacher, then the config's order


def common_class_tc(df) -> list:
    """Per row, the mean per-class TC over the classes scored (non-empty pooled union) in every
    row of the same model; None where the row has no per-class TC or the set is empty."""
    common = {}
    for model, rows in df.groupby("model", sort=False):
        sets = [{c for c, v in p.items() if v is not None} for p in rows["tc_per_class"] if isinstance(p, dict)]
        common[model] = set.intersection(*sets) if sets else set()
    out = []
    for model, per_class in zip(df["model"], df["tc_per_class"], strict=True):
        classes = sorted(common[model]) if isinstance(per_class, dict) else []
        out.append(sum(per_class[c] for c in classes) / len(classes) if classes else None)
    return out


def _difference(value, base):
    """value − base; None where either is missing (a metric a model could not be scored on)."""
    return None if value is None or base is None or pd.isna(value) or pd.isna(base) else value - base


def to_markdown(df: pd.DataFrame, columns: list[Column], bold_best: bool = False) -> str:
    """Markdown table with each column's header and format; ``bold_best`` bolds the best value
    of every column that declares a direction."""
    best = {}
    if bold_best:
        for c in columns:
            values = pd.to_numeric(df[c.key], errors="coerce") if c.higher_is_better is not None else None
            if values is not None and values.notna().any():
                best[c.key] = values.max() if c.higher_is_better else values.min()
    lines = ["| " + " | ".join(c.header for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in df[[c.key for c in columns]].itertuples(index=False):
        cells = []
        for c, v in zip(columns, row, strict=True):
            text = c.format(v)
            cells.append(f"**{text}**" if c.key in best and isinstance(v, float) and v == best[c.key] else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
