"""The M x N distance matrix is never materialised: peak RSS of a projection stays within
inputs + outputs + a tile budget, measured in a fresh process; heap.trim gives a fragmented heap's holes back."""
import json
import subprocess
import sys

import pytest

from manifpt.bench import peak_rss_of_projection


def test_peak_memory_is_o_tile():
    r = peak_rss_of_projection(4000, 100000, 16)  # a float32 distance matrix would take 1526 MiB
    assert r["growth_mib"] >= r["outputs_mib"] * 0.5, r  # the probe sees the outputs being written
    assert r["beyond_outputs_mib"] <= 64, r


_FRAGMENTED_HEAP = """
import ctypes, json, os
from manifpt import heap
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
page = os.sysconf("SC_PAGE_SIZE")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page / 2**20
# 3000 blocks of 64 KiB (under glibc's 128 KiB mmap threshold: in the heap), touched, then every other
# one freed: 94 MiB of holes that the heap's top, still in use, keeps from being returned by free().
blocks = [libc.malloc(65536) for _ in range(3000)]
for b in blocks:
    ctypes.memset(b, 1, 65536)
for b in blocks[::2]:
    libc.free(b)
before = rss()
ok = heap.trim()
print(json.dumps({"trimmed": ok, "before": before, "after": rss()}))
"""


def test_heap_trim_returns_the_holes_of_a_fragmented_heap():
    r = subprocess.run([sys.executable, "-c", _FRAGMENTED_HEAP], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if not out["trimmed"]:
        pytest.skip("this C library has no malloc_trim (not glibc)")
    assert out["before"] - out["after"] >= 0.8 * 1500 * 65536 / 2**20, out  # most of the 94 MiB of holes
