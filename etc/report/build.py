"""``etc report``: the results table (CSV + Markdown) and the seaborn figures of the report."""

from __future__ import annotations

import logging
from pathlib import Path

from etc.errors import EtcError

log = logging.getLogger(__name__)


def build_report(config: dict, metrics_dir, curves_dir, table: str | Path, out_dir: str | Path) -> dict:
    from etc.io import atomic_path, write_text
    from etc.report import plots
    from etc.report.table import load_metrics, results_table, to_markdown
    from etc.runs import run_names

    runs = run_names(config)
    metrics_paths = [Path(metrics_dir) / f"{r}.json" for r in runs]
    missing = [str(p) for p in metrics_paths if not p.is_file()]
    if missing:
        raise EtcError(f"missing metrics {missing[0]} (and {len(missing) - 1} more); run `etc evaluate` for every model")
    metrics = load_metrics(metrics_paths)
    df = results_table(metrics, config["dataset"]["name"])
    table = Path(table)
    with atomic_path(table) as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f")
    write_text(table.with_suffix(".md"), to_markdown(df))
    out_dir = Path(out_dir)
    plots.miou_vs_tc(df, out_dir / "miou_vs_tc.png")
    plots.class_iou_heatmap(metrics, out_dir / "class_iou.png")
    plots.tc_per_clip(metrics, out_dir / "tc_per_clip.png")
    curves = {r: Path(curves_dir) / f"{r}.csv" for r in runs}
    plots.training_curves({r: p for r, p in curves.items() if p.is_file()}, out_dir / "training_curves.png")
    return {"rows": len(df), "table": str(table)}
