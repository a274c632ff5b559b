"""The smoke preset runs the whole Snakemake chain in a temporary folder — from a path with a
space, and again after a hard kill mid-run, with the same numbers."""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
QUALITY = ["miou", "tc", "tc_occ", "params_m", "gflops"]


def _snakemake(workdir: Path, *extra: str) -> list[str]:
    """The smoke preset with its data and results under folder names that hold a space."""
    config = workdir.parent / f"{workdir.name}.yaml"
    if not config.exists():
        text = (ROOT / "workflow/configs/smoke.yaml").read_text()
        text = text.replace("root: results/smoke/data/synthetic", "root: 'data dir/synthetic'")
        config.write_text(text.replace("results: results/smoke", "results: 'results dir/smoke'"))
    return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(config), "--cores", "2", "--quiet", *extra]


@pytest.mark.slow
def test_smoke_workflow_end_to_end_survives_a_hard_kill(tmp_path):
    spaced = tmp_path / "a"
    res = subprocess.run(_snakemake(spaced, "all"), capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    table = pd.read_csv(spaced / "results dir/smoke/table.csv")
    expected = {("teacher", "-")} | {("student", a) for a in ("baseline", "tl", "tl_kd")}
    assert set(zip(table["model"], table["ablation"], strict=True)) == expected
    for col in (*QUALITY, "fps"):
        assert all(math.isfinite(v) for v in table[col]), col
    assert (spaced / "results dir/smoke/demo/clip0.mp4").stat().st_size > 0
    assert sorted(p.name for p in spaced.iterdir()) == [".snakemake", "data dir", "results dir"]  # no stray files
    again = subprocess.run(_snakemake(spaced, "-n", "all"), capture_output=True, text=True)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    # kill -9 the whole process group while students train, then the documented recovery
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_snakemake(killed, "all"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 600
    while not list((killed / "results dir/smoke/models").glob("student/*")) and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "results dir/smoke/table.csv").exists()
    unlock = subprocess.run(_snakemake(killed, "--unlock"), capture_output=True, text=True)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    rerun = subprocess.run(_snakemake(killed, "all"), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert (killed / "results dir/smoke/table.csv").exists(), rerun.stdout[-3000:] + rerun.stderr[-3000:]
    resumed = pd.read_csv(killed / "results dir/smoke/table.csv")
    pd.testing.assert_frame_equal(resumed[["model", "ablation", *QUALITY]], table[["model", "ablation", *QUALITY]])
