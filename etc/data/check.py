"""``etc check-data``: verify a dataset tree before hours are spent on it, and write the
manifest (clips, frames, labelled positions, image size) that later stages read."""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from etc.data.clips import Clip, list_clips
from etc.errors import EtcError

log = logging.getLogger(__name__)

HOW_TO_GET = {
    "cityscapes": (
        "Cityscapes needs an account at cityscapes-dataset.com; download the packages "
        "leftImg8bit_sequence_trainvaltest.zip and gtFine_trainvaltest.zip (e.g. `csDownload "
        "leftImg8bit_sequence_trainvaltest gtFine_trainvaltest` from cityscapesscripts) and unzip "
        "both into ROOT, giving ROOT/leftImg8bit_sequence/{train,val}/<city>/"
        "<city>_<seq>_<frame>_leftImg8bit.png and ROOT/gtFine/{train,val}/<city>/"
        "<city>_<seq>_<frame>_gtFine_labelIds.png"
    ),
    "camvid": (
        "CamVid: take the SegNet release (ROOT/{train,val,test}/*.png and ROOT/{train,val,test}annot/"
        "*.png, 480×360, 11 classes + void 11) and extract the neighbour frames from the original "
        "30 Hz videos (0001TP, 0006R0, 0016E5, Seq05VD) resized to 480×360 into "
        "ROOT/frames/<seq>/<seq>_<frame>.png, named like the labelled frames (see "
        "workflow/configs/camvid.yaml)"
    ),
    "synthetic": "generate it with `etc make-synthetic --out ROOT` (or `snakemake --cores all`)",
}


@dataclass
class CheckReport:
    dataset: str
    root: Path
    splits: dict[str, list[Clip]]
    image_size: tuple[int, int]
    label_counts: dict[str, dict[int, int]] = field(default_factory=dict)

    def summary(self) -> str:
        h, w = self.image_size
        parts = [f"{self.dataset} at {self.root}: OK, images {h}×{w}"]
        for split, clips in self.splits.items():
            frames = sum(len(c) for c in clips)
            labelled = sum(len(c.labelled) for c in clips)
            parts.append(f"{split}: {len(clips)} clips, {frames} frames, {labelled} labelled")
        return "; ".join(parts)

    def manifest(self) -> dict:
        from etc.data.labels import class_names

        def rel(p: Path | None) -> str | None:
            return None if p is None else str(Path(p).relative_to(self.root))

        return {
            "dataset": self.dataset,
            "root": str(self.root),
            "image_size": list(self.image_size),
            "classes": list(class_names(self.dataset)),
            "splits": {
                split: [
                    {
                        "name": c.name,
                        "labelled": list(c.labelled),
                        "frames": [
                            {"number": f.number, "image": rel(f.image), "label": rel(f.label),
                             "dense_label": rel(f.dense_label)}
                            for f in c.frames
                        ],
                        **({"extra": c.extra} if c.extra else {}),
                    }
                    for c in clips
                ]
                for split, clips in self.splits.items()
            },
            "label_pixel_counts": self.label_counts,
        }


def png_size(path: Path) -> tuple[int, int]:
    """(H, W) from the PNG header; a file that is not a complete PNG is an EtcError."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
            fh.seek(-12, 2)
            tail = fh.read(12)
    except OSError as exc:
        raise EtcError(f"cannot read {path}: {exc}") from None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR" or tail[4:8] != b"IEND":
        raise EtcError(f"corrupt or truncated PNG: {path}; re-extract or regenerate it")
    w, h = struct.unpack(">II", head[16:24])
    return h, w


def _decode(path: Path, color: bool) -> np.ndarray:
    from etc.io import read_png

    img = read_png(path, color=color)
    if img is None:
        raise EtcError(f"corrupt PNG (cannot be decoded): {path}; re-extract or regenerate it")
    return img


def valid_label_values(dataset: str) -> frozenset[int]:
    if dataset == "camvid":
        return frozenset(range(12))  # 11 classes + void
    from etc.data.labels import cityscapes_label_ids

    return cityscapes_label_ids()


def check_dataset(dataset: str, root, splits=("train", "val"), manifest=None, deep: bool = True) -> CheckReport:
    """Check ``root`` and return a report; raise EtcError at the first problem, naming the path.

    ``deep`` decodes every image (finds corrupt files); otherwise images are checked by header
    only (size, truncation) while every label map is still decoded (label ids).
    """
    from tqdm import tqdm

    root = Path(root)
    if not root.is_dir():
        raise EtcError(f"dataset root {root} does not exist; {HOW_TO_GET[dataset]}")
    found: dict[str, list[Clip]] = {}
    for split in splits:
        try:
            found[split] = list_clips(dataset, root, split, strict=True)
        except EtcError as exc:
            if "missing folder" in str(exc):
                raise EtcError(f"{exc}. Expected layout: {HOW_TO_GET[dataset]}") from None
            raise
    allowed = valid_label_values(dataset)
    size: tuple[int, int] | None = None
    counts: dict[str, dict[int, int]] = {}
    total = sum(len(c) + len(c.labelled) for clips in found.values() for c in clips)
    with tqdm(total=total, desc=f"check {dataset}", unit="file", disable=None) as bar:
        for split, clips in found.items():
            hist = np.zeros(256, np.int64)
            for clip in clips:
                for frame in clip.frames:
                    hw = png_size(frame.image)
                    if deep:
                        hw = _decode(frame.image, color=True).shape[:2]
                    size = size or hw
                    if hw != size:
                        raise EtcError(f"wrong image size {hw[0]}×{hw[1]} in {frame.image}; expected {size[0]}×{size[1]} like the other frames")
                    bar.update()
                    labels = [frame.label] if frame.label is not None else []
                    if frame.dense_label is not None and frame.label is not None:
                        labels.append(frame.dense_label)
                    for lp in labels:
                        if not Path(lp).is_file():
                            raise EtcError(f"missing label map {lp}")
                        lab = _decode(lp, color=False)
                        if lab.shape[:2] != size:
                            raise EtcError(f"wrong label size {lab.shape[0]}×{lab.shape[1]} in {lp}; expected {size[0]}×{size[1]}")
                        values = np.unique(lab)
                        bad = sorted(set(values.tolist()) - allowed)
                        if bad:
                            raise EtcError(f"unknown label id(s) {bad} in {lp}; {dataset} allows {min(allowed)}..{max(allowed)}")
                        if lp == frame.label:
                            hist += np.bincount(lab.ravel(), minlength=256)
                    if frame.label is not None:
                        bar.update()
            counts[split] = {int(i): int(n) for i, n in enumerate(hist) if n}
    report = CheckReport(dataset, root, found, size or (0, 0), counts)
    if manifest is not None:
        from etc.io import write_json

        write_json(manifest, report.manifest())
    return report


def load_manifest(path) -> dict:
    """Read a manifest written by check-data; clips are rebuilt as :class:`Clip` objects."""
    from etc.data.clips import Frame

    path = Path(path)
    if not path.is_file():
        raise EtcError(f"manifest {path} not found; run `etc check-data ... --manifest {path}` first")
    data = json.loads(path.read_text())
    root = Path(data["root"])

    def ab(p):
        return None if p is None else root / p

    data["clips"] = {
        split: [
            Clip(c["name"], split, tuple(Frame(f["number"], ab(f["image"]), ab(f["label"]), ab(f["dense_label"])) for f in c["frames"]), c.get("extra", {}))
            for c in clips
        ]
        for split, clips in data["splits"].items()
    }
    return data
