"""``etc report``: the results table (CSV + Markdown) and the seaborn figures of the report."""

from __future__ import annotations

import logging
from pathlib import Path

from etc.errors import EtcError

log = logging.getLogger(__name__)


def build_report(config: dict, metrics_dir, curves_dir, table: str | Path, out_dir: str | Path) -> dict:
    from etc.io import atomic_path, write_text
    from etc.report import plots
    from etc.report.figures import REPORT_FIGURES
    from etc.report.table import load_metrics, report_columns, results_table, to_markdown
    from etc.runs import run_names

    runs = run_names(config)
    metrics_paths = [Path(metrics_dir) / f"{r}.json" for r in runs]
    missing = [str(p) for p in metrics_paths if not p.is_file()]
    if missing:
        raise EtcError(f"missing metrics {missing[0]} (and {len(missing) - 1} more); run `etc evaluate` for every model")
    metrics = load_metrics(metrics_paths, config["dataset"]["name"])
    columns = report_columns(config)
    df = results_table(metrics, columns)
    table = Path(table)
    with atomic_path(table) as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f")
    write_text(table.with_suffix(".md"), to_markdown(df, columns))
    curves = {r: Path(curves_dir) / f"{r}.csv" for r in runs}
    draw = {
        "miou_vs_tc": lambda path: plots.miou_vs_tc(df, path),
        "class_iou": lambda path: plots.class_iou_heatmap(metrics, path),
        "tc_per_clip": lambda path: plots.tc_per_clip(metrics, path),
        "training_curves": lambda path: plots.training_curves({r: p for r, p in curves.items() if p.is_file()}, path),
    }
    for name in REPORT_FIGURES:
        draw[name](Path(out_dir) / f"{name}.png")
    return {"rows": len(df), "table": str(table)}
