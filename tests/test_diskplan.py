"""`etc plan` and precompute-flow's disk check: the estimates are the store layout's exact
uncompressed sizes, and a flow store that cannot fit is refused before any pair is computed."""

from __future__ import annotations

import pytest

from etc.core.errors import EtcError


def _config(root, **flow):
    from etc.core.config import load_config

    return load_config(None, {"dataset": {"root": str(root), "window": [-1, 1]}, "flow": {"estimator": "gt", **flow},
                              "ablations": {"baseline": {"ce": 1.0}, "tl": {"ce": 1.0, "tl": 1.0}}})


def test_the_plan_counts_every_pair_frame_and_parameter(synthetic_tree, tmp_path):
    from etc.data.clips import list_clips
    from etc.flow.precompute import default_pairs, select_pairs
    from etc.plan.disk import CHECKPOINT_COPIES, disk_plan, format_plan
    from etc.plan.runs import run_names

    cfg = _config(synthetic_tree)
    rows = {r["family"].split(" (")[0]: r for r in disk_plan(cfg)}
    ds = cfg["dataset"]
    for split in (ds["train_split"], ds["val_split"]):
        clips = list_clips("synthetic", synthetic_tree, split)
        pairs = len(select_pairs(clips, ds["window"], default_pairs(cfg, split), ds["anchor_stride"]))
        row = rows[f"flow store, {split}"]
        assert row["count"] == pairs > 0
        assert row["bytes"] == pairs * 48 * 96 * (2 * 2 * 2 + 2)  # fw, bw float16 + two uint8 masks
    val_frames = sum(len(c) for c in list_clips("synthetic", synthetic_tree, ds["val_split"]))
    assert rows["predictions"]["bytes"] == len(run_names(cfg)) * val_frames * 48 * 96
    assert rows["checkpoint teacher"]["bytes"] % (CHECKPOINT_COPIES * 4) == 0
    # float32 stores: 18 bytes a pixel against 10; half the scale: a quarter of the pixels
    f32 = {r["family"]: r["bytes"] for r in disk_plan(_config(synthetic_tree, dtype="float32"))}
    half = {r["family"]: r["bytes"] for r in disk_plan(_config(synthetic_tree, scale=0.5))}
    key = next(k for k in f32 if k.startswith("flow store, train"))
    assert f32[key] * 10 == rows["flow store, train"]["bytes"] * 18
    assert half[key] * 4 == rows["flow store, train"]["bytes"]
    assert "against" in format_plan(disk_plan(cfg), tmp_path)


def test_precompute_flow_refuses_a_store_the_disk_cannot_hold(synthetic_tree, tmp_path, monkeypatch):
    import etc.core.disk
    from etc.flow.precompute import precompute_flow

    cfg = _config(synthetic_tree)
    monkeypatch.setattr(etc.core.disk, "free_bytes", lambda path: 1000)
    out = tmp_path / "val.h5"
    with pytest.raises(EtcError, match=r"needs about .* but only 0\.0 MB is free"):
        precompute_flow(cfg, "val", out, progress=False)
    assert not out.exists() and not list(tmp_path.iterdir())  # no store, no partial store
    monkeypatch.undo()
    precompute_flow(cfg, "val", out, progress=False)  # the same call with room: it runs
    assert out.is_file()


def test_the_plan_without_data_says_what_to_do(tmp_path):
    from etc.plan.disk import disk_plan

    with pytest.raises(EtcError, match="make-synthetic"):
        disk_plan(_config(tmp_path / "nothing"))
