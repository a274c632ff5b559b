"""Decoding frames and label maps as the datasets store them.

Images are read as H×W×3 uint8 RGB; a :class:`~etc.data.frames.SizedPath` frame is resized to
its size with ``cv2.INTER_AREA`` (the anti-aliased downscale: CamVid's 960×720 video frames to
the 480×360 labelled stills). Label maps are never resized, and are read by their stored values:
palette PNGs by their indices (as PIL and cityscapesScripts read them, not by the palette's
colours), 16-bit PNGs with their real values, grey maps saved with three equal channels as one.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from etc.core.errors import EtcError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_PALETTE = 3  # IHDR colour type of an indexed PNG


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the file header, without decoding; a truncated PNG or JPEG (no end marker) or
    an unreadable file is an EtcError naming it."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
            fh.seek(max(0, Path(path).stat().st_size - 16))
            tail = fh.read(16)
    except OSError as exc:
        raise EtcError(f"cannot read {path}: {exc}") from None
    if head[:8] == PNG_MAGIC:
        if len(head) < 24 or head[12:16] != b"IHDR" or tail[-8:-4] != b"IEND":
            raise EtcError(f"corrupt or truncated PNG: {path}; re-extract or regenerate it")
        w, h = struct.unpack(">II", head[16:24])
        return h, w
    if head[:2] == b"\xff\xd8" and not tail.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise EtcError(f"corrupt or truncated JPEG: {path}; re-extract it")
    try:
        from PIL import Image

        with Image.open(path) as img:
            w, h = img.size
    except Exception as exc:  # PIL raises several types for a bad file
        raise EtcError(f"not a readable image: {path} ({exc}); re-extract or regenerate it") from None
    return h, w


def read_image(path: Path) -> np.ndarray:
    """H×W×3 uint8 RGB (resized when ``path`` is a SizedPath of another size); a missing or
    corrupt file is an EtcError naming it."""
    from etc.core.io import read_png

    img = read_png(path, color=True)
    if img is None:
        raise EtcError(f"cannot read image {path} (missing or corrupt); regenerate or re-extract it")
    size = getattr(path, "size", None)
    if size is not None and img.shape[:2] != size:
        img = resize_image(img, size, path)
    return img


def resize_image(img: np.ndarray, size: tuple[int, int], path) -> np.ndarray:
    """``img`` at ``size`` (H, W) with INTER_AREA; only a change of scale, never of aspect."""
    import cv2

    h, w = img.shape[:2]
    if not same_aspect((h, w), size):
        raise EtcError(f"{path} is {h}×{w}, which cannot be resized to {size[0]}×{size[1]} without "
                       f"distortion (another aspect ratio); re-extract it at {size[0]}×{size[1]} or a multiple")
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] * b[1] == a[1] * b[0]


def png_colour_type(path: Path) -> int | None:
    """The IHDR colour type of a PNG (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA), or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
    except OSError:
        return None
    return head[25] if len(head) == 26 and head[:8] == PNG_MAGIC else None


def read_label_map(path: Path) -> np.ndarray:
    """H×W stored label values (uint8, or uint16 for a 16-bit map); an unreadable file or a
    colour image is an EtcError naming it."""
    from etc.core.io import read_png

    if png_colour_type(path) == PNG_PALETTE:
        raw = _palette_indices(path)
    else:
        raw = read_png(path)
    if raw is None:
        raise EtcError(f"cannot read label map {path} (missing or corrupt); regenerate or re-extract it")
    if raw.ndim == 3:
        colour = raw[..., :3]
        if not (colour == colour[..., :1]).all():
            raise EtcError(f"label map {path} is a colour image ({raw.shape[2]} channels that differ); "
                           f"expected one channel of label ids or a palette PNG (not a colour rendering)")
        raw = np.ascontiguousarray(colour[..., 0])
    return raw


def _palette_indices(path: Path) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.array(img) if img.mode == "P" else None
    except Exception:  # corrupt file: reported by the caller
        return None


def read_label(path: Path, dataset: str) -> np.ndarray:
    """H×W uint8 train ids (IGNORE where no class) from a stored label map; a value the dataset
    does not define is an EtcError naming the file and the values."""
    from etc.data.labels import to_train_ids

    return to_train_ids(read_label_map(path), dataset, source=path)
