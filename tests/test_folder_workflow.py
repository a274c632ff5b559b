"""The `folder` dataset through the whole workflow: a tree in its layout, made from the
synthetic generator at the smoke preset's sizes, from check-data to the results table."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import make_folder_tree

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.workflow
def test_folder_dataset_runs_the_whole_workflow(tmp_path):
    from etc.data.synthetic import make_synthetic

    smoke = yaml.safe_load((ROOT / "workflow/configs/smoke.yaml").read_text())
    make_synthetic(tmp_path / "synthetic", **smoke["dataset"]["synthetic"])
    tree = make_folder_tree(tmp_path / "mine", tmp_path / "synthetic")
    preset = yaml.safe_load((ROOT / "workflow/configs/folder.yaml").read_text())
    config = {**smoke, "dataset": {**preset["dataset"], "root": str(tree), "window": smoke["dataset"]["window"]},
              "results": str(tmp_path / "results"),
              # the offset protocol needs labelled frames K−1 or more from a clip's start; this tree
              # labels position 0 (keyframe rows are the synthetic set's, where every frame counts)
              "keyframe": {"intervals": []}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    res = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                          str(tmp_path), "--configfile", str(tmp_path / "c.yaml"), "--cores", "2", "--quiet", "all"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results" / "table.csv")
    assert {("teacher", "-"), ("student", "baseline")} <= set(zip(table["model"], table["ablation"], strict=True))
    for col in ("miou", "tc", "tc_occ"):
        assert all(math.isfinite(v) for v in table[col]), col
    assert (table["flow_eval"] == "dis").all()  # no exact flow in your own data
    manifest = yaml.safe_load((tmp_path / "results" / "data" / "manifest.json").read_text())
    assert manifest["dataset"] == "folder" and manifest["classes"][0] == "road"
