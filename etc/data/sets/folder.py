"""``folder``: your own data, without code — frames and labels in plain folders, the classes in
a YAML file.

Layout::

    ROOT/classes.yaml                          names: [road, car, ...]   (train id = position)
                                               ignore: 255               (stored void value; default 255)
                                               ids: {7: 0, 26: 1}        (optional: stored value → class index)
                                               palette: [[128, 64, 128], ...]  (optional: RGB per class)
    ROOT/frames/<split>/<clip>/<frame>.(png|jpg)
    ROOT/labels/<split>/<clip>/<frame>.png     any subset of the frames; at least one per training clip

Frames order by the number in their names (etc.data.framedir); a label is named as its frame
(same number) and is a single-channel or palette PNG. A clip labelled on every frame also has
dense labels (mVC). The classes live in the tree, not in the code, so this module learns the
root from the config (:func:`use_root`, called by etc.core.config for ``dataset.name: folder``; the
environment carries it into worker processes).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from etc.core.config import FOLDER_ROOT_ENV
from etc.core.errors import EtcError
from etc.data.frames import Clip, Frame
from etc.data.label_table import IGNORE, LabelTable, make_lut
from etc.data.sets import DatasetSpec

LAYOUT = ("ROOT/frames/<split>/<clip>/<frame>.(png|jpg), ROOT/labels/<split>/<clip>/<frame>.png (any subset, "
          "at least one per training clip) and ROOT/classes.yaml with names (list), ignore (default 255), "
          "optional ids (stored value -> class index) and palette (RGB per class)")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


def use_root(root: str | Path) -> None:
    """Make ``root``'s classes.yaml the class list of ``folder`` in this process and its children."""
    os.environ[FOLDER_ROOT_ENV] = str(Path(root).resolve())


def label_table() -> LabelTable:
    root = os.environ.get(FOLDER_ROOT_ENV)
    if not root:
        raise EtcError("dataset 'folder' reads its classes from ROOT/classes.yaml, but no root is known; "
                       "pass a config with dataset.name: folder and dataset.root (--config)")
    path = Path(root) / "classes.yaml"
    return _table(str(path), path.stat().st_mtime_ns if path.is_file() else None)


@functools.cache
def _table(path: str, _mtime) -> LabelTable:
    problems, table = read_classes(Path(path))
    if problems:
        raise EtcError(problems[0])
    return table


def read_classes(path: Path) -> tuple[list[str], LabelTable | None]:
    """(every problem of ``path``, the table when there is none)."""
    import yaml

    if not path.is_file():
        return [f"missing file {path}; write it with `names: [class0, class1, ...]` (see `etc check-data --help`)"], None
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        return [f"{path}: not valid YAML ({' '.join(str(exc).split())[:200]}); fix the syntax"], None
    if not isinstance(spec, dict):
        return [f"{path}: expected a mapping with 'names', got {type(spec).__name__}"], None
    problems = [f"{path}: unknown key '{k}'; the keys are names, ignore, ids, palette"
                for k in spec if k not in ("names", "ignore", "ids", "palette")]
    names = spec.get("names")
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) and n for n in names):
        problems.append(f"{path}: 'names' must be a list of at least two class names, e.g. names: [road, car]")
        return problems, None
    if len(set(names)) != len(names):
        problems.append(f"{path}: 'names' holds a name twice; give each class once")
    k = len(names)
    if k > IGNORE:
        problems.append(f"{path}: {k} classes; at most {IGNORE} fit uint8 label maps")
    ignore = spec.get("ignore", IGNORE)
    if not isinstance(ignore, int) or not 0 <= ignore <= 255:
        problems.append(f"{path}: 'ignore' must be a stored value 0..255, got {ignore!r}")
        ignore = IGNORE
    ids = spec.get("ids")
    if ids is None:
        mapping = {v: v for v in range(k)}
    elif not isinstance(ids, dict) or not all(isinstance(a, int) and isinstance(b, int) for a, b in ids.items()):
        problems.append(f"{path}: 'ids' must map stored values to class indices, e.g. ids: {{7: 0, 26: 1}}")
        mapping = {}
    else:
        mapping = dict(ids)
        for value, index in mapping.items():
            if not 0 <= value <= 255 or value == ignore:
                problems.append(f"{path}: ids: stored value {value} must be in 0..255 and not the ignore value {ignore}")
            if not 0 <= index < k:
                problems.append(f"{path}: ids: {value} -> {index}, but there are {k} classes (indices 0..{k - 1})")
        unmapped = sorted(set(range(k)) - set(mapping.values()))
        if unmapped:
            problems.append(f"{path}: ids: no stored value maps to class {unmapped[0]} ({names[unmapped[0]]}); "
                            f"add one or remove the class from names")
    if ignore in mapping:
        problems.append(f"{path}: the ignore value {ignore} is also class {mapping[ignore]}; set ignore to an unused value")
    palette = spec.get("palette")
    if palette is None:
        palette = default_palette(k)
    elif (not isinstance(palette, list) or len(palette) != k
          or not all(isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
                     for c in palette)):
        problems.append(f"{path}: 'palette' must hold one [r, g, b] (0..255) per class ({k}); or leave it out")
        palette = default_palette(k)
    if problems:
        return problems, None
    return [], LabelTable(tuple(names), tuple(tuple(c) for c in palette), make_lut(mapping),
                          frozenset(mapping) | {ignore})


def default_palette(k: int) -> list[list[int]]:
    """Distinct colours: hues by the golden ratio, so neighbouring class indices differ."""
    import colorsys

    return [[int(255 * v) for v in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65, 0.95)] for i in range(k)]


def list_clips(root: Path, split: str, strict: bool = True) -> list[Clip]:
    """One clip per ``frames/<split>/<clip>/`` folder. ``strict`` (check-data): every problem
    of the tree, not just the first, in one error naming each file and its fix."""
    root = Path(root)
    use_root(root)
    problems: list[str] = []
    if strict:
        problems += read_classes(root / "classes.yaml")[0]
    frames_dir, labels_dir = root / "frames" / split, root / "labels" / split
    if not frames_dir.is_dir():
        raise EtcError(f"missing folder {frames_dir}. Expected layout: {LAYOUT}")
    clips = []
    for clip_dir in sorted(d for d in frames_dir.iterdir() if d.is_dir()):
        frames = _numbered(clip_dir, FRAME_SUFFIXES, problems)
        labels = _numbered(labels_dir / clip_dir.name, (".png",), problems) if (labels_dir / clip_dir.name).is_dir() else {}
        if not frames:
            problems.append(f"{clip_dir}: no frames ({', '.join(FRAME_SUFFIXES)} named by their number); "
                            f"add them or remove the folder")
            continue
        for n, path in labels.items():
            if n not in frames:
                problems.append(f"label {path} has no frame {n} in {clip_dir}; name labels as their frames")
        if split == "train" and not set(labels) & set(frames):
            problems.append(f"training clip {clip_dir} has no label in {labels_dir / clip_dir.name}; "
                            f"label at least one of its frames (or move the clip to another split)")
        dense = bool(labels) and set(frames) <= set(labels)
        clips.append(Clip(clip_dir.name, split, tuple(
            Frame(n, p, labels.get(n), labels.get(n) if dense else None) for n, p in frames.items())))
    if labels_dir.is_dir():
        for d in sorted(labels_dir.iterdir()):
            if d.is_dir() and not (frames_dir / d.name).is_dir():
                problems.append(f"labels {d} have no frames folder {frames_dir / d.name}; rename it as its clip")
    if strict:
        problems += _label_problems(clips)
    if problems:
        if len(problems) == 1:
            raise EtcError(problems[0])
        raise EtcError(f"{len(problems)} problems in {root} (split {split}):\n  " + "\n  ".join(problems))
    return clips


def _numbered(folder: Path, suffixes, problems: list[str]) -> dict[int, Path]:
    from etc.data.framedir import frame_number

    found: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        if path.suffix.lower() not in suffixes:
            problems.append(f"{path}: not a {' or '.join(suffixes)} file; convert or remove it")
            continue
        n = frame_number(path)
        if n is None:
            problems.append(f"{path}: no frame number in the name; name it like 000012{path.suffix}")
        elif n in found:
            problems.append(f"{found[n]} and {path} have the same frame number {n}; keep one")
        else:
            found[n] = path
    return dict(sorted(found.items()))


def _label_problems(clips: list[Clip]) -> list[str]:
    """Every label that is unreadable, of another size than its frame, or holds an undefined value."""
    from etc.data.decode import image_size, read_label_map
    from etc.data.labels import to_train_ids

    problems = []
    try:
        label_table()
    except EtcError:
        return problems  # the classes are reported already
    for clip in clips:
        for f in clip.frames:
            if f.label is None:
                continue
            try:
                raw = read_label_map(f.label)
                h, w = image_size(f.image)
                if raw.shape[:2] != (h, w):
                    problems.append(f"wrong label size {raw.shape[0]}×{raw.shape[1]} in {f.label}; its image "
                                    f"{f.image} is {h}×{w} (labels are never resized)")
                    continue
                to_train_ids(raw, "folder", source=f.label)
            except EtcError as exc:
                problems.append(str(exc))
    return problems


SPEC = DatasetSpec(
    name="folder",
    list_clips=list_clips,
    labels=label_table,
    how_to_get=f"put your data in this layout: {LAYOUT}",
    frame_naming="frames/<split>/<clip>/<frame>.(png|jpg) ordered by the number in their names; labels named as their frames",
    label_convention="classes.yaml: names (train id = position), ignore (stored void value), optional ids and palette",
)
