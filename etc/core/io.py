"""Atomic output: every stage writes through these so an interrupted run never leaves a
half-written file under the final name (a rerun then sees it as missing and redoes it)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from etc.core.errors import EtcError

# What the video writers (imageio's ffmpeg, H.264 in yuv420p) can put a video in: WebM takes only
# VP8/VP9/AV1, and imageio's ffmpeg plugin refuses .m4v, .gif and others by name.
VIDEO_OUT_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    The temp name keeps the target's suffix so that writers choosing a format by extension
    (OpenCV, matplotlib, h5py) behave as for the final name.
    """
    path = Path(path)
    output_folder(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as exc:
        raise unwritable(path, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        try:
            os.replace(tmp_path, path)
        except OSError as exc:
            raise unwritable(path, exc) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def output_folder(path: str | os.PathLike) -> Path:
    """Create the folder that will hold ``path``; an impossible or unwritable one is an EtcError
    naming the path (not a traceback)."""
    path = Path(path)
    if path.is_dir():
        raise EtcError(f"cannot write {path}: it is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unwritable(path, exc) from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise EtcError(f"cannot write {path}: folder {path.parent} is not writable; choose another output path")
    return path


def check_video_suffix(out: str | os.PathLike) -> None:
    """Refuse an output path the video writer cannot produce, naming the ones it can: every
    command that writes a video checks its name here before any work."""
    suffix = Path(out).suffix.lower()
    if suffix not in VIDEO_OUT_SUFFIXES:
        what = f"the extension '{Path(out).suffix}'" if suffix else "no extension"
        raise EtcError(f"cannot write {out}: the video writer (H.264 through ffmpeg) writes "
                       f"{', '.join(VIDEO_OUT_SUFFIXES[:-1])} or {VIDEO_OUT_SUFFIXES[-1]} files, and this name has "
                       f"{what}; name the output with one of those extensions")


def output_dir(folder: str | os.PathLike) -> Path:
    """Create the output folder ``folder`` (its files are written through the functions here);
    an impossible or unwritable one is an EtcError naming it, as for :func:`output_folder`."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unwritable(folder, exc) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise EtcError(f"cannot write into {folder}: the folder is not writable; choose another output path")
    return folder


def unwritable(path: Path, exc: OSError) -> EtcError:
    """The one-line error for an output that cannot be written: a folder that refuses writes
    (read-only, no permission; os.access does not see every such case, e.g. for root or on
    network file systems) is named as the folder at fault, with the nearest one that exists."""
    import errno

    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        folder = Path(path).parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return EtcError(f"cannot write {path}: folder {folder} is not writable ({exc.strerror}); choose "
                        f"another output path")
    return EtcError(f"cannot write {path}: {exc.strerror or exc}; choose another output path")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_png(path: str | os.PathLike, array) -> None:
    """Write an image (H×W uint8/uint16 or H×W×3 in RGB order) losslessly and atomically."""
    import cv2
    import numpy as np

    array = np.ascontiguousarray(array)
    if array.ndim == 3:
        array = np.ascontiguousarray(array[..., ::-1])  # RGB -> BGR for OpenCV
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), array):
            raise OSError(f"could not write image {path}")


def read_png(path: str | os.PathLike, *, color: bool | None = None):
    """Read a PNG as stored (labels, 16-bit flow) or as RGB when it has three channels.

    Returns ``None`` for an unreadable or corrupt file; callers turn that into an EtcError
    naming the path.
    """
    import cv2

    flags = cv2.IMREAD_UNCHANGED if color is None else (cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    img = cv2.imread(str(path), flags)
    if img is not None and img.ndim == 3:  # OpenCV decodes to BGR(A)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    return img
