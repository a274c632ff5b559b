"""Tiny dataset trees generated on the fly: the real loaders are what the tests exercise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from etc.core.io import write_png

ROOT = Path(__file__).resolve().parents[1]

CS_IDS = np.array([7, 8, 11, 17, 21, 23, 24, 26, 0], dtype=np.uint8)


def make_cityscapes_tree(root: Path, annotated=None, size=(16, 32), seed=0) -> Path:
    """Cityscapes layout: ``annotated`` maps split → [(city, seq, annotated frame)]; each gets
    its 30-frame snippet (annotated −19 … +10)."""
    rng = np.random.default_rng(seed)
    annotated = annotated or {
        "train": [("aachen", 0, 19), ("frankfurt", 0, 294)],
        "val": [("lindau", 0, 19)],
    }
    h, w = size
    for split, items in annotated.items():
        for city, seq, ann in items:
            for n in range(ann - 19, ann + 11):
                img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                write_png(root / "leftImg8bit_sequence" / split / city / f"{city}_{seq:06d}_{n:06d}_leftImg8bit.png", img)
            lab = CS_IDS[rng.integers(0, len(CS_IDS), (h, w))]
            write_png(root / "gtFine" / split / city / f"{city}_{seq:06d}_{ann:06d}_gtFine_labelIds.png", lab)
    return root


def make_camvid_tree(root: Path, size=(12, 16), radius=5, seed=0) -> Path:
    """SegNet layout plus neighbour frames in frames/<seq>/ (names as the labelled frames)."""
    rng = np.random.default_rng(seed)
    h, w = size
    labelled = {"train": [("0001TP", "", 6690, 6), ("0006R0", "f", 2910, 5)], "val": [("0016E5", "", 7959, 5)]}
    for split, items in labelled.items():
        for seq, prefix, ann, digits in items:
            name = f"{seq}_{prefix}{ann:0{digits}d}.png"
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            write_png(root / split / name, img)
            write_png(root / f"{split}annot" / name, rng.integers(0, 12, (h, w), dtype=np.uint8))
            for n in range(ann - radius, ann + radius + 1):
                frame = img if n == ann else rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                write_png(root / "frames" / seq / f"{seq}_{prefix}{n:0{digits}d}.png", frame)
    return root


@pytest.fixture
def cityscapes_tree(tmp_path) -> Path:
    return make_cityscapes_tree(tmp_path / "cityscapes")


@pytest.fixture
def camvid_tree(tmp_path) -> Path:
    return make_camvid_tree(tmp_path / "camvid")


@pytest.fixture(scope="session")
def synthetic_tree(tmp_path_factory) -> Path:
    """A tiny synthetic set, generated once per test session (treat it as read-only)."""
    from etc.data.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic(root, train_clips=2, val_clips=1, frames=6, height=48, width=96, seed=0)
    return root


def make_folder_tree(root: Path, synthetic_root: Path, dense_splits=("val",)) -> Path:
    """The `folder` layout made from a synthetic tree: PNG frames (JPEG in the val split) named
    ``frame_<n>``, the sparse labels (every frame's in ``dense_splits``) stored as train id + 1
    with 0 void, declared by classes.yaml's ``ids`` and ``ignore``."""
    import shutil

    import cv2
    import yaml

    from etc.data.clips import list_clips, read_label
    from etc.data.labels import class_names, palette

    names = list(class_names("synthetic"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.yaml").write_text(yaml.safe_dump({
        "names": names, "ignore": 0, "ids": {i + 1: i for i in range(len(names))},
        "palette": palette("synthetic").tolist()}))
    for split in ("train", "val"):
        for clip in list_clips("synthetic", synthetic_root, split):
            for f in clip.frames:
                frames = root / "frames" / split / clip.name
                frames.mkdir(parents=True, exist_ok=True)
                if split == "val":
                    from etc.core.io import read_png

                    cv2.imwrite(str(frames / f"frame_{f.number}.jpg"), read_png(f.image, color=True)[..., ::-1])
                else:
                    shutil.copy(f.image, frames / f"frame_{f.number}.png")
                source = f.dense_label if split in dense_splits else f.label
                if source is not None:
                    ids = read_label(source, "synthetic")
                    write_png(root / "labels" / split / clip.name / f"frame_{f.number}.png",
                              np.where(ids == 255, 0, ids + 1).astype(np.uint8))
    return root


# The smoke preset run by Snakemake (the workflow tests)

RESULTS = "results dir/smoke"  # the smoke preset's folders, renamed to hold a space


def _spaced_smoke() -> dict:
    """The smoke preset with its data and results under folder names that hold a space."""
    import yaml

    config = yaml.safe_load((ROOT / "workflow/configs/smoke.yaml").read_text())
    config["dataset"]["root"] = "data dir/synthetic"
    config["results"] = RESULTS
    return config


def _snakemake(workdir: Path, *extra: str) -> list[str]:
    """`snakemake EXTRA` on the spaced smoke preset in ``workdir`` (its config beside it)."""
    import yaml

    config = workdir.parent / f"{workdir.name}.yaml"
    if not config.exists():
        config.write_text(yaml.safe_dump(_spaced_smoke(), sort_keys=False))
    return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(config), "--cores", "2", "--quiet", *extra]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """One whole smoke run, shared by every workflow test of a session (each smoke run is a
    minute of the suite): from folders with a space, every config key each subcommand reads
    logged (ETC_CONFIG_READS). Tests that change it work on a copy (:func:`_copy_of`)."""
    tmp = tmp_path_factory.mktemp("smoke")
    work = tmp / "a"
    env = {**os.environ, "ETC_CONFIG_READS": str(tmp / "reads")}
    res = subprocess.run(_snakemake(work, "all"), capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return work, tmp / "reads"


def _copy_of(work: Path, to: Path) -> Path:
    """A finished work folder copied with its Snakemake metadata and file times: up to date."""
    import shutil

    shutil.copytree(work, to, symlinks=True)
    return to
