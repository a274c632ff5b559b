"""CamVid: the SegNet release (labelled 480×360 stills at 1 Hz) plus neighbour frames extracted
from the 30 Hz videos.

Each labelled still is the centre of a clip of up to ``RADIUS`` frames either side, taken from
``frames/<sequence folder>/`` and named like the stills (``0001TP_006689.png``). The folder is
the sequence name (``frames/0001TP/``) or the common extraction's ``seq<NN><code>``
(``frames/seq01TP/``, ``seq05VD``, ``seq06R0``, ``seq16E5``). Video frames of another size than
the stills (the videos are 960×720) are resized to the still's size when read, with
``cv2.INTER_AREA`` (:mod:`etc.data.decode`); the labelled position is the still itself, so its
label is never resized. A still near the start or end of its sequence has fewer neighbours:
that is the data's shape, not an error — the clip is shorter and the pairs reaching past it
are dropped (``check-data`` counts them).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from etc.core.errors import EtcError
from etc.data.frames import Clip, Frame, SizedPath, consecutive_run
from etc.data.label_table import LabelTable, make_lut
from etc.data.sets import DatasetSpec

RADIUS = 5  # frames taken either side of each labelled still

# SegNet release: annotation value = index in this list, 11 = void. Mapped by name, so a source
# with another order (e.g. the ETC reference code's) can be remapped explicitly (camvid_lut).
CLASSES = (
    "sky", "building", "pole", "road", "sidewalk", "tree",
    "sign", "fence", "car", "pedestrian", "bicyclist",
)
PALETTE = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (0, 0, 192), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)
VOID = 11

_NAME = re.compile(r"^(?P<seq>[A-Za-z0-9]+)_(?P<prefix>[A-Za-z]?)(?P<frame>\d+)\.png$")


def camvid_lut(source_order: tuple[str, ...] = CLASSES):
    """LUT from annotation values in ``source_order`` to our train ids (by class name)."""
    return make_lut({value: CLASSES.index(name) for value, name in enumerate(source_order)})


@functools.cache
def label_table() -> LabelTable:
    return LabelTable(CLASSES, PALETTE, camvid_lut(), frozenset(range(VOID + 1)))


def folder_key(name: str) -> str:
    """``0001TP``, ``seq01TP`` -> ``01tp``; ``Seq05VD``, ``seq05VD`` -> ``05vd``: one key for
    both namings of a sequence's frame folder."""
    return re.sub(r"^(seq|00)", "", name, flags=re.IGNORECASE).lower()


def frame_path(folder: Path, seq: str, prefix: str, number: int, digits: int) -> Path:
    return folder / f"{seq}_{prefix}{number:0{digits}d}.png"


class _Frames:
    """The frame folders under ``frames/``, each scanned once: sequence -> {number: path}."""

    def __init__(self, root: Path, strict: bool):
        self.root, self.strict = root / "frames", strict
        self.folders: dict[str, list[Path]] = {}
        if self.root.is_dir():
            for d in sorted(p for p in self.root.iterdir() if p.is_dir()):
                self.folders.setdefault(folder_key(d.name), []).append(d)
        self.cache: dict[tuple[str, str], tuple[Path | None, dict[int, Path]]] = {}

    def folder(self, seq: str) -> Path | None:
        found = self.folders.get(folder_key(seq), [])
        if len(found) > 1 and self.strict:
            raise EtcError(f"the frames of sequence {seq} are in {len(found)} folders "
                           f"({', '.join(str(d) for d in found)}); keep one")
        exact = [d for d in found if d.name == seq]
        return (exact or found or [None])[0]

    def of(self, seq: str, prefix: str) -> tuple[Path | None, dict[int, Path]]:
        """(folder, {frame number: path}) of one sequence."""
        if (seq, prefix) not in self.cache:
            folder, numbers = self.folder(seq), {}
            if folder is not None:
                for p in sorted(folder.glob(f"{seq}_*.png")):
                    m = _NAME.match(p.name)
                    if m is not None and m["seq"] == seq and m["prefix"] == prefix:
                        numbers[int(m["frame"])] = p
            self.cache[(seq, prefix)] = (folder, numbers)
        return self.cache[(seq, prefix)]


def list_clips(root: Path, split: str, strict: bool = True, radius: int = RADIUS,
               window: tuple[int, ...] | None = None) -> list[Clip]:
    """One clip per labelled still of ``{split}/`` (labels in ``{split}annot/``).

    ``strict`` (check-data): a missing frames folder, a still outside the extracted frames, or a
    gap inside a clip is an error naming the path — with ``window`` (dataset.window) only within
    the offsets it reaches, so an extraction of ±4 frames serves a window reaching +3; otherwise
    (and beyond the window) the clip keeps the longest run of available frames around the still. Either way a clip stops at its sequence's first and last
    extracted frame, and ``extra["absent"]`` counts the neighbours it lacks.
    """
    from etc.data.decode import image_size

    root = Path(root)
    img_dir, ann_dir = root / split, root / f"{split}annot"
    for d in (img_dir, ann_dir):
        if not d.is_dir():
            raise EtcError(f"missing folder {d} (split '{split}' of CamVid at {root})")
    videos = _Frames(root, strict)
    clips = []
    for still in sorted(img_dir.glob("*.png")):
        m = _NAME.match(still.name)
        if m is None:
            continue
        seq, prefix, digits, ann = m["seq"], m["prefix"], len(m["frame"]), int(m["frame"])
        folder, numbers = videos.of(seq, prefix)
        if folder is None or not numbers:
            if strict:
                where = (f"missing folder {root / 'frames' / seq} (or {root / 'frames' / ('seq' + folder_key(seq).upper())})"
                         if folder is None else f"no frames named like {seq}_{prefix}{ann:0{digits}d}.png in {folder}")
                raise EtcError(f"{where}: the neighbour frames of {still}")
            lo = hi = ann
        else:
            first, last = min(numbers), max(numbers)
            if strict and not first <= ann <= last:
                raise EtcError(f"labelled frame {still} (number {ann}) lies outside the frames extracted "
                               f"into {folder} ({first}..{last}); check the frame numbering of the "
                               f"extraction (see workflow/configs/camvid.yaml)")
            lo, hi = max(ann - radius, first), min(ann + radius, last)
        size = image_size(still)
        available = {n: SizedPath(p, size) for n, p in numbers.items()}
        available[ann] = still
        path_of = lambda n, f=folder, s=seq, p=prefix, d=digits: frame_path(f, s, p, n, d)  # noqa: E731
        reach = max(map(abs, window)) if window else radius
        if strict and reach < radius:  # the frames the window reads must be there; the rest may not
            consecutive_run(available, ann, max(min(lo, ann), ann - reach), min(max(hi, ann), ann + reach), True, path_of)
        run = consecutive_run(available, ann, min(lo, ann), max(hi, ann), strict and reach >= radius, path_of)
        clip_frames = tuple(Frame(n, available[n], ann_dir / still.name if n == ann else None) for n in run)
        absent = 2 * radius + 1 - len(run)
        clips.append(Clip(still.stem, split, clip_frames, extra={"absent": absent} if absent else {}))
    return clips


HOW_TO_GET = (
    "CamVid: take the SegNet release (ROOT/{train,val,test}/*.png and ROOT/{train,val,test}annot/"
    "*.png, 480×360, 11 classes + void 11) and extract the frames of the original 30 Hz videos "
    "(0001TP, 0006R0, 0016E5, Seq05VD) into ROOT/frames/<seq>/ or ROOT/frames/seq<NN><code>/ "
    "(seq01TP, seq05VD, seq06R0, seq16E5), named like the labelled frames "
    "(<seq>_<frame>.png, e.g. 0001TP_006689.png); frames at 960×720 are resized to 480×360 when "
    "read (see workflow/configs/camvid.yaml)"
)

SPEC = DatasetSpec(
    name="camvid",
    frame_size=(360, 480),
    list_clips=list_clips,
    labels=label_table,
    how_to_get=HOW_TO_GET,
    frame_naming=("stills <split>/<seq>_<frame>.png with labels <split>annot/<same name>; neighbours "
                  f"frames/<seq or seqNNcode>/<seq>_<frame>.png; one clip per still, ±{RADIUS} frames, "
                  "cut at the sequence's first and last extracted frame"),
    label_convention=("SegNet annotation values 0..10 = " + ", ".join(CLASSES) +
                      f"; {VOID} = void (ignored)"),
    splits=("train", "val", "test"),
)
