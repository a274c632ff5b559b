"""``etc report``: the results table (CSV + Markdown) and the seaborn figures of the report."""

from __future__ import annotations

import logging
from pathlib import Path

from etc.core.errors import EtcError

log = logging.getLogger(__name__)


def build_report(config: dict, metrics_dir, curves_dir, table: str | Path, out_dir: str | Path,
                 keyframe_dir: str | Path | None = None, latency: str | Path | None = None) -> dict:
    """``curves_dir``: the runs' training CSVs; a run without one is left out of the training
    curves figure, and with none at all (or no folder: None) that figure says so while the table
    and the other figures are written as usual.
    ``keyframe_dir``: etc keyframe-score's rows (etc.plan.keyframe_rows.keyframe_rows): the
    keyframe rows join the table, every row gets its streaming latency (from ``latency``, `etc
    latency`'s record of every row, where the rows do not carry it), and the accuracy–latency
    figures plot them; without it those figures say there is no streamed latency."""
    from etc.core.io import atomic_path, write_text
    from etc.plan.layout import REPORT_FIGURES
    from etc.plan.runs import run_names
    from etc.report import plots
    from etc.report.table import load_metrics, report_columns, results_table, to_markdown

    runs = run_names(config)
    metrics_paths = [Path(metrics_dir) / f"{r}.json" for r in runs]
    missing = [str(p) for p in metrics_paths if not p.is_file()]
    if missing:
        raise EtcError(f"missing metrics {missing[0]} (and {len(missing) - 1} more); run `etc evaluate` for every model")
    metrics = load_metrics(metrics_paths, config["dataset"]["name"])
    traces: dict[str, list] = {}
    if keyframe_dir is not None:
        metrics, traces = with_keyframe_rows(config, metrics, Path(keyframe_dir), latency)
    columns = report_columns(config, keyframe=keyframe_dir is not None)
    df = results_table(metrics, columns)
    table = Path(table)
    with atomic_path(table) as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f")
    write_text(table.with_suffix(".md"), to_markdown(df, columns))
    curves = {r: Path(curves_dir) / f"{r}.csv" for r in runs} if curves_dir is not None else {}
    curves = {r: p for r, p in curves.items() if p.is_file()}
    absent = (f"no training curves: no <run>.csv in {curves_dir}" if curves_dir is not None
              else "no training curves (no --curves-dir)")
    if not curves:
        log.warning("%s; the training_curves figure says so, the table and other figures are complete", absent)
    draw = {
        "miou_vs_tc": lambda path: plots.miou_vs_tc(df, path),
        "class_iou": lambda path: plots.class_iou_heatmap(metrics, path),
        "tc_per_clip": lambda path: plots.tc_per_clip(metrics, path),
        "training_curves": lambda path: plots.training_curves(curves, path, absent),
        "miou_vs_latency": lambda path: plots.accuracy_vs_latency(df, "miou", path),
        "tc_vs_latency": lambda path: plots.accuracy_vs_latency(df, "tc", path),
        "latency_trace": lambda path: plots.latency_trace(traces, path),
        "keyframe_sweep": lambda path: plots.keyframe_sweep(sweep_points(config, metrics), path),
        "latency_distribution": lambda path: plots.latency_distribution(
            {_row_label(m): m.get("frame_ms") or [] for m in metrics}, path),
    }
    for name in REPORT_FIGURES:
        draw[name](Path(out_dir) / f"{name}.png")
    return {"rows": len(df), "table": str(table)}


# The streamed latency a per-frame row takes from its interval-1 keyframe-score row.
STREAM_KEYS = ("ms_per_frame_mean", "ms_per_frame_p50", "ms_per_frame_p95", "ms_per_frame_p99", "ms_per_frame_max")


def sweep_points(config: dict, metrics: list[dict]) -> list[dict]:
    """The interval sweep: per propagation, ``keyframe.model``'s rows at K = 1 (its per-frame
    row: every frame a keyframe) and at every keyframe interval, with mIoU under the keyframe
    protocol (every frame / every offset), the worst offset's mIoU and TC."""
    from etc.plan.keyframe_rows import PROPAGATION_NAMES

    kmodel = config["keyframe"]["model"]
    per_frame = [m for m in metrics if int(m.get("keyframe_interval") or 1) == 1 and not m.get("temporal_fusion")
                 and (m["model"] if m["ablation"] == "-" else f"{m['model']}/{m['ablation']}") == kmodel]
    points = []
    for m in metrics:
        if int(m.get("keyframe_interval") or 1) > 1:
            points.append({"K": m["keyframe_interval"], "propagation": PROPAGATION_NAMES.get(m["propagate"], m["propagate"]),
                           "miou": m.get("miou_protocol"), "miou_worst_offset": m.get("miou_worst_offset"),
                           "tc": m.get("tc")})
    for name in sorted({p["propagation"] for p in points}):
        for m in per_frame[:1]:
            points.append({"K": 1, "propagation": name, "miou": m.get("miou_protocol", m.get("miou")),
                           "miou_worst_offset": m.get("miou_worst_offset"), "tc": m.get("tc")})
    return sorted(points, key=lambda p: (p["propagation"], p["K"]))


def _row_label(m: dict) -> str:
    return m["model"] if m["ablation"] == "-" else f"{m['model']} · {m['ablation']}"


def with_keyframe_rows(config: dict, metrics: list[dict], folder: Path,
                       latency: str | Path | None = None) -> tuple[list[dict], dict]:
    """The per-frame rows with their streaming latency (the rows' own, or ``latency``'s: `etc
    latency`'s record) and protocol mIoU, then the keyframe and fused rows (model and ablation
    columns: the run's model, the ablation naming the setting); and the
    latency traces of the teacher, the ETC student and the first keyframe setting."""
    from etc.plan.keyframe_rows import keyframe_rows
    from etc.report.table import load_metrics

    rows = keyframe_rows(config)
    paths = [folder / f"{r['slug']}.json" for r in rows]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise EtcError(f"missing keyframe row {missing[0]} (and {len(missing) - 1} more); run `etc keyframe-score` "
                       f"for every keyframe setting (snakemake does)")
    scored = dict(zip((r["slug"] for r in rows), load_metrics(paths), strict=True))
    if latency is not None:
        from etc.evaluate.keyframe_score import stream_fields
        from etc.evaluate.metrics.cost import read_timing

        record = read_timing(latency)
        for r in rows:
            scored[r["slug"]].update(stream_fields(record, r["run"], latency))
    by_run = {f"{m['model']}/{m['ablation']}" if m["ablation"] != "-" else m["model"]: m for m in metrics}
    keyed = []
    for r in rows:
        m = scored[r["slug"]]
        if r["kind"] == "per-frame":
            if r["run"] in by_run:
                by_run[r["run"]].update({k: m.get(k) for k in ("miou_protocol", "miou_worst_offset",
                                                               *STREAM_KEYS, "frame_ms")})
            continue
        model, _, ablation = r["model"].partition("/")
        setting = r["run"][len(r["model"]) + len(" · "):]
        m["model"], m["ablation"] = model, f"{ablation} · {setting}" if ablation else setting
        if r["kind"] == "keyframe":
            m["keyframe_interval"], m["propagate"] = r["interval"], r["propagate"]
        else:
            m["temporal_fusion"] = r["fusion"]
        keyed.append(m)
    etc_student = [r["run"] for r in rows if r["kind"] == "per-frame" and r["run"].endswith("/tl_kd")][:1]
    first_keyframe = [r["run"] for r in rows if r["kind"] == "keyframe"][:1]
    slug = {r["run"]: r["slug"] for r in rows}
    traces = {run: scored[slug[run]].get("frame_ms") or [] for run in ("teacher", *etc_student, *first_keyframe)}
    return metrics + keyed, traces
