"""Free disk, checked before long work writes: both numbers in the error, never a half-written store."""

from __future__ import annotations

import shutil
from pathlib import Path

from etc.core.errors import EtcError


def gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.1f} MB"


def free_bytes(path: str | Path) -> int:
    """Free bytes on the file system that will hold ``path`` (its nearest existing folder)."""
    folder = Path(path).absolute()
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


def check_free_disk(path: str | Path, needed: int, what: str, fix: str) -> None:
    """An EtcError with both numbers when ``path``'s file system has less than ``needed`` free."""
    free = free_bytes(path)
    if free < needed:
        raise EtcError(f"{what} needs about {gb(needed)} (an uncompressed bound), but only {gb(free)} is free "
                       f"where {path} goes; {fix}")
