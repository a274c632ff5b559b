"""`etc score` against `etc evaluate`: the same predictions as PNG folders give the same JSON."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from etc.core.errors import EtcError
from etc.core.io import write_png


@pytest.fixture(scope="module")
def scored(synthetic_tree, tmp_path_factory):
    """(config, predictions .h5, flow store, predictions/, frames/, labels/, dense labels/):
    the ground truth with a tenth of its pixels relabelled, as `etc infer` and as PNGs."""
    import shutil

    from etc.core.config import load_config
    from etc.data.clips import list_clips, read_label
    from etc.flow.precompute import precompute_flow

    tmp = tmp_path_factory.mktemp("score")
    cfg = load_config(None, {"dataset": {"root": str(synthetic_tree)}, "evaluate": {"vc_windows": [2, 4]}})
    flow = tmp / "val.gt.h5"
    precompute_flow(cfg, "val", flow, estimator="gt", progress=False)
    rng = np.random.default_rng(3)
    preds = tmp / "noisy.h5"
    with h5py.File(preds, "w") as h5:
        for clip in list_clips("synthetic", synthetic_tree, "val"):
            p = np.stack([read_label(f.dense_label, "synthetic") for f in clip.frames])
            p = np.where(p == 255, 0, p)
            flip = rng.random(p.shape) < 0.1
            p[flip] = rng.integers(0, 8, int(flip.sum()))
            h5[clip.name] = p.astype(np.uint8)
            for t, f in enumerate(clip.frames):
                write_png(tmp / "pred" / clip.name / f"{f.number:06d}.png", p[t])
                (tmp / "frames" / clip.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(f.image, tmp / "frames" / clip.name / f"frame_{f.number}.png")
                (tmp / "dense" / clip.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(f.dense_label, tmp / "dense" / clip.name / f"{f.number:06d}.png")
                if f.label is not None:
                    (tmp / "labels" / clip.name).mkdir(parents=True, exist_ok=True)
                    shutil.copy(f.label, tmp / "labels" / clip.name / f"{f.number:06d}.png")
    return cfg, preds, flow, tmp


def _score(cfg, tmp, out, **kw):
    from etc.evaluate.score import score

    return score(cfg, tmp / "pred", tmp / "frames", out, progress=False, **kw)


def test_score_equals_evaluate_on_the_same_predictions(scored, tmp_path):
    from etc.evaluate.evaluate import evaluate

    cfg, preds, flow, tmp = scored
    ev = evaluate(cfg, preds, flow, tmp_path / "ev.json", progress=False)
    sc = _score(cfg, tmp, tmp_path / "sc.json", labels=tmp / "labels", flow=flow)
    assert 0 < sc["tc"] < 100 and 0 < sc["miou"] < 100  # a real case, not a perfect one
    shared = set(ev) & set(sc) - {"predictions", "labels"}
    assert {"miou", "iou", "confusion", "tc", "tc_all", "tc_occ", "flicker_pct", "tc_per_clip", "flow_eval"} <= shared
    for key in shared - {"mvc2", "mvc4", "mvc2_etc", "mvc4_etc", "mvc2_acc", "mvc4_acc", "tc_ground_truth"}:
        assert sc[key] == ev[key], key
    assert sc["mvc2"] is None and ev["mvc2"] is not None  # sparse labels: no mVC
    dense = _score(cfg, tmp, tmp_path / "dense.json", labels=tmp / "dense", flow=flow)
    for key in ("mvc2", "mvc4", "mvc2_etc", "mvc4_acc", "tc_ground_truth", "tc", "tc_occ"):
        assert dense[key] == ev[key], key
    md = (tmp_path / "sc.md").read_text().splitlines()
    assert md[0].startswith("| method | mIoU | TC") and f"{ev['tc']:.2f}" in md[2]


def test_estimated_flow_equals_a_full_resolution_store_of_that_estimator(scored, tmp_path):
    from etc.core.config import load_config
    from etc.flow.precompute import precompute_flow

    cfg, _, _, tmp = scored
    store = tmp_path / "val.dis.h5"
    dis_cfg = load_config(None, {"dataset": cfg["dataset"], "flow": {"scale": 1.0, "dtype": "float32"}})
    precompute_flow(dis_cfg, "val", store, estimator="dis", pairs="consecutive", progress=False)
    on_the_fly = _score(cfg, tmp, tmp_path / "a.json", estimator="dis")
    stored = _score(cfg, tmp, tmp_path / "b.json", flow=store)
    assert on_the_fly["flow_eval"] == stored["flow_eval"] == "dis"
    assert on_the_fly["miou"] is None  # no labels given
    for key in ("tc", "tc_all", "tc_occ", "flicker_pct", "tc_per_clip"):
        assert on_the_fly[key] == pytest.approx(stored[key], abs=1e-9), key


def test_names_that_do_not_match_and_foreign_class_ids_are_one_line_errors(scored, tmp_path):
    import shutil

    cfg, _, flow, tmp = scored
    bad = tmp_path / "pred"
    shutil.copytree(tmp / "pred", bad)
    clip = sorted(p for p in bad.iterdir())[0]
    last = sorted(clip.iterdir())[-1]
    last.rename(clip / "999999.png")
    from etc.evaluate.score import score

    with pytest.raises(EtcError, match=r"frame_\d+.png has no prediction of number \d+ in clip"):
        score(cfg, bad, tmp / "frames", tmp_path / "x.json", flow=flow, progress=False)
    (clip / "999999.png").rename(last)
    write_png(last, np.full((48, 96), 30, np.uint8))
    with pytest.raises(EtcError, match="holds class id 30, but synthetic has 19 classes"):
        score(cfg, bad, tmp / "frames", tmp_path / "x.json", flow=flow, progress=False)
    clip.rename(bad / "another_clip")
    r = subprocess.run([sys.executable, "-m", "etc", "score", "--predictions", str(bad), "--frames", str(tmp / "frames"),
                        "--out", str(tmp_path / "x.json")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "has no frames folder" in r.stderr, r.stderr
