"""The one abstraction over every dataset: clips of ordered frames, some of them labelled.

Frames are addressed by their *position* in the clip (0..T-1); ``number`` is the frame number
of the file name, which need not start at 0 (Cityscapes snippets run from the annotated frame
−19 to +10). This module knows no dataset: the listers in :mod:`etc.data.sets` build these.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from etc.core.errors import EtcError


class SizedPath(type(Path())):
    """A frame stored at another size than the one it is used at — CamVid's video frames,
    extracted at 960×720 beside the 480×360 labelled stills: :func:`etc.data.decode.read_image`
    resizes it to ``size`` (H, W). For everything else it is the plain path (equal to it, same
    hash and str); paths derived from it are plain, and it pickles with its size (DataLoader
    workers)."""

    size: tuple[int, int] | None = None

    def __new__(cls, path, size: tuple[int, int] | None = None):
        self = super().__new__(cls, path)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        return self

    def __init__(self, path, size: tuple[int, int] | None = None):
        if sys.version_info >= (3, 12):  # pathlib takes its segments in __init__ from 3.12 on
            super().__init__(path)

    def with_segments(self, *segments):  # 3.12+: `/`, .parent, ... give plain paths
        return Path(*segments)

    def __reduce__(self):
        return SizedPath, (str(self), self.size)


@dataclass(frozen=True)
class Frame:
    number: int
    image: Path  # a SizedPath where the image is used at another size than it is stored at
    label: Path | None = None  # sparse ground truth (the labelled frames)
    dense_label: Path | None = None  # a label for every frame (synthetic): enables mVC


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


PathOf = Callable[[int], Path]  # frame number -> the file it should be in


def require_consecutive(numbers: Sequence[int], path_of: PathOf) -> None:
    """Every number between the first and the last is present (else: the first missing file)."""
    for a, b in zip(numbers, numbers[1:], strict=False):
        if b != a + 1:
            raise EtcError(f"missing frame in clip: {path_of(a + 1)} (frames jump from {a} to {b})")


def consecutive_run(available, centre: int, lo: int, hi: int, strict: bool, path_of: PathOf) -> list[int]:
    """Frame numbers ``lo..hi`` around ``centre``: all of them (``strict``; a missing one is an
    error naming its file), or the longest run of available numbers through ``centre``."""
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


def copied_frame(image: Path, first: Path) -> EtcError:
    """The error for a frame file with the content of an earlier one: a folder copied under a
    second name would otherwise enter a split twice."""
    return EtcError(f"{image} has the same content as {first}: the dataset holds a copy of a frame "
                    f"(a clip or city folder duplicated under another name?); remove the copy")


def copy_among(image: Path, others) -> Path | None:
    """The first of ``others`` with the bytes of ``image`` (None when none has them): asked only
    on the way to an error, to name a copy for what it is."""
    import filecmp

    size = Path(image).stat().st_size
    return next((o for o in others if o != image and Path(o).stat().st_size == size
                 and filecmp.cmp(o, image, shallow=False)), None)
