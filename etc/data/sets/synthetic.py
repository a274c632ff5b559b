"""The synthetic set (``etc make-synthetic``): the Cityscapes layout with Cityscapes label ids,
one clip per (city, sequence), plus ``dense/`` with a label and exact flow for every frame."""

from __future__ import annotations

from pathlib import Path

from etc.core.errors import EtcError
from etc.data.frames import Clip, Frame, copied_frame, copy_among, require_consecutive
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
    """One clip per (city, sequence); every frame has a dense label, one a sparse one.
    ``strict`` (check-data): a gap in a clip, a clip without its sparse label (or, where its
    frames are copies of another clip's, the copy) and a file outside its city's folder are
    errors naming the path."""
    root = Path(root)
    frames = scan_sequence_frames(root, split, strict)
    labels = scan_labels(root, split, strict)
    clips = []
    for (city, seq), available in sorted(frames.items()):
        numbers = sorted(available)
        if strict:
            require_consecutive(numbers, lambda n, c=city, s=seq: image_path(root, split, c, s, n))
        annotated = set(labels.get((city, seq), ()))
        if strict and not annotated:
            first = copy_among(available[numbers[0]], [f for fs in frames.values() for f in fs.values()])
            if first is not None:  # a clip folder copied: name the copy, not its missing label
                raise copied_frame(available[numbers[0]], first)
            raise EtcError(f"clip {city}_{seq:06d} of split '{split}' has no sparse label: missing label map "
                           f"{_expected_label(root, split, city, seq, numbers)}; regenerate the set "
                           f"(`etc make-synthetic`) or restore the file")
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


def _expected_label(root: Path, split: str, city: str, seq: int, numbers: list[int]) -> Path | str:
    """The label map a clip's labelled frame should have, at the position synthetic.json records
    (its pattern where the record is unreadable)."""
    import json

    try:
        index = int(json.loads((root / "synthetic.json").read_text())["labelled_index"])
        return label_path(root, split, city, seq, numbers[index])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return label_path(root, split, city, seq, 0).with_name(f"{city}_{seq:06d}_<frame>_gtFine_labelIds.png")


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
