"""`train.teacher.gpus: 2` makes the workflow launch torchrun: two gloo processes on CPU."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.workflow
def test_teacher_rule_runs_two_processes_when_given_two_gpus(tmp_path):
    text = (ROOT / "workflow/configs/smoke.yaml").read_text()
    text = text.replace("teacher: {iterations: 6, batch_size: 2, checkpoint_every: 3}",
                        "teacher: {iterations: 4, batch_size: 4, checkpoint_every: 3, gpus: 2}")
    assert "gpus: 2" in text
    config = tmp_path / "ddp.yaml"
    config.write_text(text)
    base = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
            "--configfile", str(config), "--cores", "2"]
    res = subprocess.run([*base, "--quiet", "all", "--", "results/smoke/models/teacher.pt"], capture_output=True, text=True)
    log = (tmp_path / "results/smoke/logs/train_teacher.log")
    assert res.returncode == 0, res.stderr[-3000:] + (log.read_text()[-3000:] if log.exists() else "")
    assert "teacher: 4 iterations on 2 processes" in log.read_text()
    dry = subprocess.run([*base, "-n", "-p", "--forcerun", "train_teacher", "--", "results/smoke/models/teacher.pt"],
                         capture_output=True, text=True)
    assert "torchrun --standalone --nproc_per_node 2 -m etc -- train" in dry.stdout + dry.stderr
