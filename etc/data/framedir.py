"""Folders of numbered frames — ``<clip>/<frame>.png`` trees of predictions, frames and labels
(``etc score``, the ``folder`` dataset) and a folder given to ``etc segment-video``.

A frame's number is the last run of digits in its file name that stands alone between
separators (``city_000000_000625_leftImg8bit.png`` → 625), else its last run of digits
(``img00012.jpg`` → 12), so ``frame_9.png`` sorts before ``frame_10.png`` whatever the padding.
"""

from __future__ import annotations

import re
from pathlib import Path

from etc.core.errors import EtcError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_TOKEN = re.compile(r"(?<![A-Za-z0-9])\d+(?![A-Za-z0-9])")
_DIGITS = re.compile(r"\d+")


def frame_number(path: Path) -> int | None:
    stem = Path(path).stem
    found = _TOKEN.findall(stem) or _DIGITS.findall(stem)
    return int(found[-1]) if found else None


def numbered_frames(folder: str | Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> dict[int, Path]:
    """frame number → file of ``folder`` (sorted by number); an empty folder, a name without a
    number or two files of one number are errors naming them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EtcError(f"{folder} is not a folder of frames")
    found: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in suffixes or not path.is_file():
            continue
        n = frame_number(path)
        if n is None:
            raise EtcError(f"{path}: no frame number in the name; name frames like 000012{path.suffix}")
        if n in found:
            raise EtcError(f"{found[n]} and {path} have the same frame number {n}; keep one")
        found[n] = path
    if not found:
        raise EtcError(f"{folder} holds no frames ({', '.join(IMAGE_SUFFIXES)}); check the path")
    return dict(sorted(found.items()))


def clip_folders(root: str | Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES, what: str = "frames") -> dict[str, dict[int, Path]]:
    """clip name → :func:`numbered_frames` of every sub-folder of ``root`` (``<clip>/<frame>``)."""
    root = Path(root)
    if not root.is_dir():
        raise EtcError(f"{what} folder {root} not found")
    clips = {d.name: numbered_frames(d, suffixes) for d in sorted(root.iterdir()) if d.is_dir()}
    if not clips:
        raise EtcError(f"{what} folder {root} has no clip sub-folders; the layout is {root}/<clip>/<frame>.png")
    return clips
