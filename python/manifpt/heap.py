"""Hands the C allocator's free memory back to the OS between the phases of a long fit.

Why: glibc's malloc raises its mmap threshold to the size of each large block freed (up to 32 MiB), so
after the first steps a CPU training step's activations (16 MiB and less for the small ResNet at 64 x 64,
batch 64) come from the heap. Over hundreds of steps the heap fragments: its free pages stay resident,
and each scoring pass, whose blocks do not fit the holes, lands on top of them. On a 4 GiB store under a
1 GiB budget that made each scoring pass peak higher than the one before (benchmarks/RESULTS.md, "Where
the peak comes from"). `malloc_trim(0)` returns every free page of the heap (not only its top) with
madvise, in milliseconds; the blocks in use do not move, so nothing is copied. A fixed, low mmap
threshold does the same for the peak but costs a page fault per fresh block at every step (1.8x slower).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to trim
        return None


def trim() -> bool:
    """Returns the heap's free pages to the OS; False where the C library has no malloc_trim."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(ctypes.c_size_t(0))
    return True
