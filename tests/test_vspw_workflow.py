"""The VSPW preset's structure at tiny sizes: check-data, flow, teacher and students, inference
and evaluation through the whole Snakemake chain on a generated VSPW-layout tree."""

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_datasets import make_vspw_tree

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.workflow
def test_vspw_preset_runs_end_to_end_at_tiny_size(tmp_path):
    data = make_vspw_tree(tmp_path / "VSPW_480p", size=(40, 72), layout={
        "train": {"1_a": 6, "2_b": 6}, "val": {"3_c": 10}})
    masks = sorted((data / "data/3_c/mask").glob("*.png"))
    for m in masks[1:]:  # a static scene: the ground truth is constant, so mVC has pixels to score
        m.write_bytes(masks[0].read_bytes())
    config = yaml.safe_load((ROOT / "workflow/configs/vspw.yaml").read_text())
    tiny = {"arch": "segformer", "backbone": "mit_b0", "head_channels": 16, "aux_weight": 0.0, "pretrained": None}
    config["dataset"].update(root=str(data), anchor_stride=2)
    config["augment"]["crop"] = [32, 32]
    config["flow"] = {"estimator": "dis"}
    config["teacher"] = tiny
    config["students"] = {"segformer_b1": {**tiny, "head_channels": 8}}
    for which in ("teacher", "student"):
        config["train"][which].update(iterations=2, warmup_iters=1, batch_size=2, num_workers=0, checkpoint_every=1)
    config["ablations"] = {k: config["ablations"][k] for k in ("baseline", "tl", "tl_kd")}
    config["evaluate"]["vc_windows"] = [8]
    config["results"] = "results"
    path = tmp_path / "vspw.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(path), "--cores", "2", "--quiet", "all"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results/table.csv")
    assert set(table["ablation"]) == {"-", "baseline", "tl", "tl_kd"}
    assert all(math.isfinite(v) for v in table["miou"]) and all(math.isfinite(v) for v in table["tc"])
    assert "mvc8" in table.columns and table["mvc8"].notna().all()
