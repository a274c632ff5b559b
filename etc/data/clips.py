"""One small abstraction over every dataset: clips of ordered frames, some of them labelled.

Frames are addressed by their *position* in the clip (0..T-1); ``number`` is the frame number
of the file name, which need not start at 0 (Cityscapes snippets run from the annotated frame
−19 to +10). Training uses pairs (labelled frame t, neighbour t+k); evaluation uses every
consecutive pair of every clip.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from etc.errors import EtcError

DATASETS = ("synthetic", "cityscapes", "camvid")

# Cityscapes: the annotated frame is the 20th of a 30-frame snippet.
CITYSCAPES_SNIPPET = (19, 10)
# CamVid: frames taken around each labelled frame from the extracted videos.
CAMVID_RADIUS = 5

_CS_NAME = re.compile(r"^(?P<city>[A-Za-z0-9-]+)_(?P<seq>\d{6})_(?P<frame>\d{6})_leftImg8bit\.png$")
_CS_LABEL = re.compile(r"^(?P<city>[A-Za-z0-9-]+)_(?P<seq>\d{6})_(?P<frame>\d{6})_gtFine_labelIds\.png$")
_CAMVID_NAME = re.compile(r"^(?P<seq>[A-Za-z0-9]+)_(?P<prefix>[A-Za-z]?)(?P<frame>\d+)\.png$")


@dataclass(frozen=True)
class Frame:
    number: int
    image: Path
    label: Path | None = None  # sparse ground truth (the labelled frames)
    dense_label: Path | None = None  # synthetic only: a label for every frame


@dataclass(frozen=True)
class Clip:
    name: str  # unique within a split, e.g. "frankfurt_000000_000294"
    split: str
    frames: tuple[Frame, ...]
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def labelled(self) -> tuple[int, ...]:
        return tuple(i for i, f in enumerate(self.frames) if f.label is not None)

    def __len__(self) -> int:
        return len(self.frames)


# --------------------------------------------------------------------------------------------
# Cityscapes layout (Cityscapes itself and the synthetic set)

def cityscapes_image_path(root: Path, split: str, city: str, seq: int, frame: int) -> Path:
    return root / "leftImg8bit_sequence" / split / city / f"{city}_{seq:06d}_{frame:06d}_leftImg8bit.png"


def cityscapes_label_path(root: Path, split: str, city: str, seq: int, frame: int) -> Path:
    return root / "gtFine" / split / city / f"{city}_{seq:06d}_{frame:06d}_gtFine_labelIds.png"


def synthetic_dense_path(root: Path, split: str, city: str, seq: int, frame: int, kind: str) -> Path:
    """``kind`` in {labelIds, flow_fw, flow_bw}: the synthetic set's per-frame extras."""
    return root / "dense" / split / city / f"{city}_{seq:06d}_{frame:06d}_{kind}.png"


def _scan_sequence_frames(root: Path, split: str) -> dict[tuple[str, int], dict[int, Path]]:
    folder = root / "leftImg8bit_sequence" / split
    if not folder.is_dir():
        raise EtcError(f"missing folder {folder} (split '{split}' of the Cityscapes-layout dataset at {root})")
    seqs: dict[tuple[str, int], dict[int, Path]] = defaultdict(dict)
    for path in sorted(folder.glob("*/*.png")):
        m = _CS_NAME.match(path.name)
        if m is None:
            continue
        seqs[(m["city"], int(m["seq"]))][int(m["frame"])] = path
    return seqs


def _scan_labels(root: Path, split: str) -> dict[tuple[str, int], list[int]]:
    folder = root / "gtFine" / split
    if not folder.is_dir():
        raise EtcError(f"missing folder {folder} (labels of split '{split}' at {root})")
    out: dict[tuple[str, int], list[int]] = defaultdict(list)
    for path in sorted(folder.glob("*/*_gtFine_labelIds.png")):
        m = _CS_LABEL.match(path.name)
        if m is not None:
            out[(m["city"], int(m["seq"]))].append(int(m["frame"]))
    return out


def list_cityscapes_clips(root: Path, split: str, strict: bool = True) -> list[Clip]:
    """One clip per annotated frame: its 30-frame snippet (annotated −19 … +10).

    ``strict``: a missing snippet frame is an error naming the file (check-data); otherwise the
    clip keeps the longest consecutive run around the annotated frame.
    """
    root = Path(root)
    frames = _scan_sequence_frames(root, split)
    labels = _scan_labels(root, split)
    before, after = CITYSCAPES_SNIPPET
    clips = []
    for (city, seq), annotated in sorted(labels.items()):
        available = frames.get((city, seq), {})
        for ann in sorted(annotated):
            numbers = _consecutive_run(available, ann, ann - before, ann + after, strict,
                                       lambda n, c=city, s=seq: cityscapes_image_path(root, split, c, s, n))
            clip_frames = tuple(
                Frame(n, available[n], cityscapes_label_path(root, split, city, seq, n) if n == ann else None)
                for n in numbers
            )
            clips.append(Clip(f"{city}_{seq:06d}_{ann:06d}", split, clip_frames))
    return clips


def list_synthetic_clips(root: Path, split: str, strict: bool = True) -> list[Clip]:
    """One clip per (city, sequence); every frame has a dense label, some a sparse one."""
    root = Path(root)
    frames = _scan_sequence_frames(root, split)
    labels = _scan_labels(root, split)
    clips = []
    for (city, seq), available in sorted(frames.items()):
        numbers = sorted(available)
        if strict:
            _require_consecutive(numbers, lambda n, c=city, s=seq: cityscapes_image_path(root, split, c, s, n))
        annotated = set(labels.get((city, seq), ()))
        clip_frames = tuple(
            Frame(
                n,
                available[n],
                cityscapes_label_path(root, split, city, seq, n) if n in annotated else None,
                synthetic_dense_path(root, split, city, seq, n, "labelIds"),
            )
            for n in numbers
        )
        clips.append(Clip(f"{city}_{seq:06d}", split, clip_frames, extra={"city": city, "seq": seq}))
    return clips


# --------------------------------------------------------------------------------------------
# CamVid (SegNet layout + neighbour frames extracted from the videos)

def camvid_frame_path(root: Path, seq: str, prefix: str, number: int, digits: int) -> Path:
    return root / "frames" / seq / f"{seq}_{prefix}{number:0{digits}d}.png"


def list_camvid_clips(root: Path, split: str, strict: bool = True, radius: int = CAMVID_RADIUS) -> list[Clip]:
    """One clip per labelled frame: the frames ``radius`` before and after it from ``frames/``.

    Labelled images live in ``{split}/`` with labels in ``{split}annot/`` (SegNet release);
    neighbour frames in ``frames/<seq>/<seq>_<frame>.png`` named like the labelled ones.
    """
    root = Path(root)
    img_dir, ann_dir = root / split, root / f"{split}annot"
    for d in (img_dir, ann_dir):
        if not d.is_dir():
            raise EtcError(f"missing folder {d} (split '{split}' of CamVid at {root})")
    clips = []
    for path in sorted(img_dir.glob("*.png")):
        m = _CAMVID_NAME.match(path.name)
        if m is None:
            continue
        seq, prefix, digits, ann = m["seq"], m["prefix"], len(m["frame"]), int(m["frame"])
        available = {ann: path}
        for n in range(ann - radius, ann + radius + 1):
            p = camvid_frame_path(root, seq, prefix, n, digits)
            if n != ann and p.is_file():
                available[n] = p
        numbers = _consecutive_run(available, ann, ann - radius, ann + radius, strict,
                                   lambda n, s=seq, p=prefix, d=digits: camvid_frame_path(root, s, p, n, d))
        clip_frames = tuple(Frame(n, available[n], ann_dir / path.name if n == ann else None) for n in numbers)
        clips.append(Clip(path.stem, split, clip_frames))
    return clips


# --------------------------------------------------------------------------------------------

def _require_consecutive(numbers: Sequence[int], path_of) -> None:
    for a, b in zip(numbers, numbers[1:], strict=False):
        if b != a + 1:
            raise EtcError(f"missing frame in clip: {path_of(a + 1)} (frames jump from {a} to {b})")


def _consecutive_run(available: dict[int, Path], centre: int, lo: int, hi: int, strict: bool, path_of) -> list[int]:
    if strict:
        for n in range(lo, hi + 1):
            if n not in available:
                raise EtcError(f"missing frame in clip: {path_of(n)}")
        return list(range(lo, hi + 1))
    a = centre
    while a - 1 >= lo and a - 1 in available:
        a -= 1
    b = centre
    while b + 1 <= hi and b + 1 in available:
        b += 1
    return list(range(a, b + 1))


LISTERS = {"synthetic": list_synthetic_clips, "cityscapes": list_cityscapes_clips, "camvid": list_camvid_clips}


def list_clips(dataset: str, root: str | Path, split: str, strict: bool = True) -> list[Clip]:
    """Clips of ``split``; ``strict`` turns any gap in a clip into an error naming the file."""
    if dataset not in LISTERS:
        raise EtcError(f"unknown dataset '{dataset}'; known: {', '.join(DATASETS)}")
    clips = LISTERS[dataset](Path(root), split, strict=strict)
    if not clips:
        raise EtcError(f"no labelled clips found for split '{split}' of {dataset} at {root}")
    return clips


def training_pairs(clips: Iterable[Clip], window: Sequence[int]) -> list[tuple[Clip, int, int]]:
    """(clip, t, t+k) for every labelled position t and every k of ``window`` inside the clip."""
    pairs = []
    for clip in clips:
        for t in clip.labelled:
            pairs.extend((clip, t, t + k) for k in window if k != 0 and 0 <= t + k < len(clip))
    return pairs


def consecutive_pairs(clips: Iterable[Clip]) -> list[tuple[Clip, int, int]]:
    """(clip, t, t+1) for every consecutive pair of every clip (temporal consistency)."""
    return [(clip, t, t + 1) for clip in clips for t in range(len(clip) - 1)]


def read_image(path: Path):
    """H×W×3 uint8 RGB; a missing or corrupt file is an EtcError naming it."""
    from etc.io import read_png

    img = read_png(path, color=True)
    if img is None:
        raise EtcError(f"cannot read image {path} (missing or corrupt); regenerate or re-extract it")
    return img


def read_label(path: Path, dataset: str):
    """H×W uint8 train ids (255 = ignore) from a stored label map."""
    from etc.data.labels import to_train_ids
    from etc.io import read_png

    raw = read_png(path, color=False)
    if raw is None:
        raise EtcError(f"cannot read label map {path} (missing or corrupt)")
    return to_train_ids(raw, dataset)
