"""Clips by dataset name, and the frame pairs training and evaluation use.

Training uses pairs (labelled frame t, neighbour t+k); evaluation uses every consecutive pair
of every clip. What a clip is per dataset lives in :mod:`etc.data.sets`; the types in
:mod:`etc.data.frames`; reading files in :mod:`etc.data.decode` (all re-exported here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from etc.core.errors import EtcError
from etc.data.decode import read_image, read_label
from etc.data.frames import Clip, Frame, SizedPath
from etc.data.sets import dataset_names, get_spec
from etc.data.sets.cityscapes import image_path as cityscapes_image_path
from etc.data.sets.cityscapes import label_path as cityscapes_label_path
from etc.data.sets.synthetic import dense_path as synthetic_dense_path

__all__ = [
    "Clip", "Frame", "SizedPath", "cityscapes_image_path", "cityscapes_label_path", "consecutive_pairs",
    "dataset_names", "list_clips", "read_image", "read_label", "synthetic_dense_path", "third_frame",
    "training_pairs",
]


def list_clips(dataset: str, root: str | Path, split: str, strict: bool = True,
               window: Sequence[int] | None = None) -> list[Clip]:
    """Clips of ``split``; ``strict`` turns any gap in a clip into an error naming the file.
    ``window`` (dataset.window): where a set cuts clips around a labelled frame (CamVid), strict
    demands only the frames the window reaches."""
    import inspect

    lister = get_spec(dataset).list_clips
    extra = {"window": window} if window is not None and "window" in inspect.signature(lister).parameters else {}
    clips = lister(Path(root), split, strict=strict, **extra)
    if not clips:
        raise EtcError(f"no labelled clips found for split '{split}' of {dataset} at {root}")
    return clips


def training_pairs(clips: Iterable[Clip], window: Sequence[int], anchor_stride: int = 1) -> list[tuple[Clip, int, int]]:
    """(clip, t, t+k) for every labelled position t and every k of ``window`` inside the clip.

    ``anchor_stride`` N keeps every N-th labelled position of a clip as an anchor: for sets
    where every frame is labelled (VSPW), neighbouring anchors are near-duplicates and each
    anchor costs its window's flow.

    None at all is an error saying why: a run on such data would train on nothing.
    """
    clips = list(clips)
    pairs = []
    for clip in clips:
        for t in clip.labelled[::anchor_stride]:
            pairs.extend((clip, t, t + k) for k in window if k != 0 and 0 <= t + k < len(clip))
    if not pairs and clips:
        lengths = sorted({len(c) for c in clips})
        raise EtcError(f"no training pairs: no labelled frame of the {len(clips)} clips of split "
                       f"'{clips[0].split}' has a neighbour at the offsets {list(window)} inside its "
                       f"clip (clip lengths {lengths[0]}..{lengths[-1]}; are the neighbour frames "
                       f"missing? run `etc check-data`)")
    return pairs


def third_frame(t: int, s: int, length: int) -> int:
    """The third frame of MF's sequence for the pair (t, s = t+k) in a clip of ``length`` frames.

    The neighbour mirrored about t, ``t − k``, so that the three frames are the reference's
    (t−k, t, t+k) with one spacing. Where t − k leaves the clip (a labelled frame near a clip
    end, e.g. CamVid's first still of a sequence) the sequence continues past the neighbour
    instead, ``t + 2k`` (still evenly spaced, t no longer in the middle); where that leaves it
    too, frame t itself (MF then sees t twice).
    """
    for u in (2 * t - s, 2 * s - t):
        if 0 <= u < length:
            return u
    return t


def consecutive_pairs(clips: Iterable[Clip]) -> list[tuple[Clip, int, int]]:
    """(clip, t, t+1) for every consecutive pair of every clip (temporal consistency).

    None at all (every clip a single frame) is an error: TC would be measured on nothing.
    """
    clips = list(clips)
    pairs = [(clip, t, t + 1) for clip in clips for t in range(len(clip) - 1)]
    if not pairs and clips:
        raise EtcError(f"no consecutive frames: each of the {len(clips)} clips of split "
                       f"'{clips[0].split}' is a single frame (are the neighbour frames missing? "
                       f"run `etc check-data`)")
    return pairs
