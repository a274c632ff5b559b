"""The `folder` dataset's own rules: classes.yaml, and check-data listing every problem of a
tree (each with its file and fix) instead of stopping at the first."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import make_folder_tree

from etc.core.errors import EtcError
from etc.core.io import write_png


@pytest.fixture
def tree(tmp_path, synthetic_tree):
    from etc.data.sets.folder import use_root

    use_root(tmp_path / "mine")
    return make_folder_tree(tmp_path / "mine", synthetic_tree)


def test_config_names_the_root_and_ids_map_stored_values(tree):
    from etc.core.config import load_config
    from etc.data.clips import list_clips, read_label
    from etc.data.decode import read_label_map
    from etc.data.labels import class_names

    load_config(None, {"dataset": {"name": "folder", "root": str(tree)}})
    assert class_names("folder")[:2] == ("road", "sidewalk")
    (clip,) = list_clips("folder", tree, "val")
    assert [f.number for f in clip.frames] == sorted(f.number for f in clip.frames)
    assert all(f.dense_label == f.label is not None for f in clip.frames)  # labelled on every frame: mVC
    lab = read_label(clip.frames[0].label, "folder")  # stored id + 1, 0 void
    stored = read_label_map(clip.frames[0].label)
    assert np.array_equal(lab, np.where(stored == 0, 255, stored - 1))


def test_check_data_lists_every_problem_with_its_file(tree):
    from etc.data.check import check_dataset

    train = tree / "frames" / "train"
    clips = sorted(d for d in train.iterdir())
    (clips[0] / "notes.txt").write_text("x")  # not a frame
    (clips[0] / "cover.png").write_bytes((next(clips[0].glob("*.png"))).read_bytes())  # no number
    unlabelled = tree / "labels" / "train" / clips[1].name
    for p in unlabelled.iterdir():
        p.unlink()  # a training clip without labels
    label = next((tree / "labels" / "train" / clips[0].name).iterdir())
    write_png(label.with_name("frame_999.png"), np.zeros((48, 96), np.uint8))  # a label without a frame
    write_png(label, np.full((48, 96), 77, np.uint8))  # a value classes.yaml does not define
    with pytest.raises(EtcError) as err:
        check_dataset("folder", tree, splits=["train"])
    text = str(err.value)
    assert text.startswith(f"5 problems in {tree} (split train):")
    for needle in (f"{clips[0] / 'notes.txt'}: not a", f"{clips[0] / 'cover.png'}: no frame number",
                   f"training clip {clips[1]} has no label", "frame_999.png has no frame 999",
                   f"unknown label id(s) [77] in {label}"):
        assert needle in text, needle


@pytest.mark.parametrize("classes, message", [
    ({"names": ["a"]}, "'names' must be a list of at least two"),
    ({"names": ["a", "b"], "ids": {1: 0}}, "no stored value maps to class 1 (b)"),
    ({"names": ["a", "b"], "ignore": 0}, "the ignore value 0 is also class 0"),
    ({"names": ["a", "b"], "palette": [[1, 2, 3]]}, "'palette' must hold one [r, g, b]"),
    ({"names": ["a", "b"], "colours": []}, "unknown key 'colours'"),
])
def test_bad_classes_yaml_is_named_with_the_fix(tree, classes, message):
    (tree / "classes.yaml").write_text(yaml.safe_dump(classes))
    r = subprocess.run([sys.executable, "-m", "etc", "check-data", "--dataset", "folder", "--root", str(tree),
                        "--splits", "val"], capture_output=True, text=True)
    assert r.returncode == 2 and message in r.stderr and "classes.yaml" in r.stderr, r.stderr


@pytest.mark.parametrize("name, number", [
    ("frame_9.png", 9), ("frame_10.png", 10), ("img00012.jpg", 12), ("00000003.jpg", 3),
    ("westmoor_000000_000625_leftImg8bit.png", 625),  # a digit inside a word is not the number
    ("0001TP_006690.png", 6690), ("cover.png", None),
])
def test_frame_numbers_come_from_the_name(name, number):
    from etc.data.framedir import frame_number

    assert frame_number(name) == number
