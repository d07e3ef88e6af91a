"""Hands the C allocator's free memory back to the OS between the phases of a long fit.

Why: glibc's malloc raises its mmap threshold to the size of each large block freed (up to 32 MiB), so
after the first steps a CPU training step's activations (16 MiB and less for the small ResNet at 64 x 64,
batch 64) come from the heap. Over hundreds of steps the heap fragments: its free pages stay resident,
and each scoring pass, whose blocks do not fit the holes, lands on top of them. On a 4 GiB store under a
1 GiB budget that made each scoring pass peak higher than the one before (benchmarks/RESULTS.md, "Where
the peak comes from"). `malloc_trim(0)` returns every free page of the heap (not only its top) with
madvise, in milliseconds; the blocks in use do not move, so nothing is copied. A fixed, low mmap
threshold does the same for the peak but costs a page fault per fresh block at every step (1.8x slower
at 4 MiB); `fix_mmap_threshold` at 16 MiB keeps the blocks above it out of the heap, at a speed cost that
two runs on a Zen 4 could not tell from the host's drift.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


@functools.lru_cache(maxsize=None)
def _glibc(symbol: str):
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), symbol) if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to tune
        return None


def trim() -> bool:
    """Returns the heap's free pages to the OS; False where the C library has no malloc_trim."""
    fn = _glibc("malloc_trim")
    if fn is None:
        return False
    fn(ctypes.c_size_t(0))
    return True


def fix_mmap_threshold(nbytes: int = 16 << 20) -> bool:
    """Every block of `nbytes` or more gets its own mmap from now on, in this whole process, and goes back
    to the OS when freed; False where nothing was changed (not glibc, or the user set the threshold with
    glibc's MALLOC_MMAP_THRESHOLD_, which wins).

    Why: glibc starts at 128 KiB but raises the threshold to the size of each mmapped block freed, up to 32
    MiB, so a CPU training step's large activations and batches end up in the heap, where they fragment it
    (module docstring). A fixed threshold stops the raising. At 4 MiB every step paid a page fault per
    fresh block (1.8x slower); at 16 MiB a one-epoch fit of 6000 rows at 64 x 64 peaked 140-170 MiB lower
    at the same speed (benchmarks/RESULTS.md, "The training step's peak and glibc's mmap threshold")."""
    fn = _glibc("mallopt")
    if fn is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    return bool(fn(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(nbytes)))
