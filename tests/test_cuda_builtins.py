"""The CUDA built-ins and launch rules the project's kernels rely on, through the probe kernels
(csrc/testing/probe_kernels.cuh): indices, refused and limit launch configurations, shared memory limits,
warp shuffles/votes/syncwarp, atomics, half/bfloat16 rounding. Each is checked against its definition (the
PTX manual's formulas, written out here), on the GPU when there is one and always under the CUDA
emulation, so that the emulation is held to the device wherever the suite meets one."""
import math

import pytest
import torch



def test_block_and_thread_indices(kernel_backend):
    grid, block = (3, 2, 2), (4, 2, 2)
    out = kernel_backend.probe("index", grid=grid, block=block)
    b = torch.stack(torch.meshgrid(*[torch.arange(v) for v in reversed(grid)], indexing="ij"), -1).reshape(-1, 3).flip(-1)
    t = torch.stack(torch.meshgrid(*[torch.arange(v) for v in reversed(block)], indexing="ij"), -1).reshape(-1, 3).flip(-1)
    want = torch.cat([b.repeat_interleave(len(t), 0), t.repeat(len(b), 1)], 1)
    assert torch.equal(out, want)


@pytest.mark.parametrize(
    "grid,block",
    [((1,), (1025,)), ((1,), (33, 32)), ((1,), (1, 1, 65)), ((1,), (2048, 1)), ((1, 65536), (1,)), ((1, 1, 65536), (1,)), ((0,), (32,)), ((1,), (0,))],
    ids=str,
)
def test_bad_launch_configurations_are_refused(kernel_backend, grid, block):
    with pytest.raises(RuntimeError, match="invalid configuration argument"):
        kernel_backend.probe("index", grid=grid, block=block)


@pytest.mark.parametrize("block", [(1024,), (32, 32), (1, 1, 64), (16, 1, 64)], ids=str)
def test_launch_configurations_at_the_limits_run(kernel_backend, block):
    out = kernel_backend.probe("index", grid=(2,), block=block)
    assert out.shape == (2 * math.prod(block), 6) and out[-1, 0] == 1


def test_shared_memory_limits(kernel_backend):
    lim = kernel_backend.limits()
    static = 16  # the probe's own __shared__ total, padded to the alignment of its dynamic shared memory
    checksum = lambda words: 3 * words * (words - 1) // 2 + words  # noqa: E731
    # Up to the default per-block limit (dynamic + static). The limit is a property of the kernel
    # that outlives the call, so it is set to the default first.
    default_max = lim["shared_per_block"] - static
    out = kernel_backend.probe("shared", grid=(2,), block=(128,), dynamic_smem=default_max, max_dynamic_smem=default_max)
    assert out.tolist() == [[checksum(default_max // 4), 1]] * 2
    with pytest.raises(RuntimeError, match="invalid argument"):
        kernel_backend.probe("shared", grid=(1,), block=(128,), dynamic_smem=lim["shared_per_block"])
    # Past it after cudaFuncAttributeMaxDynamicSharedMemorySize, up to the device's opt-in maximum.
    optin_max = (lim["shared_per_block_optin"] - static) // 4 * 4
    out = kernel_backend.probe("shared", grid=(1,), block=(256,), dynamic_smem=optin_max, max_dynamic_smem=optin_max)
    assert out.tolist() == [[checksum(optin_max // 4), 1]]
    with pytest.raises(RuntimeError, match="invalid argument"):
        kernel_backend.probe("shared", grid=(1,), block=(32,), dynamic_smem=1024, max_dynamic_smem=lim["shared_per_block_optin"])
    kernel_backend.probe("shared", grid=(1,), block=(32,), dynamic_smem=1024, max_dynamic_smem=default_max)


def test_device_limits_are_those_of_a_cuda_device(kernel_backend):
    lim = kernel_backend.limits()
    assert lim["max_threads_per_block"] == 1024 and lim["warp_size"] == 32
    assert (lim["max_block_x"], lim["max_block_y"], lim["max_block_z"]) == (1024, 1024, 64)
    assert (lim["max_grid_x"], lim["max_grid_y"], lim["max_grid_z"]) == (2**31 - 1, 65535, 65535)
    assert lim["shared_per_block"] == 48 * 1024 and lim["shared_per_block_optin"] >= 99 * 1024


# Warp probe: one case per block of two warps; {op, mask, arg, width, step}; lane l's argument is
# arg + l * step. Ops as in probe_kernels.cuh.
SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_XOR, SHFL_XOR64, SHFL_XOR_F64, BALLOT, ANY, ALL, SYNCWARP = range(10)
WARP_CASES = [
    (SHFL_XOR, -1, 8, 32, 0),
    (SHFL_XOR, -1, 16, 16, 0),  # the upper half of each 16-lane segment pair reads the lower one
    (SHFL_XOR, 0x0000FFFF, 1, 16, 0),  # half a warp takes part
    (SHFL_XOR, 0x55555555, 2, 32, 0),  # every other lane
    (SHFL_IDX, -1, 31, 32, -1),  # per-lane source: reverse the warp
    (SHFL_IDX, -1, 17, 8, 0),  # source modulo the width
    (SHFL_IDX, 0xFF00FF00, 8, 32, 0),
    (SHFL_UP, -1, 3, 32, 0),  # the first lanes keep their value
    (SHFL_UP, -1, 1, 4, 0),
    (SHFL_UP, 0x00FF00FF, 2, 32, 0),
    (SHFL_DOWN, -1, 5, 32, 0),  # the last lanes keep their value
    (SHFL_DOWN, -1, 2, 8, 0),
    (SHFL_DOWN, -1, 32, 32, 0),  # only the low 5 bits of the delta count
    (SHFL_XOR64, -1, 4, 32, 0),
    (SHFL_XOR64, 0x0F0F0F0F, 1, 32, 0),
    (SHFL_XOR_F64, -1, 31, 32, 0),
    (BALLOT, -1, 0x12345678, 32, 0),
    (BALLOT, 0x0000FFFF, -1, 32, 0),
    (BALLOT, 0xF0F0F0F0, 0x3C3C3C3C, 32, 0),
    (ANY, -1, 13, 32, 0),
    (ANY, 0x0000FFFF, 20, 32, 0),  # the lane whose predicate holds is outside the mask
    (ALL, -1, 40, 32, 0),
    (ALL, 0xFFFF0000, 3, 32, 0),
    (ALL, -1, 3, 32, 0),
    (SYNCWARP, -1, 1, 32, 0),
    (SYNCWARP, 0x0000FFFF, 3, 32, 0),
    (SYNCWARP, 0xAAAAAAAA, 2, 32, 0),
]


def _shfl_source(op, lane, b, width):
    """PTX shfl.sync's source lane (None: the lane's own value), with c = ((32 - width) << 8) | cval."""
    segmask, cval = (32 - width) & 31, 0 if op == SHFL_UP else 31
    max_lane, min_lane, b = (lane & segmask) | (cval & ~segmask & 31), lane & segmask, b & 31
    if op == SHFL_UP:
        j, ok = lane - b, lane - b >= max_lane
    elif op == SHFL_DOWN:
        j, ok = lane + b, lane + b <= max_lane
    elif op == SHFL_IDX:
        j, ok = min_lane | (b & ~segmask & 31), True
    else:
        j, ok = lane ^ b, (lane ^ b) <= max_lane
    return j if ok else lane


def _expected_warp(case, t):
    """What lane t of the probe block computes for `case`, or None where CUDA leaves it undefined."""
    op, mask, arg0, width, step = case
    mask &= 0xFFFFFFFF
    lane, warp = t % 32, t // 32
    if not mask >> lane & 1:
        return -7
    value = {SHFL_XOR64: lambda s: ((s + 1) << 33) | s, SHFL_XOR_F64: lambda s: t_f64_bits(s + 0.5)}.get(op, lambda s: 100 + s)
    if op in (SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_XOR, SHFL_XOR64, SHFL_XOR_F64):
        j = _shfl_source(op, lane, arg0 + lane * step, width)
        return value(warp * 32 + j) if mask >> j & 1 else None
    bits = arg0 & 0xFFFFFFFF
    if op == BALLOT:
        return bits & mask
    if op == ANY:
        return int(0 <= arg0 < 32 and bool(mask >> arg0 & 1))
    if op == ALL:
        return int(not (0 <= arg0 < 32 and mask >> arg0 & 1))
    src = (lane + arg0) & 31  # SYNCWARP
    return 100 + warp * 32 + src if mask >> src & 1 else 100 + t


def t_f64_bits(v):
    return torch.tensor([v], dtype=torch.float64).view(torch.int64).item()


def test_warp_shuffles_votes_and_syncwarp(kernel_backend):
    cases = torch.tensor([[c if c < 2**31 else c - 2**32 for c in case] for case in WARP_CASES], dtype=torch.int32)
    out = kernel_backend.probe("warp", cases)
    assert out.shape == (len(WARP_CASES), 64)
    for k, case in enumerate(WARP_CASES):
        for t in range(64):
            want = _expected_warp(case, t)
            if want is not None:
                assert out[k, t].item() == want, f"case {case}, thread {t}: got {out[k, t].item()}, expected {want}"


def test_atomics(kernel_backend):
    grid, block = (7,), (96,)
    n = 7 * 96
    i_add, i_min, i_max, i_exch, f_add, u_add, u_cas = kernel_backend.probe("atomic", grid=grid, block=block).tolist()
    assert (i_add, i_min, i_max, f_add, u_add, u_cas) == (n, 0, n - 1, n, n * (n - 1) // 2, 2 * n)
    assert 0 <= i_exch < n


def test_half_and_bfloat16_conversions_round_to_nearest_even(kernel_backend):
    g = torch.Generator().manual_seed(5)
    bits = torch.randint(-(2**31), 2**31 - 1, (20000,), generator=g, dtype=torch.int64).to(torch.int32)
    special = torch.tensor(
        [0.0, -0.0, 1.0, 65504.0, 65519.996, 65520.0, 65536.0, 2.0**-24, 2.0**-25, 2.0**-25 * 1.0000001, 3 * 2.0**-26, 2.0**-14,
         2.0**-14 * (1 - 2.0**-11), 1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-8, 1 + 3 * 2.0**-8, 3.4e38, 1e-40, math.inf, -math.inf],
        dtype=torch.float32,
    )
    x = torch.cat([bits.view(torch.float32), special, -special])
    x = x[~torch.isnan(x)]  # NaN payloads differ between the device (0x7fff) and torch, by design
    out = kernel_backend.probe("convert", x)
    half, bf16 = x.half(), x.bfloat16()
    assert torch.equal(out[:, 0] & 0xFFFF, half.view(torch.int16).to(torch.int32) & 0xFFFF)
    assert torch.equal(out[:, 1] & 0xFFFF, bf16.view(torch.int16).to(torch.int32) & 0xFFFF)
    assert torch.equal(out[:, 2], half.float().view(torch.int32))
    assert torch.equal(out[:, 3], bf16.float().view(torch.int32))


