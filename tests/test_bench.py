"""`etc bench --quick` runs and writes well-formed rows (the figures themselves are not tested)."""

import math

import pandas as pd
import pytest

from etc.bench import run_bench
from etc.config import load_config


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
    assert {"inference_parity", "inference_options", "pipeline", "training", "flow", "memory", "rules"} <= set(df["benchmark"])
    assert all(math.isfinite(v) and v > 0 for v in df["value"])
    for metric in ("etc_over_baseline_256x512", "infer_over_bare", "infer_over_bare_256x512", "tl_over_baseline",
                   "precompute_over_bare", "channels_last_over_plain_256x512", "heap_kept_over_glibc_default_256x512"):
        assert metric in set(df["metric"])
    assert (tmp_path / "bench.md").read_text().startswith("Device: ")
    assert (tmp_path / "bench_rules.png").exists()
