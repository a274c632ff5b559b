"""Loaders and check-data on tiny generated trees."""

import json
import subprocess
import sys

import numpy as np
import pytest

from etc.core.errors import EtcError
from etc.core.io import write_png
from etc.data.check import check_dataset, load_manifest
from etc.data.clips import consecutive_pairs, list_clips, read_image, read_label, training_pairs
from etc.data.label_table import IGNORE


def test_cityscapes_snippets_follow_the_annotated_frame(cityscapes_tree):
    clips = list_clips("cityscapes", cityscapes_tree, "train")
    assert [c.name for c in clips] == ["aachen_000000_000019", "frankfurt_000000_000294"]
    for clip, ann in zip(clips, (19, 294), strict=True):
        assert len(clip) == 30 and clip.labelled == (19,)
        assert [f.number for f in clip.frames] == list(range(ann - 19, ann + 11))
    # label ids are mapped to train ids: only {0..18, IGNORE}
    lab = read_label(clips[0].frames[19].label, "cityscapes")
    assert set(np.unique(lab)) <= set(range(19)) | {IGNORE}
    assert IGNORE in lab  # id 0 (unlabeled) -> ignore


def test_camvid_clips_take_neighbours_from_frames_folder(camvid_tree):
    clips = list_clips("camvid", camvid_tree, "train")
    assert {c.name for c in clips} == {"0001TP_006690", "0006R0_f02910"}
    clip = next(c for c in clips if c.name == "0006R0_f02910")
    assert [f.number for f in clip.frames] == list(range(2905, 2916))
    assert clip.labelled == (5,)
    assert clip.frames[4].image.name == "0006R0_f02909.png"
    lab = read_label(clip.frames[5].label, "camvid")
    assert set(np.unique(lab)) <= set(range(11)) | {IGNORE} and IGNORE in lab  # void 11 -> ignore


def test_pairs(cityscapes_tree):
    clips = list_clips("cityscapes", cityscapes_tree, "train")
    pairs = training_pairs(clips, [-2, -1, 1, 2, 3])
    assert len(pairs) == 2 * 5 and {(t, s) for _, t, s in pairs} == {(19, 17), (19, 18), (19, 20), (19, 21), (19, 22)}
    with pytest.raises(EtcError, match=r"no training pairs: .* 2 clips of split 'train' .*\[11, -20\]"):
        training_pairs(clips, [11, -20])  # both fall outside the snippet: nothing to train on
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


# --------------------------------------------------------------------------------------------
# CamVid as users extract it: frames/seq01TP/0001TP_006690.png at 960×720 (here 2× the stills),
# sequences whose first labelled still is their first frame.

VIDEO_STILLS = {  # split -> (sequence, folder, prefix, labelled number, digits, extracted frames)
    "train": [("0001TP", "seq01TP", "", 6690, 6, range(6690, 6701)),
              ("0006R0", "seq06R0", "f", 2910, 5, range(2905, 2916))],
    "val": [("Seq05VD", "seq05VD", "f", 0, 5, range(0, 6)),
            ("0016E5", "seq16E5", "", 7959, 5, range(7954, 7965))],
}


def make_camvid_video_tree(root, size=(12, 16), scale=2, seed=0):
    rng = np.random.default_rng(seed)
    h, w = size
    for split, items in VIDEO_STILLS.items():
        for seq, folder, prefix, ann, digits, numbers in items:
            name = f"{seq}_{prefix}{ann:0{digits}d}.png"
            write_png(root / split / name, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            write_png(root / f"{split}annot" / name, rng.integers(0, 12, (h, w), dtype=np.uint8))
            for n in numbers:
                frame = rng.integers(0, 256, (h * scale, w * scale, 3), dtype=np.uint8)
                write_png(root / "frames" / folder / f"{seq}_{prefix}{n:0{digits}d}.png", frame)
    return root


@pytest.fixture
def camvid_video_tree(tmp_path):
    return make_camvid_video_tree(tmp_path / "camvid")


def test_camvid_real_extraction_is_accepted(camvid_video_tree, tmp_path):
    import cv2

    from etc.core.io import read_png

    root = camvid_video_tree
    report = check_dataset("camvid", root, manifest=tmp_path / "m.json")
    text = report.summary()
    assert report.image_size == (12, 16)
    assert "train: 2 clips, 17 frames, 2 labelled (1 of them cut short at a sequence start or end: 5 neighbour" in text
    assert "val: 2 clips, 17 frames, 2 labelled (1 of them cut short" in text
    assert "30 frames stored at 24×32 are resized to 12×16 when read (INTER_AREA)" in text
    assert load_manifest(tmp_path / "m.json")["clips"]["val"] == list_clips("camvid", root, "val")

    clips = {c.name: c for split in ("train", "val") for c in list_clips("camvid", root, split)}
    assert [f.number for f in clips["0001TP_006690"].frames] == list(range(6690, 6696))
    assert [f.number for f in clips["Seq05VD_f00000"].frames] == list(range(0, 6))
    assert clips["Seq05VD_f00000"].labelled == (0,) and clips["0001TP_006690"].labelled == (0,)
    assert [f.number for f in clips["0006R0_f02910"].frames] == list(range(2905, 2916))
    assert all(f.number >= 0 and "-" not in f.image.name for c in clips.values() for f in c.frames)
    assert clips["0006R0_f02910"].frames[4].image.parent.name == "seq06R0"

    # neighbours are resized to the still's size with INTER_AREA; the still is read as it is
    clip = clips["0006R0_f02910"]
    stored = read_png(clip.frames[4].image, color=True)
    assert np.array_equal(read_image(clip.frames[4].image), cv2.resize(stored, (16, 12), interpolation=cv2.INTER_AREA))
    assert np.array_equal(read_image(clip.frames[5].image), read_png(root / "train" / "0006R0_f02910.png", color=True))
    assert np.stack([read_image(f.image) for c in clips.values() for f in c.frames]).shape[1:] == (12, 16, 3)

    # pairs reaching before the sequence start are dropped, not errors
    pairs = training_pairs(list_clips("camvid", root, "train"), [-2, -1, 1, 2, 3])
    assert sorted((c.name, s - t) for c, t, s in pairs if c.name.startswith("0001TP")) == [("0001TP_006690", k) for k in (1, 2, 3)]
    assert len(pairs) == 3 + 5


def test_camvid_resized_frames_train_at_the_stills_size(camvid_video_tree):
    import pickle

    from etc.data.pairs import PairDataset

    pairs = training_pairs(list_clips("camvid", camvid_video_tree, "train", strict=False), [-1, 1])
    ds = pickle.loads(pickle.dumps(PairDataset("camvid", pairs, None)))  # as DataLoader workers get it
    for i in range(len(ds)):
        item = ds[i]
        assert item["image_t"].shape == item["image_n"].shape == (12, 16, 3) and item["label_t"].shape == (12, 16)  # uint8 HWC until device_batch


def test_camvid_both_folder_namings_and_their_errors(camvid_video_tree):
    root = camvid_video_tree
    (root / "frames" / "seq16E5").rename(root / "frames" / "0016E5")  # the documented naming
    assert len(list_clips("camvid", root, "val")[0]) == 11
    (root / "frames" / "seq16E5").mkdir()
    _expect(root, "camvid", r"frames of sequence 0016E5 are in 2 folders")
    (root / "frames" / "seq16E5").rmdir()

    gap = root / "frames" / "seq06R0" / "0006R0_f02913.png"
    gap.unlink()  # inside the sequence: a real missing file
    _expect(root, "camvid", f"missing frame in clip: {gap}")
    write_png(gap, np.zeros((30, 32, 3), np.uint8))  # neither the stills' size nor a multiple
    _expect(root, "camvid", rf"wrong image size 30×32 in {gap}: .* same aspect ratio")
    with pytest.raises(EtcError, match=rf"{gap} is 30×32, which cannot be resized to 12×16"):
        read_image(next(f.image for f in list_clips("camvid", root, "train")[1].frames if f.image == gap))


def test_camvid_still_outside_the_extracted_frames(camvid_video_tree):
    root = camvid_video_tree
    for p in (root / "frames" / "seq01TP").glob("*.png"):  # extracted with another numbering
        p.rename(p.with_name(f"0001TP_{int(p.stem.split('_')[1]) - 6000:06d}.png"))
    _expect(root, "camvid", r"labelled frame .*0001TP_006690.png \(number 6690\) lies outside the frames extracted into .*seq01TP \(690\.\.700\)")


def test_camvid_without_neighbour_frames_is_an_error_not_an_empty_success(camvid_video_tree):
    import shutil

    root = camvid_video_tree
    shutil.rmtree(root / "frames")
    _expect(root, "camvid", r"missing folder .*frames/0001TP \(or .*frames/seq01TP\): the neighbour frames of .*Expected layout")
    clips = list_clips("camvid", root, "train", strict=False)  # what train/infer see
    assert [len(c) for c in clips] == [1, 1]
    with pytest.raises(EtcError, match=r"no training pairs: .*2 clips of split 'train'.*clip lengths 1\.\.1"):
        training_pairs(clips, [-1, 1])
    with pytest.raises(EtcError, match=r"no consecutive frames: each of the 2 clips of split 'train' is a single frame"):
        consecutive_pairs(clips)
    for p in (root / "train").glob("*.png"):  # a frames folder, but each still alone in it
        write_png(root / "frames" / p.stem.split("_")[0] / p.name, np.zeros((12, 16, 3), np.uint8))
    _expect(root, "camvid", r"split 'train' of camvid .*each of its 2 clips is a single frame")
