"""The smoke preset runs the whole Snakemake chain in a temporary folder."""

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_workflow_end_to_end(tmp_path):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(ROOT / "workflow/configs/smoke.yaml"), "--cores", "2", "--quiet", "all"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results/smoke/table.csv")
    expected = {("teacher", "-")} | {("student", a) for a in ("baseline", "tl", "tl_kd")}
    assert set(zip(table["model"], table["ablation"], strict=True)) == expected
    for col in ("miou", "tc", "tc_occ", "fps", "params_m", "gflops"):
        assert all(math.isfinite(v) for v in table[col]), col
    assert (tmp_path / "results/smoke/demo/clip0.mp4").stat().st_size > 0
    # a second run with nothing changed does nothing
    again = subprocess.run(cmd[:-2] + ["-n", "all"], capture_output=True, text=True)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
