"""The M x N distance matrix is never materialised: peak RSS of a projection stays within
inputs + outputs + a tile budget, measured in a fresh process; heap.trim gives a fragmented heap's holes back;
heap.fix_mmap_threshold keeps large blocks out of the heap."""
import json
import os
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


_RAISED_THRESHOLD = """
import ctypes, json, os, sys
from manifpt import heap
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if not hasattr(libc, "mallinfo2"):
    print(json.dumps({"skip": "no mallinfo2 (glibc < 2.33, or not glibc)"})); sys.exit()
class MallInfo2(ctypes.Structure):
    _fields_ = [(k, ctypes.c_size_t) for k in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo2.restype = MallInfo2
fixed = sys.argv[1] == "fixed" and heap.fix_mmap_threshold(16 << 20)
# A 24 MiB block, mmapped and freed: glibc's default then raises its threshold to 24 MiB, so the next
# 20 MiB block comes from the heap (not counted in hblkhd); with the threshold fixed at 16 MiB it is mmapped.
libc.free(libc.malloc(24 << 20))
b = libc.malloc(20 << 20)
print(json.dumps({"fixed": bool(fixed), "mmapped_mib": libc.mallinfo2().hblkhd / 2**20}))
libc.free(b)
"""


@pytest.mark.parametrize("mode", ["default", "fixed"])
def test_fixed_mmap_threshold_keeps_large_blocks_out_of_the_heap(mode):
    r = subprocess.run([sys.executable, "-c", _RAISED_THRESHOLD, mode], capture_output=True, text=True, timeout=120,
                       env={k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")})
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if "skip" in out:
        pytest.skip(out["skip"])
    if mode == "fixed":
        assert out["fixed"], out
        assert out["mmapped_mib"] >= 20, out  # the 20 MiB block has its own mapping
    else:
        assert out["mmapped_mib"] < 20, out  # glibc's raised threshold put it in the heap
