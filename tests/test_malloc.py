"""The allocator tuning: a large buffer comes from the heap and stays there once freed (so
the next one reuses it instead of mapping, and faulting in, fresh pages)."""

import os
import subprocess
import sys

import pytest

CODE = """
import ctypes
import numpy as np
from etc.core.malloc import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                 "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
applied = keep_freed_memory()
a = np.ones(100 * 2**20 // 8)  # 100 MiB
mapped_while_alive = libc.mallinfo2().hblkhd
del a
kept_after_free = libc.mallinfo2().fordblks
print(applied, mapped_while_alive, kept_after_free)
"""
MIB = 2**20


def _run(tune: str) -> tuple[bool, int, int]:
    env = {**os.environ, "ETC_MALLOC_TUNE": tune}
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True).stdout
    applied, mapped, kept = out.split()
    return applied == "True", int(mapped), int(kept)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_large_buffers_come_from_the_heap_and_stay_there():
    applied, mapped, kept = _run("1")
    assert applied and mapped < MIB and kept >= 100 * MIB
    applied, mapped, kept = _run("0")  # glibc's defaults: a private mapping, unmapped on free
    assert not applied and mapped >= 100 * MIB and kept < 100 * MIB
