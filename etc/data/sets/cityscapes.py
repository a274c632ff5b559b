"""Cityscapes: one 30-frame ``leftImg8bit_sequence`` snippet per gtFine-annotated frame.

The annotated frame is the 20th of its snippet (annotated −19 … +10); frame numbers are those
of the file names and need not start at 0 (``frankfurt_000000_000294`` runs 000275..000304).
Label ids → the 19 train ids as ``cityscapesscripts`` defines them. The synthetic set reuses
this layout (:mod:`etc.data.sets.synthetic`).
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from pathlib import Path

from etc.core.errors import EtcError
from etc.data.frames import Clip, Frame, consecutive_run, copied_frame, copy_among
from etc.data.label_table import IGNORE, LabelTable, make_lut
from etc.data.sets import DatasetSpec

SNIPPET = (19, 10)  # frames before / after the annotated one

_IMAGE = re.compile(r"^(?P<city>[A-Za-z0-9-]+)_(?P<seq>\d{6})_(?P<frame>\d{6})_leftImg8bit\.png$")
_LABEL = re.compile(r"^(?P<city>[A-Za-z0-9-]+)_(?P<seq>\d{6})_(?P<frame>\d{6})_gtFine_labelIds\.png$")


def image_path(root: Path, split: str, city: str, seq: int, frame: int) -> Path:
    return root / "leftImg8bit_sequence" / split / city / f"{city}_{seq:06d}_{frame:06d}_leftImg8bit.png"


def label_path(root: Path, split: str, city: str, seq: int, frame: int) -> Path:
    return root / "gtFine" / split / city / f"{city}_{seq:06d}_{frame:06d}_gtFine_labelIds.png"


def scan_sequence_frames(root: Path, split: str, strict: bool = False) -> dict[tuple[str, int], dict[int, Path]]:
    """(city, seq) -> {frame number: image path} of ``leftImg8bit_sequence/<split>``;
    ``strict``: a file outside its city's folder is an error (:func:`_in_city_folder`)."""
    folder = root / "leftImg8bit_sequence" / split
    if not folder.is_dir():
        raise EtcError(f"missing folder {folder} (split '{split}' of the Cityscapes-layout dataset at {root})")
    seqs: dict[tuple[str, int], dict[int, Path]] = defaultdict(dict)
    for path in sorted(folder.glob("*/*.png")):
        m = _IMAGE.match(path.name)
        if m is not None:
            if strict:
                _in_city_folder(path, m["city"])
            seqs[(m["city"], int(m["seq"]))][int(m["frame"])] = path
    return seqs


def scan_labels(root: Path, split: str, strict: bool = False) -> dict[tuple[str, int], list[int]]:
    """(city, seq) -> annotated frame numbers of ``gtFine/<split>``; ``strict`` as for
    :func:`scan_sequence_frames`."""
    folder = root / "gtFine" / split
    if not folder.is_dir():
        raise EtcError(f"missing folder {folder} (labels of split '{split}' at {root})")
    out: dict[tuple[str, int], list[int]] = defaultdict(list)
    for path in sorted(folder.glob("*/*_gtFine_labelIds.png")):
        m = _LABEL.match(path.name)
        if m is not None:
            if strict:
                _in_city_folder(path, m["city"])
            out[(m["city"], int(m["seq"]))].append(int(m["frame"]))
    return out


def _in_city_folder(path: Path, city: str) -> None:
    """Files are keyed by the city their name gives: one in another city's folder (a city folder
    copied or renamed) would silently stand in for, or be shadowed by, the real one."""
    if path.parent.name != city:
        raise EtcError(f"{path} names city '{city}' but lies in folder '{path.parent.name}': a city folder "
                       f"copied or renamed? Each file of <city>/ starts with '<city>_'; remove the copy or "
                       f"give the folder its city's name")


def list_clips(root: Path, split: str, strict: bool = True) -> list[Clip]:
    """One clip per annotated frame: its 30-frame snippet.

    ``strict``: a missing snippet frame is an error naming the file (check-data), and so are
    sequence frames in no annotated frame's snippet (their label map is missing) and files
    outside their city's folder; otherwise the clip keeps the longest consecutive run around the
    annotated frame.
    """
    root = Path(root)
    frames = scan_sequence_frames(root, split, strict)
    labels = scan_labels(root, split, strict)
    before, after = SNIPPET
    clips = []
    for (city, seq), annotated in sorted(labels.items()):
        available = frames.get((city, seq), {})
        for ann in sorted(annotated):
            numbers = consecutive_run(available, ann, ann - before, ann + after, strict,
                                      lambda n, c=city, s=seq: image_path(root, split, c, s, n))
            clip_frames = tuple(
                Frame(n, available[n], label_path(root, split, city, seq, n) if n == ann else None)
                for n in numbers
            )
            clips.append(Clip(f"{city}_{seq:06d}_{ann:06d}", split, clip_frames))
    if strict:
        _no_unlabelled_frames(root, split, frames, clips)
    return clips


def _no_unlabelled_frames(root: Path, split: str, frames: dict, clips: list[Clip]) -> None:
    """Every sequence frame lies in an annotated frame's snippet: frames that lie in none have
    lost the label map of their snippet (a Cityscapes snippet is the annotated frame −19 … +10),
    unless they are copies of labelled frames (a folder duplicated), which is named instead."""
    covered = {f.image for c in clips for f in c.frames}
    for (city, seq), available in sorted(frames.items()):
        orphans = sorted(n for n, path in available.items() if path not in covered)
        if orphans:
            first = copy_among(available[orphans[0]], sorted(covered))
            if first is not None:
                raise copied_frame(available[orphans[0]], first)
            ann = orphans[0] + SNIPPET[0]
            raise EtcError(f"frames {orphans[0]}…{orphans[-1]} of {city}_{seq:06d} in {image_path(root, split, city, seq, orphans[0]).parent} "
                           f"belong to no labelled frame: missing label map {label_path(root, split, city, seq, ann)} "
                           f"(the 20th frame of a snippet is the labelled one); restore it or remove those frames")


@functools.cache
def label_table() -> LabelTable:
    """Label ids 0..33 → 19 train ids, names and colours, from cityscapesscripts."""
    from cityscapesscripts.helpers.labels import labels

    mapping: dict[int, int] = {}
    names: dict[int, str] = {}
    colors: dict[int, tuple] = {}
    for lab in labels:
        if 0 <= lab.id < 256 and 0 <= lab.trainId < IGNORE:
            mapping[lab.id] = lab.trainId
            names[lab.trainId] = lab.name
            colors[lab.trainId] = tuple(lab.color)
    n = len(names)
    return LabelTable(
        classes=tuple(names[i] for i in range(n)),
        palette=tuple(colors[i] for i in range(n)),
        lut=make_lut(mapping),
        values=frozenset(lab.id for lab in labels if lab.id >= 0),
    )


HOW_TO_GET = (
    "Cityscapes needs an account at cityscapes-dataset.com; download the packages "
    "leftImg8bit_sequence_trainvaltest.zip and gtFine_trainvaltest.zip (e.g. `csDownload "
    "leftImg8bit_sequence_trainvaltest gtFine_trainvaltest` from cityscapesscripts) and unzip "
    "both into ROOT, giving ROOT/leftImg8bit_sequence/{train,val}/<city>/"
    "<city>_<seq>_<frame>_leftImg8bit.png and ROOT/gtFine/{train,val}/<city>/"
    "<city>_<seq>_<frame>_gtFine_labelIds.png"
)

SPEC = DatasetSpec(
    name="cityscapes",
    frame_size=(1024, 2048),
    list_clips=list_clips,
    labels=label_table,
    how_to_get=HOW_TO_GET,
    frame_naming=("leftImg8bit_sequence/<split>/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png; "
                  "one clip per gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png: the "
                  "annotated frame −19 … +10"),
    label_convention=("gtFine label ids 0..33 (cityscapesscripts' `labels`), mapped to its 19 train "
                      "ids; ids with train id 255/-1 (void, license plate, ...) are ignored"),
)
