"""Segment a folder of frames or a video with a checkpoint of `etc train`, from Python.

    python examples/segment_frames.py student.pt drive.mp4 out/
    python examples/segment_frames.py student.pt frames/ out/ --alpha 0.6

Writes, per frame, ``out/labels/<frame>.png`` (train ids: the index into the checkpoint's
class list) and ``out/overlay/<frame>.png`` (the class colours over the frame), and
``out/classes.txt`` (one class name per line, train id = line number - 1); prints each class's
share of the pixels. Uses only the public API (``etc.load`` and the Segmenter it returns): the
checkpoint carries its classes and colours, so neither the dataset nor a config is needed.
For an overlay video with flicker figures, see ``Segmenter.video`` / ``etc segment-video``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

import etc

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def natural_key(path: Path) -> list:
    """frame_9.png before frame_10.png."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def read_frames(source: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, H×W×3 uint8 RGB) of every frame of a folder (in natural name order) or a video."""
    if source.is_dir():
        for path in sorted((p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key):
            yield path.stem, np.asarray(imageio.imread(path))[..., :3]
    else:
        with imageio.get_reader(source, format="FFMPEG") as reader:
            for i, frame in enumerate(reader):
                yield f"{i:06d}", np.ascontiguousarray(np.asarray(frame)[..., :3])


def chunks(frames: Iterator[tuple[str, np.ndarray]], size: int) -> Iterator[list[tuple[str, np.ndarray]]]:
    """Groups of up to ``size`` consecutive frames of one frame size: memory stays bounded."""
    group: list[tuple[str, np.ndarray]] = []
    for item in frames:
        if group and (len(group) == size or item[1].shape != group[0][1].shape):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a .pt file written by `etc train`")
    parser.add_argument("source", type=Path, help="a folder of frames (.png/.jpg) or a video file")
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: CUDA when present)")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the class colours in the overlay")
    parser.add_argument("--chunk", type=int, default=16, help="frames held in memory at once")
    args = parser.parse_args()

    seg = etc.load(args.checkpoint, device=args.device)
    print(seg)
    (args.out / "labels").mkdir(parents=True, exist_ok=True)
    (args.out / "overlay").mkdir(parents=True, exist_ok=True)
    (args.out / "classes.txt").write_text("".join(f"{name}\n" for name in seg.classes))
    counts = np.zeros(len(seg.classes), np.int64)
    n = 0
    for group in chunks(read_frames(args.source), args.chunk):
        labels = seg.labels([frame for _, frame in group])
        for (name, frame), lab in zip(group, labels, strict=True):
            imageio.imwrite(args.out / "labels" / f"{name}.png", lab)
            imageio.imwrite(args.out / "overlay" / f"{name}.png", seg.overlay(frame, lab, alpha=args.alpha))
        counts += np.bincount(labels.ravel(), minlength=256)[: len(seg.classes)]
        n += len(group)
    if n == 0:
        raise SystemExit(f"no frames in {args.source}")
    print(f"{n} frames -> {args.out}")
    for name, c in sorted(zip(seg.classes, counts, strict=True), key=lambda t: -t[1]):
        if c:
            print(f"  {name:20s} {100 * c / counts.sum():6.2f} %")


if __name__ == "__main__":
    main()
