"""`etc report`: the table's columns are the metric objects' declarations and the figures are
exactly the declared list (etc.report.figures), which the workflow reads too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fake_metrics(run: str, rng) -> dict:
    return {
        "run": run, "miou": float(rng.uniform(40, 60)), "tc": float(rng.uniform(60, 80)),
        "tc_occ": float(rng.uniform(60, 80)), "flicker_pct": 3.0, "mvc4": 90.0, "mvc4_acc": 50.0,
        "iou": {"road": float(rng.uniform(80, 90)), "car": None},
        "tc_per_clip": {"a": float(rng.uniform(60, 80)), "b": float(rng.uniform(60, 80))},
        "fps": 100.0, "ms_per_frame": 10.0, "params_m": 1.0, "gflops": 2.0, "device": "cpu",
    }


def test_report_table_columns_and_figures_are_the_declared_ones(tmp_path):
    from etc.config import load_config
    from etc.report.build import build_report
    from etc.report.figures import REPORT_FIGURES
    from etc.report.table import report_columns
    from etc.runs import run_names

    cfg = load_config(ROOT / "workflow/configs/smoke.yaml", {"evaluate": {"vc_windows": [4, 8]}})
    rng = np.random.default_rng(0)
    for run in run_names(cfg):
        (tmp_path / "metrics" / run).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "metrics" / f"{run}.json").write_text(json.dumps(_fake_metrics(run, rng)))
        (tmp_path / "curves" / run).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"iteration": range(1, 6), "ce": np.linspace(2, 1, 5), "lr": 0.01}).to_csv(
            tmp_path / "curves" / f"{run}.csv", index=False)
    build_report(cfg, tmp_path / "metrics", tmp_path / "curves", tmp_path / "table.csv", tmp_path / "fig")
    headers = (tmp_path / "table.md").read_text().splitlines()[0].strip("| ").split(" | ")
    assert headers == [c.header for c in report_columns(cfg)]
    assert "mvc4" in headers and "mvc8" not in headers
    table = pd.read_csv(tmp_path / "table.csv")
    assert list(table.columns) == [c.key for c in report_columns(cfg)]
    base = table[table["ablation"] == "baseline"]["miou"].iloc[0]
    tl = table[table["ablation"] == "tl"]
    assert tl["delta_miou"].iloc[0] == pytest.approx(tl["miou"].iloc[0] - base, abs=2e-4)  # CSV has 4 decimals
    assert sorted(p.stem for p in (tmp_path / "fig").glob("*.png")) == sorted(REPORT_FIGURES)
    assert all((tmp_path / "fig" / f"{n}.svg").is_file() for n in REPORT_FIGURES)
    for name in REPORT_FIGURES:  # every declared figure has its caption in the workflow report
        assert (ROOT / "workflow/report" / f"{name}.rst").is_file(), name


def test_bench_rules_figure_is_drawn_through_public_plot_helpers(tmp_path):
    from etc.bench import Rows, bench_rules
    from etc.report.figures import BENCH_FIGURE

    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "infer.tsv").write_text("s\th:m:s\tmax_rss\n1.5\t0:00:01\t100\n")
    rows = Rows("cpu")
    bench_rules(rows, tmp_path, tmp_path / f"{BENCH_FIGURE}.png")
    assert (tmp_path / f"{BENCH_FIGURE}.png").stat().st_size > 0
    assert rows.rows[0]["metric"] == "infer_s" and rows.rows[0]["value"] == 1.5
