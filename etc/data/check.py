"""``etc check-data``: verify a dataset tree before hours are spent on it, and write the
manifest (clips, frames, labelled positions, image size): the record of the check, on which every
later rule depends (docs/design.md §5)."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from etc.core.errors import EtcError
from etc.data.clips import list_clips
from etc.data.decode import image_size, read_label_map, same_aspect
from etc.data.frames import Clip, Frame, SizedPath, copied_frame
from etc.data.labels import to_train_ids
from etc.data.sets import get_spec

log = logging.getLogger(__name__)


@dataclass
class CheckReport:
    dataset: str
    root: Path
    splits: dict[str, list[Clip]]
    image_size: tuple[int, int]
    label_counts: dict[str, dict[int, int]] = field(default_factory=dict)
    resized: dict[tuple[int, int], int] = field(default_factory=dict)  # stored (H, W) -> frames

    def summary(self) -> str:
        h, w = self.image_size
        parts = [f"{self.dataset} at {self.root}: OK, images {h}×{w}"]
        for split, clips in self.splits.items():
            frames = sum(len(c) for c in clips)
            labelled = sum(len(c.labelled) for c in clips)
            text = f"{split}: {len(clips)} clips, {frames} frames, {labelled} labelled"
            cut = [c.extra["absent"] for c in clips if c.extra.get("absent")]
            if cut:
                text += (f" ({len(cut)} of them cut short at a sequence start or end: {sum(cut)} "
                         f"neighbour frames do not exist, pairs reaching them are dropped)")
            parts.append(text)
        for (sh, sw), n in self.resized.items():
            parts.append(f"{n} frames stored at {sh}×{sw} are resized to {h}×{w} when read (INTER_AREA)")
        return "; ".join(parts)

    def manifest(self) -> dict:
        from etc.data.labels import class_names

        def rel(p: Path | None) -> str | None:
            return None if p is None else str(Path(p).relative_to(self.root))

        def frame(f: Frame) -> dict:
            entry = {"number": f.number, "image": rel(f.image), "label": rel(f.label), "dense_label": rel(f.dense_label)}
            if getattr(f.image, "size", None) is not None:
                entry["size"] = list(f.image.size)
            return entry

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
                        "frames": [frame(f) for f in c.frames],
                        **({"extra": c.extra} if c.extra else {}),
                    }
                    for c in clips
                ]
                for split, clips in self.splits.items()
            },
            "label_pixel_counts": self.label_counts,
        }


def _decoded_size(path: Path) -> tuple[int, int]:
    from etc.core.io import read_png

    img = read_png(path, color=True)
    if img is None:
        raise EtcError(f"corrupt image (cannot be decoded): {path}; re-extract or regenerate it")
    return img.shape[:2]


def _used_size(frame: Frame, deep: bool, resized: dict) -> tuple[int, int]:
    """The size the frame's image is used at: as stored, or the size a SizedPath is resized to
    (only a change of scale; the stored size is counted in ``resized``)."""
    stored = image_size(frame.image)
    if deep:
        stored = _decoded_size(frame.image)
    target = getattr(frame.image, "size", None)
    if target is None or stored == target:
        return stored
    if not same_aspect(stored, target):
        raise EtcError(f"wrong image size {stored[0]}×{stored[1]} in {frame.image}: it is resized to "
                       f"the labelled frame's {target[0]}×{target[1]}, which needs the same aspect ratio; "
                       f"re-extract it at {target[0]}×{target[1]} or a multiple")
    resized[stored] = resized.get(stored, 0) + 1
    return target


def _fingerprint(path: Path) -> tuple:
    """Size and the bytes at both ends: equal for copies of one file, in two reads of 64 KB."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(1 << 16)
        f.seek(max(0, size - (1 << 16)))
        tail = f.read()
    return size, hashlib.blake2b(head + tail, digest_size=16).digest()


def _check_unique(image: Path, seen: dict) -> None:
    """A frame file whose content another frame has already shown: a folder copied under a
    second name would otherwise enter every split twice."""
    import filecmp

    key = _fingerprint(Path(image))
    first = seen.setdefault(key, Path(image))
    if first != Path(image) and filecmp.cmp(first, image, shallow=False):
        raise copied_frame(Path(image), first)


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_lossless(label: Path) -> None:
    with open(label, "rb") as f:
        head = f.read(8)
    if head != PNG_MAGIC:
        from etc.core.filekind import describe

        raise EtcError(f"label map {label} is {describe(label)}, not a PNG: label maps must be stored "
                       f"losslessly (PNG); re-export it as PNG from the original ids")


def check_dataset(dataset: str, root, splits=("train", "val"), manifest=None, deep: bool = True,
                  window=None) -> CheckReport:
    """Check ``root`` and return a report; raise EtcError at the first problem, naming the path.

    ``deep`` decodes every image (finds corrupt files); otherwise images are checked by header
    only (size, truncation) while every label map is still decoded (label ids).
    """
    from tqdm import tqdm

    spec = get_spec(dataset)
    if not splits:
        raise EtcError("no split to check: name at least one (e.g. --splits train,val)")
    root = Path(root)
    if not root.is_dir():
        raise EtcError(f"dataset root {root} does not exist; {spec.how_to_get}")
    found: dict[str, list[Clip]] = {}
    for split in splits:
        try:
            found[split] = list_clips(dataset, root, split, strict=True, window=window)
        except EtcError as exc:
            if str(exc).startswith(("missing folder", "missing file")):  # the layout itself is wrong
                raise EtcError(f"{exc}. Expected layout: {spec.how_to_get}") from None
            raise
        if all(len(c) == 1 for c in found[split]):
            raise EtcError(f"split '{split}' of {dataset} at {root}: each of its {len(found[split])} clips "
                           f"is a single frame, so there is no pair to train or to measure consistency "
                           f"on. Expected layout: {spec.how_to_get}")
    size: tuple[int, int] | None = None
    seen: dict[tuple, Path] = {}
    counts: dict[str, dict[int, int]] = {}
    resized: dict[tuple[int, int], int] = {}
    total = sum(len(c) + len(c.labelled) for clips in found.values() for c in clips)
    with tqdm(total=total, desc=f"check {dataset}", unit="file", disable=None) as bar:
        for split, clips in found.items():
            hist = np.zeros(256, np.int64)
            for clip in clips:
                for frame in clip.frames:
                    hw = _used_size(frame, deep, resized)
                    size = size or hw
                    if hw != size:
                        raise EtcError(f"wrong image size {hw[0]}×{hw[1]} in {frame.image}; expected {size[0]}×{size[1]} like the other frames")
                    bar.update()
                    _check_unique(frame.image, seen)
                    labels = [frame.label] if frame.label is not None else []
                    if frame.dense_label is not None and frame.dense_label != frame.label:
                        labels.append(frame.dense_label)  # evaluation reads every one (mVC)
                    for lp in labels:
                        if not Path(lp).is_file():
                            raise EtcError(f"missing label map {lp}" + (" (a dense label: mVC reads one per frame)"
                                                                        if lp == frame.dense_label else ""))
                        _check_lossless(Path(lp))
                        raw = read_label_map(lp)
                        if raw.shape[:2] != hw:
                            raise EtcError(f"wrong label size {raw.shape[0]}×{raw.shape[1]} in {lp}; its image "
                                           f"{frame.image} is {hw[0]}×{hw[1]} (labels are never resized)")
                        to_train_ids(raw, dataset, source=lp)  # unknown values: an error naming them
                        if lp == frame.label:
                            hist += np.bincount(raw.ravel().astype(np.intp), minlength=256)[:256]
                    if frame.label is not None:
                        bar.update()
            counts[split] = {int(i): int(n) for i, n in enumerate(hist) if n}
    report = CheckReport(dataset, root, found, size or (0, 0), counts, resized)
    if manifest is not None:
        from etc.core.io import write_json

        write_json(manifest, report.manifest())
    return report


def load_manifest(path) -> dict:
    """Read a manifest written by check-data; clips are rebuilt as :class:`Clip` objects."""
    path = Path(path)
    if not path.is_file():
        raise EtcError(f"manifest {path} not found; run `etc check-data ... --manifest {path}` first")
    data = json.loads(path.read_text())
    root = Path(data["root"])

    def ab(p):
        return None if p is None else root / p

    def image(f):
        return SizedPath(root / f["image"], f["size"]) if f.get("size") else root / f["image"]

    data["clips"] = {
        split: [
            Clip(c["name"], split, tuple(Frame(f["number"], image(f), ab(f["label"]), ab(f["dense_label"])) for f in c["frames"]), c.get("extra", {}))
            for c in clips
        ]
        for split, clips in data["splits"].items()
    }
    return data
