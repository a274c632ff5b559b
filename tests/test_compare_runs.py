"""etc.report.compare_runs, which decides whether a scheduler's run equals the local one: it
finds a changed quality value and a changed weight, and ignores what a scheduler may change
(speed, how the job ran)."""

import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch
import yaml

from etc.core.config import load_config
from etc.models.checkpoint import save_checkpoint
from etc.report.compare_runs import compare_runs, quality_columns


def _run(folder):
    """A results folder of the smoke preset's shape: the resolved config, a table, two models."""
    config = load_config("workflow/configs/smoke.yaml")
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    gen = torch.Generator().manual_seed(0)
    rows = []
    for i, run in enumerate(["teacher", "student/baseline", "student/tl"]):
        model, _, ablation = run.partition("/")
        row = {c: 0.5 + i for c in quality_columns(config)}
        row.update(model=model, ablation=ablation or "-", fps=100.0 + i, inference="nhwc fp32 threads 2")
        rows.append(row)
        state = {"model": {"conv.weight": torch.randn(4, 3, 3, 3, generator=gen),
                           "bn.num_batches_tracked": torch.tensor(6)},
                 "spec": {"backbone": "tiny", "width": 0.5}, "num_classes": 19, "iteration": 6,
                 "history": [1.5, 0.75]}
        save_checkpoint(folder / "models" / f"{run}.pt", state)
    pd.DataFrame(rows).to_csv(folder / "table.csv", index=False)
    return folder


def test_quality_columns_are_the_metrics_not_the_speed():
    cols = quality_columns(load_config("workflow/configs/smoke.yaml"))
    assert {"model", "ablation", "miou", "tc", "delta_miou"} <= set(cols)
    assert not {"fps", "ms_per_frame", "device", "inference"} & set(cols)


def test_equal_runs_and_what_a_scheduler_may_change(tmp_path):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b")
    table = pd.read_csv(b / "table.csv")
    table["fps"] = [1.0, 2.0, 3.0]  # slower under the scheduler
    table["inference"] = "nhwc fp32 threads 1"
    table.to_csv(b / "table.csv", index=False)
    assert compare_runs(a, b) == []


def test_a_changed_quality_value_is_found(tmp_path):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b")
    table = pd.read_csv(b / "table.csv")
    table.loc[2, "tc"] += 1e-9
    table.to_csv(b / "table.csv", index=False)
    diffs = compare_runs(a, b)
    assert len(diffs) == 1 and diffs[0].startswith("table: tc of row 2 (student/tl)")


def test_a_changed_weight_a_value_and_a_missing_model_are_found(tmp_path):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b")
    path = b / "models" / "student" / "baseline.pt"
    state = torch.load(path, weights_only=True)
    state["model"]["conv.weight"][0, 0, 0, 0] += 1e-6
    state["history"][1] = 0.5
    save_checkpoint(path, state)
    (b / "models" / "teacher.pt").unlink()
    diffs = compare_runs(a, b)
    assert diffs[0] == "checkpoints: teacher.pt in only one of the runs"
    assert diffs[1].startswith("checkpoint student/baseline.pt: model.conv.weight: tensors differ (max |a - b| ")
    assert diffs[2] == "checkpoint student/baseline.pt: history[1]: 0.75 vs 0.5"
    assert len(diffs) == 3


def test_command_line_exit_codes(tmp_path):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b")
    cmd = [sys.executable, "-m", "etc.report.compare_runs"]
    same = subprocess.run([*cmd, str(a), str(b)], capture_output=True, text=True)
    assert same.returncode == 0 and same.stdout.startswith("equal:"), same.stderr
    shutil.rmtree(b / "models")
    (b / "models").mkdir()
    differ = subprocess.run([*cmd, str(a), str(b)], capture_output=True, text=True)
    assert differ.returncode == 1 and "student/tl.pt in only one of the runs" in differ.stderr
    (a / "config.yaml").unlink()
    broken = subprocess.run([*cmd, str(a), str(b)], capture_output=True, text=True)
    assert broken.returncode == 1 and "config.yaml not found" in broken.stderr


def test_a_missing_table_is_a_clear_error(tmp_path):
    from etc.core.errors import EtcError

    a, b = _run(tmp_path / "a"), _run(tmp_path / "b")
    (b / "table.csv").unlink()
    with pytest.raises(EtcError, match="table.csv not found"):
        compare_runs(a, b)
