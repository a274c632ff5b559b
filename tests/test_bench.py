"""`etc bench --quick` runs and writes well-formed rows (the figures themselves are not tested)."""

import math
from pathlib import Path

import pandas as pd
import pytest

from etc.bench.suite import run_bench
from etc.core.config import load_config


@pytest.mark.slow
def test_quick_bench_writes_well_formed_rows(tmp_path):
    cfg = load_config(None, {"teacher": {"backbone": "tiny", "width": 0.5, "head_channels": 8},
                             "students": {"s": {"backbone": "tiny", "width": 0.25, "head_channels": 8}}})
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "infer.tsv").write_text("s\th:m:s\tmax_rss\n1.5\t0:00:01\t100\n")
    out = tmp_path / "bench.csv"
    run_bench(cfg, out, quick=True)
    df = pd.read_csv(out)
    assert list(df.columns) == ["benchmark", "metric", "value", "unit", "device"]
    assert {"inference_parity", "inference_options", "pipeline", "keyframe", "training", "flow", "memory", "rules"} <= set(df["benchmark"])
    assert all(math.isfinite(v) and v > 0 for v in df["value"])
    for metric in ("student_over_teacher_256x512", "infer_over_bare", "infer_over_bare_256x512", "tl_over_baseline",
                   "precompute_over_bare", "channels_last_over_plain_256x512", "heap_kept_over_glibc_default_256x512",
                   "channels_last_fused_labels_over_plain_256x512"):
        assert metric in set(df["metric"])
    assert (tmp_path / "bench.md").read_text().startswith("Device: ")
    assert (tmp_path / "bench_rules.png").exists()


@pytest.mark.slow
def test_gpu_check_script_runs_the_paper_bench_at_a_tiny_scale_without_ptlflow(tmp_path):
    """scripts/gpu_check.sh (`etc bench --scale paper`) on CPU at 64×128 with tiny networks,
    where ptlflow cannot be imported (the GPU machine lacks it): every row well formed, every
    ratio finite and positive, the preset's estimate printed and written."""
    import os
    import subprocess
    import sys

    import yaml

    repo = Path(__file__).resolve().parents[1]
    cfg = load_config(None, {"teacher": {"backbone": "tiny", "width": 0.5, "head_channels": 8},
                             "students": {"s": {"backbone": "tiny", "width": 0.25, "head_channels": 8}},
                             "dataset": {"window": [-2, -1, 1, 2, 3]},
                             "augment": {"crop": [769, 769], "scale": [0.5, 2.0], "rotation": 10},
                             "ablations": {"baseline": {"ce": 1.0}, "tl": {"ce": 1.0, "tl": 0.1},
                                           "tl_kd": {"ce": 1.0, "tl": 0.1, "pi": 10.0, "pf": 1.0, "mf": 1.0}},
                             "train": {"teacher": {"iterations": 600, "batch_size": 2},
                                       "student": {"iterations": 700, "batch_size": 2}},
                             "infer": {"batch_size": 2}})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('ptlflow', 'loguru', 'jsonargparse'):\n"
        "            raise ImportError('blocked on the GPU machine: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n")
    out = tmp_path / "out"
    env = {**os.environ, "DEVICE": "cpu", "QUICK": "1", "CONFIG": str(tmp_path / "c.yaml"), "OUT": str(out),
           "PYTHON": sys.executable, "PYTHONPATH": str(blocker)}
    res = subprocess.run(["bash", str(repo / "scripts" / "gpu_check.sh")], capture_output=True, text=True, env=env)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert "estimated wall time of the preset" in res.stdout and "exited 0" in res.stdout
    assert "auto workers on cuda" in (out / "env.txt").read_text()
    df = pd.read_csv(out / "bench.csv")
    assert set(df["device"]) == {df["device"].iloc[0]} and df["device"].iloc[0].startswith("cpu")
    metrics = dict(zip(df["metric"], df["value"], strict=True))
    runs = ["teacher", "s/baseline", "s/tl", "s/tl_kd"]
    for run in runs:
        for m in ("samples_per_s", "loader_free_samples_per_s", "over_loader_free"):
            assert math.isfinite(metrics[f"{run}_{m}"]) and metrics[f"{run}_{m}"] > 0
        assert 0 <= metrics[f"{run}_loader_wait_share"] <= 1
    for m in ("infer_over_bare_64x128", "infer_call_over_bare_64x128", "nhwc_fp32_over_nchw_fp32_64x128",
              "nhwc_fp32_fused_over_nchw_fp32_64x128",
              "train_s_samples_per_s_nhwc_bf16_over_auto"):
        assert math.isfinite(metrics[m]) and metrics[m] > 0
    # the estimate is Σ iterations × batch / samples/s over the teacher and every student run
    want = sum(it * 2 / metrics[f"{run}_samples_per_s"] for run, it in zip(runs, [600, 700, 700, 700], strict=True)) / 3600
    assert metrics["preset_hours"] == pytest.approx(want, rel=1e-6)
    ratios = df[df["unit"] == "ratio"]["value"]
    assert len(ratios) > 10 and all(math.isfinite(v) and v > 0 for v in ratios)
    assert "total" in (out / "bench.md").read_text()
