"""Loaders and check-data on tiny generated trees."""

import json
import subprocess
import sys

import numpy as np
import pytest

from etc.data.check import check_dataset, load_manifest
from etc.data.clips import consecutive_pairs, list_clips, read_label, training_pairs
from etc.errors import EtcError
from etc.io import write_png


def test_cityscapes_snippets_follow_the_annotated_frame(cityscapes_tree):
    clips = list_clips("cityscapes", cityscapes_tree, "train")
    assert [c.name for c in clips] == ["aachen_000000_000019", "frankfurt_000000_000294"]
    for clip, ann in zip(clips, (19, 294), strict=True):
        assert len(clip) == 30 and clip.labelled == (19,)
        assert [f.number for f in clip.frames] == list(range(ann - 19, ann + 11))
    # label ids are mapped to train ids: only {0..18, 255}
    lab = read_label(clips[0].frames[19].label, "cityscapes")
    assert set(np.unique(lab)) <= set(range(19)) | {255}
    assert 255 in lab  # id 0 (unlabeled) -> ignore


def test_camvid_clips_take_neighbours_from_frames_folder(camvid_tree):
    clips = list_clips("camvid", camvid_tree, "train")
    assert {c.name for c in clips} == {"0001TP_006690", "0006R0_f02910"}
    clip = next(c for c in clips if c.name == "0006R0_f02910")
    assert [f.number for f in clip.frames] == list(range(2905, 2916))
    assert clip.labelled == (5,)
    assert clip.frames[4].image.name == "0006R0_f02909.png"
    lab = read_label(clip.frames[5].label, "camvid")
    assert set(np.unique(lab)) <= set(range(11)) | {255} and 255 in lab  # void 11 -> ignore


def test_pairs(cityscapes_tree):
    clips = list_clips("cityscapes", cityscapes_tree, "train")
    pairs = training_pairs(clips, [-2, -1, 1, 2, 3])
    assert len(pairs) == 2 * 5 and {(t, s) for _, t, s in pairs} == {(19, 17), (19, 18), (19, 20), (19, 21), (19, 22)}
    short = training_pairs(clips, [11, -20])  # both fall outside the snippet
    assert short == []
    assert len(consecutive_pairs(clips)) == 2 * 29


def test_check_accepts_good_trees_and_writes_manifest(cityscapes_tree, camvid_tree, tmp_path):
    for name, root in (("cityscapes", cityscapes_tree), ("camvid", camvid_tree)):
        manifest = tmp_path / f"{name}.json"
        report = check_dataset(name, root, manifest=manifest)
        assert "OK" in report.summary()
        data = load_manifest(manifest)
        for split in ("train", "val"):
            assert data["clips"][split] == list_clips(name, root, split)
        assert json.loads(manifest.read_text())["image_size"] == list(report.image_size)


def test_check_synthetic(synthetic_tree, tmp_path):
    report = check_dataset("synthetic", synthetic_tree, manifest=tmp_path / "m.json")
    assert [len(report.splits[s]) for s in ("train", "val")] == [2, 1]
    assert report.image_size == (48, 96)


def _expect(root, dataset, match):
    with pytest.raises(EtcError, match=match):
        check_dataset(dataset, root)


def test_check_rejects_missing_split(cityscapes_tree):
    import shutil

    shutil.rmtree(cityscapes_tree / "leftImg8bit_sequence" / "val")
    _expect(cityscapes_tree, "cityscapes", r"missing folder .*leftImg8bit_sequence/val.*Expected layout")


def test_check_rejects_missing_frame(cityscapes_tree):
    gone = cityscapes_tree / "leftImg8bit_sequence/train/frankfurt/frankfurt_000000_000280_leftImg8bit.png"
    gone.unlink()
    _expect(cityscapes_tree, "cityscapes", f"missing frame in clip: {gone}")


def test_check_rejects_corrupt_png(cityscapes_tree):
    bad = cityscapes_tree / "leftImg8bit_sequence/train/aachen/aachen_000000_000003_leftImg8bit.png"
    bad.write_bytes(bad.read_bytes()[:40])
    _expect(cityscapes_tree, "cityscapes", f"corrupt or truncated PNG: {bad}")


def test_check_rejects_wrong_size(cityscapes_tree):
    bad = cityscapes_tree / "leftImg8bit_sequence/val/lindau/lindau_000000_000005_leftImg8bit.png"
    write_png(bad, np.zeros((20, 32, 3), np.uint8))
    _expect(cityscapes_tree, "cityscapes", f"wrong image size 20×32 in {bad}; expected 16×32")


def test_check_rejects_unknown_label_id(camvid_tree):
    bad = camvid_tree / "valannot" / "0016E5_07959.png"
    write_png(bad, np.full((12, 16), 40, np.uint8))
    _expect(camvid_tree, "camvid", rf"unknown label id\(s\) \[40\] in {bad}")


def test_cli_missing_dataset_is_one_line_without_traceback(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "etc", "check-data", "--dataset", "camvid", "--root", str(tmp_path / "nope")],
        capture_output=True, text=True,
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "does not exist" in res.stderr and "SegNet release" in res.stderr
