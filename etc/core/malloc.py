"""Keep freed memory inside the process (glibc malloc) so large tensors stop page-faulting.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap``
and returns it to the kernel on ``free``. A segmentation network at real frame sizes
allocates tensors far above that (19 × 1024 × 2048 float logits: 160 MB), so every forward
pass touches hundreds of MB of new zero pages: with mmap disabled and a 1 GiB trim threshold
the student's and the teacher's CPU forwards at real frame sizes run faster, and timings
of identical networks stop scattering. `etc bench` measures it (docs/performance.md).

Applied by the `etc` command line at start-up; ``ETC_MALLOC_TUNE=0`` turns it off. A no-op
off glibc (macOS, musl), where it returns False.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30  # freed memory beyond 1 GiB at the heap's top goes back to the kernel


def keep_freed_memory() -> bool:
    """Serve large allocations from the heap and keep them there; True if applied."""
    if os.environ.get("ETC_MALLOC_TUNE", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
