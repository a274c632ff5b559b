"""Memory a frame size asks for, as one-line errors: a frame size too large for the machine is
a mistake the user can fix (the option or key that set it), not a bug. A size no batch of which
fits in the machine's memory is refused before any work; an allocation that fails later (the
network's activations, another process's use) is turned into the same kind of message."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from etc.core.disk import gb
from etc.core.errors import EtcError

# the least a pixel costs on its way in: the decoded RGB (uint8) and the normalised float32 batch
BYTES_PER_PIXEL = 3 + 3 * 4


def physical_memory() -> int | None:
    """Bytes of RAM of this machine (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_frame_memory(size: tuple[int, int], batch: int, source: str) -> None:
    """Refuse frames of ``size`` (H, W) when ``batch`` of them cannot be held in the machine's
    memory at all; ``source`` names the option or config key that set the size."""
    h, w = (int(v) for v in size)
    need = h * w * max(1, int(batch)) * BYTES_PER_PIXEL
    have = physical_memory()
    if have is not None and need > have:
        raise EtcError(f"frames of {h}×{w} ({source}) need at least {gb(need)} for the {batch} held at once, "
                       f"more than this machine's {gb(have)} of memory; give a smaller size")


@contextmanager
def allocation(what: str, fix: str) -> Iterator[None]:
    """Turn an allocator's failure inside the block (MemoryError, OpenCV's insufficient memory,
    torch's CPU allocator or CUDA out of memory) into an EtcError: cannot allocate memory for
    ``what``; ``fix``."""
    try:
        yield
    except MemoryError:
        raise EtcError(f"cannot allocate memory for {what}; {fix}") from None
    except EtcError:
        raise
    except Exception as exc:
        text = str(exc)
        if type(exc).__name__ == "OutOfMemoryError" or "can't allocate memory" in text \
                or "Insufficient memory" in text or "out of memory" in text.lower():
            asked = re.search(r"allocate (\d+) bytes", text)
            detail = f" ({gb(int(asked[1]))} asked)" if asked else ""
            raise EtcError(f"cannot allocate memory for {what}{detail}; {fix}") from None
        raise
