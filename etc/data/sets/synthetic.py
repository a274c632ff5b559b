"""The synthetic set (``etc make-synthetic``): the Cityscapes layout with Cityscapes label ids,
one clip per (city, sequence), plus ``dense/`` with a label and exact flow for every frame."""

from __future__ import annotations

from pathlib import Path

from etc.data.frames import Clip, Frame, require_consecutive
from etc.data.sets import DatasetSpec
from etc.data.sets.cityscapes import (
    image_path,
    label_path,
    label_table,
    scan_labels,
    scan_sequence_frames,
)


def dense_path(root: Path, split: str, city: str, seq: int, frame: int, kind: str) -> Path:
    """``kind`` in {labelIds, flow_fw, flow_bw}: the synthetic set's per-frame extras."""
    return root / "dense" / split / city / f"{city}_{seq:06d}_{frame:06d}_{kind}.png"


def list_clips(root: Path, split: str, strict: bool = True) -> list[Clip]:
    """One clip per (city, sequence); every frame has a dense label, some a sparse one."""
    root = Path(root)
    frames = scan_sequence_frames(root, split)
    labels = scan_labels(root, split)
    clips = []
    for (city, seq), available in sorted(frames.items()):
        numbers = sorted(available)
        if strict:
            require_consecutive(numbers, lambda n, c=city, s=seq: image_path(root, split, c, s, n))
        annotated = set(labels.get((city, seq), ()))
        clip_frames = tuple(
            Frame(
                n,
                available[n],
                label_path(root, split, city, seq, n) if n in annotated else None,
                dense_path(root, split, city, seq, n, "labelIds"),
            )
            for n in numbers
        )
        clips.append(Clip(f"{city}_{seq:06d}", split, clip_frames, extra={"city": city, "seq": seq}))
    return clips


SPEC = DatasetSpec(
    name="synthetic",
    list_clips=list_clips,
    labels=label_table,
    how_to_get="generate it with `etc make-synthetic --out ROOT` (or `snakemake --cores all`)",
    frame_naming=("the Cityscapes layout (leftImg8bit_sequence/, gtFine/ on the labelled frame of "
                  "each clip) plus dense/<split>/<city>/<city>_<seq>_<frame>_{labelIds,flow_fw,"
                  "flow_bw}.png for every frame; one clip per (city, sequence)"),
    label_convention="Cityscapes label ids (7 road, 8 sidewalk, ...), mapped as for Cityscapes",
    exact_flow=True,
    every_frame_labelled=True,
)
