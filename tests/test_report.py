"""`etc report`: the table's columns are the metric objects' declarations and the figures are
exactly the declared list (etc.plan.layout), which the workflow reads too."""

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
    from etc.core.config import load_config
    from etc.plan.layout import REPORT_FIGURES
    from etc.plan.runs import run_names
    from etc.report.build import build_report
    from etc.report.table import report_columns

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
    from etc.bench.suite import Rows, bench_rules
    from etc.plan.layout import BENCH_FIGURE

    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "infer.tsv").write_text("s\th:m:s\tmax_rss\n1.5\t0:00:01\t100\n")
    rows = Rows("cpu")
    bench_rules(rows, tmp_path, tmp_path / f"{BENCH_FIGURE}.png")
    assert (tmp_path / f"{BENCH_FIGURE}.png").stat().st_size > 0
    assert rows.rows[0]["metric"] == "infer_s" and rows.rows[0]["value"] == 1.5


def _study_cfg(**study):
    from etc.core.config import load_config

    return load_config(ROOT / "workflow/configs/smoke.yaml",
                       {"flow_study": {"train_estimators": ["gt", "dis", "gt:noise2"], "measure_estimators": ["dis", "gt:noise2"],
                                       **study}})


def _fake_study(tmp_path, cfg, tc_of):
    """Metrics JSONs and flow-quality JSONs where they are written; ``tc_of(ablation, train, measure)``."""
    from etc.plan.layout import PAIRS, metrics_path, quality_path, store_path, study_plan

    plan = study_plan(cfg)
    epe = {"gt": 0.0, "dis": 1.5, "gt:noise2": 2.0}
    for m in plan.measure:
        for a, e in plan.runs():
            p = metrics_path(tmp_path / "metrics", plan, m, a, e)
            p.parent.mkdir(parents=True, exist_ok=True)
            miou = 50.0 + (0 if e is None else 1.0 - epe[e])
            p.write_text(json.dumps({"miou": miou, "tc": tc_of(a, e, m), "tc_all": tc_of(a, e, m) - 5, "tc_occ": 90.0,
                                     "flicker_pct": 3.0, "flow_eval": m, "flow_train": e}))
    for role, split in (("train", "train"), ("measure", "val")):
        for spec in plan.train if role == "train" else plan.measure:
            q = quality_path(store_path(tmp_path / "flow", PAIRS[role], split, spec))
            q.parent.mkdir(parents=True, exist_ok=True)
            q.write_text(json.dumps({"epe": epe[spec] + (0.1 if role == "measure" else 0.0)}))
    return plan


def test_flow_study_report_deltas_biases_summary_and_plots(tmp_path):
    from etc.plan.layout import FLOW_STUDY_FIGURES as FIGURES
    from etc.report.flow_study import flow_study_report

    cfg = _study_cfg()

    def tc_of(a, e, m):  # TL gains 4 − EPE of its flow; measuring with flow m adds 2 × its EPE, 3 more on its own flow
        gain = 0.0 if e is None else 4.0 - {"gt": 0.0, "dis": 1.5, "gt:noise2": 2.0}[e]
        bias = {"gt": 0.0, "dis": 2.0, "gt:noise2": -1.0}[m] + (3.0 if m == e and m != "gt" else 0.0)
        return 70.0 + gain + bias

    plan = _fake_study(tmp_path, cfg, tc_of)
    assert plan.measure == ("gt", "dis", "gt:noise2") and plan.train == ("gt", "dis", "gt:noise2")
    info = flow_study_report(cfg, tmp_path / "metrics", tmp_path / "flow", tmp_path / "out")
    df = pd.read_csv(tmp_path / "out/table.csv")
    assert len(df) == 3 * (1 + 2 * 3) == info["rows"]
    row = df[(df["ablation"] == "tl") & (df["train_flow"] == "dis") & (df["measure_flow"] == "dis")].iloc[0]
    assert row["delta_tc"] == pytest.approx(4.0 - 1.5 + 3.0)  # the gain flattered by its own flow
    assert row["bias_tc"] == pytest.approx(2.0 + 3.0) and row["train_epe"] == 1.5 and row["measure_epe"] == pytest.approx(1.6)
    assert row["delta_tc_all"] == pytest.approx(row["delta_tc"]) and row["delta_miou"] == pytest.approx(-0.5)
    assert (df[df["measure_flow"] == "gt"]["bias_tc"] == 0).all()
    assert df[df["ablation"] == "baseline"]["train_epe"].isna().all()
    s = json.loads((tmp_path / "out/summary.json").read_text())
    assert s["bias_tc"]["baseline"] == {"gt": 0.0, "dis": 2.0, "gt:noise2": -1.0}
    assert s["bias_tc"]["tl@dis"]["dis"] == pytest.approx(5.0)  # smoke trains with dis: its own students
    gain = s["gain"]["tl_kd@gt:noise2"]
    assert gain["delta_tc_exact"] == pytest.approx(2.0) and gain["delta_tc_self"] == pytest.approx(5.0)
    assert gain["train_epe"] == 2.0
    assert all((tmp_path / "out" / f"{n}.png").stat().st_size > 0 for n in FIGURES)
    assert (tmp_path / "out/table.md").read_text().count("\n") == len(df) + 2


def test_flow_study_report_refuses_bad_plans_and_inputs(tmp_path):
    from etc.core.errors import EtcError
    from etc.plan.layout import metrics_path, study_plan
    from etc.report.flow_study import flow_study_report

    cfg = _study_cfg()
    with pytest.raises(EtcError, match=r"missing .*metrics/gt/student/baseline.json .*snakemake --cores all flow_study"):
        flow_study_report(cfg, tmp_path / "metrics", tmp_path / "flow", tmp_path / "out")
    plan = _fake_study(tmp_path, cfg, lambda a, e, m: 70.0)
    wrong = metrics_path(tmp_path / "metrics", plan, "dis", "tl", "gt")
    wrong.write_text(json.dumps({**json.loads(wrong.read_text()), "flow_eval": "gt"}))
    with pytest.raises(EtcError, match=r"tl\.gt\.json was measured with flow 'gt', not 'dis'"):
        flow_study_report(cfg, tmp_path / "metrics", tmp_path / "flow", tmp_path / "out")
    with pytest.raises(EtcError, match=r"'baseline' does not use the temporal loss"):
        study_plan(_study_cfg(ablations=["baseline"]))
    with pytest.raises(EtcError, match=r"'nobody' is not a student"):
        study_plan(_study_cfg(student="nobody"))
    with pytest.raises(EtcError, match=r"dataset 'camvid' does not"):
        study_plan({**cfg, "dataset": {**cfg["dataset"], "name": "camvid"}})


def test_seed_study_deltas_are_per_seed_and_the_spread_is_the_sample_std(tmp_path):
    """Δ against the baseline of the *same* seed; mean and ddof-1 std over the seeds; the
    default run's metrics stand for its seed."""
    from etc.core.config import load_config
    from etc.plan.layout import SEED_FIGURE as FIGURE
    from etc.plan.layout import run_files
    from etc.report.seed_study import seed_study_report

    cfg = load_config(None, {"train": {"student": {"seed": 5}}, "seed_study": {"seeds": [1, 5, 2]},
                             "ablations": {"baseline": {"ce": 1.0}, "tl": {"ce": 1.0, "tl": 1.0}}})
    miou = {(5, "baseline"): 50.0, (5, "tl"): 51.0, (1, "baseline"): 40.0, (1, "tl"): 43.0,
            (2, "baseline"): 60.0, (2, "tl"): 62.0}
    for (seed, ablation), value in miou.items():
        path = run_files(tmp_path, cfg, seed, f"student/{ablation}", "metrics")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"run": f"student/{ablation}", "miou": value, "tc": 70.0}))
    assert run_files(tmp_path, cfg, 5, "student/tl", "metrics") == tmp_path / "metrics/student/tl.json"
    info = seed_study_report(cfg, tmp_path, tmp_path / "out")
    assert info["seeds"] == [5, 1, 2] and info["rows"] == 6
    table = pd.read_csv(tmp_path / "out/table.csv")
    assert table.loc[table["ablation"] == "tl", "delta_miou"].tolist() == [1.0, 3.0, 2.0]
    summary = pd.read_csv(tmp_path / "out/summary.csv").set_index("ablation")
    assert summary.loc["tl", "delta_miou_mean"] == pytest.approx(2.0)
    assert summary.loc["tl", "delta_miou_std"] == pytest.approx(1.0)  # sample std of 1, 3, 2
    assert summary.loc["baseline", "miou_std"] == pytest.approx(10.0) and summary.loc["tl", "seeds"] == 3
    assert "| student | tl | 3 | 52.00 ± 9.54 |" in (tmp_path / "out/table.md").read_text()
    assert (tmp_path / "out" / f"{FIGURE}.png").stat().st_size > 0
    (tmp_path / "metrics/student/tl.json").unlink()
    with pytest.raises(Exception, match=r"missing metrics .*metrics/student/tl.json .*seed_study"):
        seed_study_report(cfg, tmp_path, tmp_path / "out")


def test_common_class_tc_averages_over_the_classes_every_ablation_of_a_student_scores():
    """An ablation that starts to predict a rare, unstable class is scored without it; rows of
    another student (or the teacher) have their own class set."""
    from etc.evaluate.metrics.base import Column
    from etc.report.table import COMMON_TC, common_class_tc, results_table

    rows = [
        {"model": "teacher", "ablation": "-", "tc_per_class": {"road": 90.0, "sign": 10.0, "car": None}},
        {"model": "s", "ablation": "baseline", "tc_per_class": {"road": 80.0, "sign": None, "car": 60.0}},
        {"model": "s", "ablation": "tl_kd", "tc_per_class": {"road": 84.0, "sign": 2.0, "car": 66.0}},
        {"model": "s", "ablation": "mf", "tc_per_class": None},
    ]
    df = pd.DataFrame(rows)
    assert common_class_tc(df) == [50.0, 70.0, 75.0, None]
    delta = Column("delta_tc_common", fmt="+.2f", delta_of="tc_common")
    table = results_table(rows, [COMMON_TC, delta])
    assert table["delta_tc_common"].tolist()[1:3] == [0.0, 5.0]
