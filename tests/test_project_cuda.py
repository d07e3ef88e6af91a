"""manifpt::project's CUDA kernel, run on the GPU when there is one and always under the CUDA emulation
(the same device code and host launcher on CPU threads): against float64 arithmetic and the reference,
against the CPU op, at the edges of its index arithmetic and of CUDA's launch rules.

One suite over the `kernel_device` fixture (conftest.py): "cuda" skips without a GPU, "emulated" always
runs. The probe kernels (csrc/testing/probe_kernels.cuh) check the built-ins the kernels rely on against
their definition, so that the emulation is held to the device wherever the suite meets one.
"""
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import manifpt_ext

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
SHAPES = [  # (M, N, trailing shape S); the kernel's block is 32 fakes, its tile 32 reals x 16 dims
    (1, 1, (1,)),
    (1, 37, (5,)),
    (37, 1, (5,)),  # N = 1
    (40, 50, (1,)),  # D = 1
    (70, 90, (17,)),  # M and D not multiples of the block (32) and the staging width (16)
    (129, 517, (3,)),
    (300, 1100, (64,)),
    (33, 65, (3, 8, 8)),  # image-shaped (M, C, H, W)
    (0, 5, (2,)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("m,n,shape", SHAPES, ids=str)
def test_matches_reference(kernel_device, make_inputs, check_kernel_result, m, n, shape, dtype):
    x, y = make_inputs(m, n, shape, dtype, device=kernel_device.device)
    check_kernel_result(kernel_device.project(x, y), x, y)


def test_equals_cpu_op(kernel_device, make_inputs, check_kernel_result):
    x, y = make_inputs(500, 2000, (96,), seed=1)
    pc, pk = manifpt_ext.project(x, y), kernel_device.project(kernel_device.to(x), kernel_device.to(y))
    certain = check_kernel_result(pk, kernel_device.to(x), kernel_device.to(y))
    assert torch.equal(pc.index[certain], pk.index.cpu()[certain])
    torch.testing.assert_close(pc.artifact[certain], pk.artifact.cpu()[certain], rtol=0, atol=0)


def test_shared_large_offset(kernel_device, make_inputs, check_kernel_result):
    # All vectors share one offset of scale 300 (noise 0.05): the direct form has no cancellation.
    x, y = make_inputs(300, 700, (64,), device=kernel_device.device, seed=7, offset=300.0, noise=0.05)
    check_kernel_result(kernel_device.project(x, y), x, y, max_uncertain=0.0)


def test_ties_go_to_lowest_index_across_tiles(kernel_device):
    g = torch.Generator().manual_seed(0)
    uniq = torch.randn(40, 8, generator=g)
    reals = kernel_device.to(torch.cat([uniq, uniq, uniq]))  # 120 reals: copies in other tiles of 32
    fakes = kernel_device.to(torch.cat([uniq[[3, 7, 0, 39]], uniq[[3]] + 1e-3]))
    p = kernel_device.project(fakes, reals)
    assert p.index.tolist() == [3, 7, 0, 39, 3]
    assert p.distance[:4].tolist() == [0.0] * 4
    assert bool((p.artifact[:4] == 0).all())
    # Equidistant distinct reals (exact in float32): the lower index wins.
    p = kernel_device.project(kernel_device.to(torch.tensor([[1.0, 1.0]])), kernel_device.to(torch.tensor([[2.0, 1.0], [0.0, 1.0]])))
    assert p.index.tolist() == [0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_integer_data_exact_ties(kernel_device, seed):
    # Small integers: every distance is exact in float32, so the answer is certain, ties included.
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(-3, 4, (45, 5), generator=g).float().repeat(3, 1)
    x = torch.randint(-3, 4, (70, 5), generator=g).float()
    p = kernel_device.project(kernel_device.to(x), kernel_device.to(y))
    r = manifpt_ext.project_reference(x, y)
    assert torch.equal(p.index.cpu(), r.index)
    assert torch.equal(p.distance.cpu(), r.distance)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    m=st.integers(1, 70),
    n=st.integers(1, 80),
    d=st.integers(1, 40),
    dup=st.integers(1, 3),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_random_shapes_with_certain_answers(kernel_device, m, n, d, dup, dtype, seed):
    # Small integers (exact in every dtype) and repeated reals: every distance is exact, so the index,
    # ties included, is certain; shapes cross the block (32), tile (32) and staging (16) boundaries.
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(-4, 5, (n, d), generator=g).to(dtype).repeat(dup, 1)
    x = torch.randint(-4, 5, (m, d), generator=g).to(dtype)
    p = kernel_device.project(kernel_device.to(x), kernel_device.to(y))
    r = manifpt_ext.project_reference(x, y)
    assert torch.equal(p.index.cpu(), r.index) and torch.equal(p.distance.cpu(), r.distance)
    assert torch.equal(p.artifact.cpu(), r.artifact)


def test_non_contiguous_inputs(kernel_device, make_inputs, check_kernel_result):
    x, y = make_inputs(40, 90, (6, 10), seed=1, device=kernel_device.device)
    xt, yt = x.transpose(1, 2), y.transpose(1, 2)  # rows not contiguous inside: copied by the launcher
    assert not xt.is_contiguous() and not yt.is_contiguous()
    check_kernel_result(kernel_device.project(xt, yt), xt, yt)
    xs, ys = x[::2], y[1::3]  # strided rows, contiguous inside: read in place
    check_kernel_result(kernel_device.project(xs, ys), xs, ys)
    ye = y[:1].expand(7, 6, 10)  # row stride 0
    p = kernel_device.project(xs, ye)
    assert p.index.tolist() == [0] * xs.shape[0]
    check_kernel_result(p, xs, ye, max_uncertain=1.0)
    img = make_inputs(9, 20, (3, 4, 5), seed=2, device=kernel_device.device)
    xc, yc = (t.contiguous(memory_format=torch.channels_last) for t in img)
    check_kernel_result(kernel_device.project(xc, yc), xc, yc)


def test_index_arithmetic_past_2_31_elements(kernel_device, check_kernel_result):
    # Rows 2^31 + 40 elements apart in one sparse buffer (only the touched pages exist): the kernel
    # reads fakes at row * stride > 2^31 and reals at > 2^32 elements, in place (the launcher does not
    # copy rows that are contiguous inside), so 32-bit index arithmetic anywhere would read garbage.
    D, S = 24, 2**31 + 40
    buf = kernel_device.sparse_buffer(2 * S + 2 * D, torch.float16)
    if buf is None:
        pytest.skip("no room for an 8 GiB (virtual) buffer on this device")
    g = torch.Generator().manual_seed(3)
    xv = torch.randn(2, D, generator=g).half()
    yv = torch.randn(3, D, generator=g).half()
    yv[2] = xv[1] + 0.01  # the farthest row is the nearest real of fake 1
    for r in range(2):
        buf[r * S : r * S + D] = kernel_device.to(xv[r])
    for r in range(3):
        buf[r * S + D : r * S + 2 * D] = kernel_device.to(yv[r])
    fakes = torch.as_strided(buf, (2, D), (S, 1), 0)
    reals = torch.as_strided(buf, (3, D), (S, 1), D)
    p = kernel_device.project(fakes, reals)
    assert p.index[1].item() == 2
    check_kernel_result(p, kernel_device.to(xv), kernel_device.to(yv))  # the same values, contiguous
    assert torch.equal(p.index.cpu(), manifpt_ext.project(xv, yv).index)
    del fakes, reals, buf


def test_nan_and_inf_are_refused(kernel_device, make_inputs):
    x, y = make_inputs(4, 6, (3,), device=kernel_device.device)
    y[1, 1] = float("nan")
    with pytest.raises(RuntimeError, match="reals contains NaN or Inf"):
        kernel_device.project(x, y)
    y[1, 1] = 0.0
    x[2, 0] = float("inf")
    with pytest.raises(RuntimeError, match="fakes contains NaN or Inf"):
        kernel_device.project(x, y)
    with pytest.raises(ValueError, match="same device"):
        kernel_device.project(x, y.to("meta"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_squares_overflowing_float32(kernel_device, make_inputs, dtype):
    # Values ~1e20: every squared distance overflows float32. The tensor-core kernel centres and ranks
    # in float64, so it returns the exact index (the distance, a float32, is inf, as the CPU op's);
    # the direct kernel accumulates in float32, where the index would be meaningless, so it refuses.
    x, y = make_inputs(20, 50, (7,), seed=5)
    xb, yb = (x * 1e20).to(dtype), (y * 1e20).to(dtype)
    want = manifpt_ext.project_reference(xb, yb).index
    for precision in ("exact", "tf32", "bf16"):
        p = kernel_device.project_kernel(kernel_device.to(xb), kernel_device.to(yb), precision=precision)
        assert torch.equal(p.index.cpu(), want), precision
    assert torch.equal(p.distance.cpu(), manifpt_ext.project(xb, yb).distance)
    with pytest.raises(RuntimeError, match="overflow float32"):
        kernel_device.project_kernel(kernel_device.to(xb), kernel_device.to(yb), variant="direct")
    x64, y64 = kernel_device.to(x.double() * 1e20), kernel_device.to(y.double() * 1e20)  # float64 accumulates in float64
    assert torch.equal(kernel_device.project(x64, y64).index.cpu(), manifpt_ext.project_reference(x64.cpu(), y64.cpu()).index)


def test_autograd_opcheck_and_compile(kernel_device, make_inputs):
    x, y = make_inputs(20, 50, (6, 5), torch.float64, seed=3, device=kernel_device.device)
    xs, ys = x[:5].clone().requires_grad_(True), y[:12].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: kernel_device.project(a, b).artifact, (xs, ys))
    torch.library.opcheck(kernel_device.op, (x, y, 0, 0))
    compiled = torch.compile(lambda a, b: kernel_device.project(a, b).artifact * 2, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, y), kernel_device.project(x, y).artifact * 2)


# ---- CUDA's launch rules and built-ins, through the probe kernels ------------------------------------------


def test_block_and_thread_indices(kernel_device):
    grid, block = (3, 2, 2), (4, 2, 2)
    out = kernel_device.probe("index", grid=grid, block=block)
    b = torch.stack(torch.meshgrid(*[torch.arange(v) for v in reversed(grid)], indexing="ij"), -1).reshape(-1, 3).flip(-1)
    t = torch.stack(torch.meshgrid(*[torch.arange(v) for v in reversed(block)], indexing="ij"), -1).reshape(-1, 3).flip(-1)
    want = torch.cat([b.repeat_interleave(len(t), 0), t.repeat(len(b), 1)], 1)
    assert torch.equal(out, want)


@pytest.mark.parametrize(
    "grid,block",
    [((1,), (1025,)), ((1,), (33, 32)), ((1,), (1, 1, 65)), ((1,), (2048, 1)), ((1, 65536), (1,)), ((1, 1, 65536), (1,)), ((0,), (32,)), ((1,), (0,))],
    ids=str,
)
def test_bad_launch_configurations_are_refused(kernel_device, grid, block):
    with pytest.raises(RuntimeError, match="invalid configuration argument"):
        kernel_device.probe("index", grid=grid, block=block)


@pytest.mark.parametrize("block", [(1024,), (32, 32), (1, 1, 64), (16, 1, 64)], ids=str)
def test_launch_configurations_at_the_limits_run(kernel_device, block):
    out = kernel_device.probe("index", grid=(2,), block=block)
    assert out.shape == (2 * math.prod(block), 6) and out[-1, 0] == 1


def test_shared_memory_limits(kernel_device):
    lim = kernel_device.limits()
    static = 16  # the probe's own __shared__ total, padded to the alignment of its dynamic shared memory
    checksum = lambda words: 3 * words * (words - 1) // 2 + words  # noqa: E731
    # Up to the default per-block limit (dynamic + static). The limit is a property of the kernel
    # that outlives the call, so it is set to the default first.
    default_max = lim["shared_per_block"] - static
    out = kernel_device.probe("shared", grid=(2,), block=(128,), dynamic_smem=default_max, max_dynamic_smem=default_max)
    assert out.tolist() == [[checksum(default_max // 4), 1]] * 2
    with pytest.raises(RuntimeError, match="invalid argument"):
        kernel_device.probe("shared", grid=(1,), block=(128,), dynamic_smem=lim["shared_per_block"])
    # Past it after cudaFuncAttributeMaxDynamicSharedMemorySize, up to the device's opt-in maximum.
    optin_max = (lim["shared_per_block_optin"] - static) // 4 * 4
    out = kernel_device.probe("shared", grid=(1,), block=(256,), dynamic_smem=optin_max, max_dynamic_smem=optin_max)
    assert out.tolist() == [[checksum(optin_max // 4), 1]]
    with pytest.raises(RuntimeError, match="invalid argument"):
        kernel_device.probe("shared", grid=(1,), block=(32,), dynamic_smem=1024, max_dynamic_smem=lim["shared_per_block_optin"])
    kernel_device.probe("shared", grid=(1,), block=(32,), dynamic_smem=1024, max_dynamic_smem=default_max)


def test_device_limits_are_those_of_a_cuda_device(kernel_device):
    lim = kernel_device.limits()
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


def test_warp_shuffles_votes_and_syncwarp(kernel_device):
    cases = torch.tensor([[c if c < 2**31 else c - 2**32 for c in case] for case in WARP_CASES], dtype=torch.int32)
    out = kernel_device.probe("warp", cases)
    assert out.shape == (len(WARP_CASES), 64)
    for k, case in enumerate(WARP_CASES):
        for t in range(64):
            want = _expected_warp(case, t)
            if want is not None:
                assert out[k, t].item() == want, f"case {case}, thread {t}: got {out[k, t].item()}, expected {want}"


def test_atomics(kernel_device):
    grid, block = (7,), (96,)
    n = 7 * 96
    i_add, i_min, i_max, i_exch, f_add, u_add, u_cas = kernel_device.probe("atomic", grid=grid, block=block).tolist()
    assert (i_add, i_min, i_max, f_add, u_add, u_cas) == (n, 0, n - 1, n, n * (n - 1) // 2, 2 * n)
    assert 0 <= i_exch < n


def test_half_and_bfloat16_conversions_round_to_nearest_even(kernel_device):
    g = torch.Generator().manual_seed(5)
    bits = torch.randint(-(2**31), 2**31 - 1, (20000,), generator=g, dtype=torch.int64).to(torch.int32)
    special = torch.tensor(
        [0.0, -0.0, 1.0, 65504.0, 65519.996, 65520.0, 65536.0, 2.0**-24, 2.0**-25, 2.0**-25 * 1.0000001, 3 * 2.0**-26, 2.0**-14,
         2.0**-14 * (1 - 2.0**-11), 1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-8, 1 + 3 * 2.0**-8, 3.4e38, 1e-40, math.inf, -math.inf],
        dtype=torch.float32,
    )
    x = torch.cat([bits.view(torch.float32), special, -special])
    x = x[~torch.isnan(x)]  # NaN payloads differ between the device (0x7fff) and torch, by design
    out = kernel_device.probe("convert", x)
    half, bf16 = x.half(), x.bfloat16()
    assert torch.equal(out[:, 0] & 0xFFFF, half.view(torch.int16).to(torch.int32) & 0xFFFF)
    assert torch.equal(out[:, 1] & 0xFFFF, bf16.view(torch.int16).to(torch.int32) & 0xFFFF)
    assert torch.equal(out[:, 2], half.float().view(torch.int32))
    assert torch.equal(out[:, 3], bf16.float().view(torch.int32))


# ---- the tensor-core variant (cuda/mma.cuh): every precision gives the float64 answer ---------------------

PRECISIONS = ["exact", "tf32", "bf16"]


def _assert_exact(p, x, y):
    """The tensor-core kernel re-ranks its candidates in float64 on the original values: its index is
    the float64 reference's (ties to the lowest index), its distance that minimum in float32, and its
    artifact fakes - reals[index] in the accumulation type (float32; float64 for float64)."""
    x, y = x.detach().cpu(), y.detach().cpu()
    r = manifpt_ext.project_reference(x, y)
    bad = (p.index.cpu() != r.index).nonzero().flatten().tolist()
    assert not bad, f"rows {bad[:10]} differ from the float64 reference"
    m, n = x.shape[0], y.shape[0]
    d64 = ((x.reshape(m, -1).double() - y.reshape(n, -1)[r.index].double()) ** 2).sum(1)
    torch.testing.assert_close(p.distance.cpu(), d64.float(), rtol=2e-7, atol=0)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    want = (x.reshape(m, -1).to(acc) - y.reshape(n, -1)[r.index].to(acc)).to(x.dtype).reshape(x.shape)
    assert torch.equal(p.artifact.cpu(), want)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("m,n,d,splits", [(70, 200, 17, 0), (130, 90, 33, 1), (5, 700, 40, 3)], ids=str)
def test_mma_matches_float64_reference(kernel_device, make_inputs, precision, dtype, m, n, d, splits):
    x, y = make_inputs(m, n, (d,), dtype, device=kernel_device.device, seed=m + n)
    _assert_exact(kernel_device.project_kernel(x, y, precision=precision, splits=splits), x, y)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_mma_shared_large_offset(kernel_device, make_inputs, precision, dtype):
    # The case where a plain float32 GEMM expansion fails: a shared offset of 300, noise 0.05.
    x, y = make_inputs(150, 400, (64,), dtype, device=kernel_device.device, seed=7, offset=300.0, noise=0.05)
    _assert_exact(kernel_device.project_kernel(x, y, precision=precision), x, y)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("copies,splits", [(3, 1), (3, 0), (20, 1), (20, 0)], ids=str)
def test_mma_duplicated_reals_across_tiles_and_blocks(kernel_device, precision, copies, splits):
    # Copies of every real, 40 rows apart: across tiles of 64 reals and, with splits, across blocks;
    # 20 copies of the nearest real are more than a fake's 16 candidates (the direct scan of overflowed
    # rows). The lowest copy must win, at distance 0 for exact copies.
    g = torch.Generator().manual_seed(1)
    uniq = torch.randn(40, 9, generator=g)
    reals = kernel_device.to(uniq.repeat(copies, 1))
    fakes = kernel_device.to(torch.cat([uniq[[3, 7, 0, 39]], uniq[[5, 21]] + 1e-3]))
    p = kernel_device.project_kernel(fakes, reals, precision=precision, splits=splits)
    assert p.index.tolist() == [3, 7, 0, 39, 5, 21]
    assert p.distance[:4].tolist() == [0.0] * 4 and bool((p.artifact[:4] == 0).all())
    _assert_exact(p, fakes, reals)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("m,n,d", [(1, 1, 1), (1, 300, 3), (300, 1, 3), (65, 130, 1), (1, 1, 700)], ids=str)
def test_mma_edge_shapes(kernel_device, make_inputs, precision, m, n, d):
    x, y = make_inputs(m, n, (d,), device=kernel_device.device, seed=m * n + d)
    _assert_exact(kernel_device.project_kernel(x, y, precision=precision), x, y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_mma_large_dimension(kernel_device, make_inputs, precision, dtype):
    # D = 196608 (a 3 x 256 x 256 image) at small M and N: 12288 staging steps per tile.
    x, y = make_inputs(3, 5, (3, 256, 256), dtype, device=kernel_device.device, seed=11)
    _assert_exact(kernel_device.project_kernel(x, y, precision=precision), x, y)


@pytest.mark.parametrize("seed", [0, 1])
def test_mma_equals_the_direct_variant(kernel_device, seed):
    # Small integers: the direct kernel's float32 distances are exact too, so both variants must
    # agree bit for bit, ties included (reals repeated across tiles).
    g = torch.Generator().manual_seed(seed)
    y = kernel_device.to(torch.randint(-3, 4, (45, 6), generator=g).float().repeat(3, 1))
    x = kernel_device.to(torch.randint(-3, 4, (90, 6), generator=g).float())
    direct = kernel_device.project_kernel(x, y, variant="direct")
    for precision in PRECISIONS:
        fast = kernel_device.project_kernel(x, y, precision=precision, variant="mma")
        assert torch.equal(fast.index, direct.index) and torch.equal(fast.distance, direct.distance), precision
        assert torch.equal(fast.artifact, direct.artifact)


def test_precision_and_variant_arguments_are_checked(kernel_device, make_inputs):
    x, y = make_inputs(4, 6, (3,), device=kernel_device.device)
    with pytest.raises(ValueError, match="precision must be one of"):
        kernel_device.project_kernel(x, y, precision="fp8")
    with pytest.raises(ValueError, match="precision must be one of"):
        manifpt_ext.project(x, y, precision="half")
    with pytest.raises(RuntimeError, match="variant must be 'auto', 'mma' or 'direct'"):
        kernel_device.project_kernel(x, y, variant="fast")
    with pytest.raises(ValueError, match="splits must be >= 0"):
        kernel_device.project_kernel(x, y, splits=-1)


def test_mma_opcheck(kernel_device, make_inputs):
    x, y = make_inputs(20, 50, (6, 5), torch.float64, seed=3, device=kernel_device.device)
    op = torch.ops.manifpt.project_precision.default if kernel_device.name == "cuda" else torch.ops.manifpt._project_precision_emulated.default
    torch.library.opcheck(op, (x, y, "tf32", "auto", 2))
    xs = x[:5].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: kernel_device.project_kernel(a, y, precision="bf16").artifact, (xs,))


# ---- the channelwise FFT path: the fused post-FFT kernel and project_freq ---------------------------------

FREQ_MODES = ["logmag", "magnitude", "complex"]


def _full_spectrum_from_half(half, w):
    """The full fftshifted H x W spectrum rebuilt from an rfft2 half spectrum by Hermitian symmetry
    (F[u][v] = conj(F[-u][-v])), in Python: what the post-FFT kernel must copy, value for value."""
    h, wh = half.shape[-2], half.shape[-1]
    u = torch.arange(h)[:, None].expand(h, w)
    v = torch.arange(w)[None, :].expand(h, w)
    direct = v < wh
    src_u = torch.where(direct, u, (h - u) % h)
    src_v = torch.where(direct, v, (w - v) % w).clamp(max=wh - 1)
    full = half[..., src_u, src_v]
    full = torch.where(direct, full, full.conj())
    return torch.fft.fftshift(full, dim=(-2, -1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 2, 7, 5), (3, 1, 1, 1), (2, 3, 6, 1), (1, 1, 1, 9)], ids=str)
@pytest.mark.parametrize("mode", FREQ_MODES)
def test_freq_post_kernel_under_emulation(mode, shape, dtype):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=g, dtype=dtype)
    spec = torch.fft.rfft2(x)
    got = manifpt_ext.ops._freq_post_emulated(torch.view_as_real(spec).contiguous(), shape[-1], mode)
    full = _full_spectrum_from_half(spec, shape[-1])
    if mode == "complex":
        b, c, h, w = shape
        assert torch.equal(got, torch.view_as_real(full).permute(0, 1, 4, 2, 3).reshape(b, 2 * c, h, w))
    else:
        mag = full.abs()
        want = torch.log1p(mag) if mode == "logmag" else mag
        torch.testing.assert_close(got, want, rtol=4 * torch.finfo(dtype).eps, atol=0)
    # and the embedding of the paper's FREQ space (torch.fft.fft2 + fftshift), up to FFT rounding
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(got, manifpt_ext.freq_embed(x, mode), rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", FREQ_MODES)
def test_project_freq_is_freq_embed_then_project(make_inputs, mode):
    fakes, reals = make_inputs(13, 40, (3, 8, 6), seed=4)
    want = manifpt_ext.project(manifpt_ext.freq_embed(fakes, mode), manifpt_ext.freq_embed(reals, mode))
    got = manifpt_ext.project_freq(fakes, reals, mode=mode)
    assert torch.equal(got.index, want.index) and torch.equal(got.artifact, want.artifact)
    assert torch.equal(got.distance, want.distance)
    pre = manifpt_ext.project_freq(fakes, mode=mode, real_spectra=manifpt_ext.freq_embed(reals, mode))
    assert torch.equal(pre.index, want.index)


def test_project_freq_arguments_are_checked(make_inputs):
    fakes, reals = make_inputs(3, 4, (3, 4, 4))
    with pytest.raises(ValueError, match="mode must be one of"):
        manifpt_ext.project_freq(fakes, reals, mode="phase")
    with pytest.raises(ValueError, match="pass real_images or real_spectra"):
        manifpt_ext.project_freq(fakes)
    with pytest.raises(ValueError, match="real_spectra .* do not match"):
        manifpt_ext.project_freq(fakes, real_spectra=manifpt_ext.freq_embed(reals, "complex"))
    with pytest.raises(ValueError, match="fake_images must be a"):
        manifpt_ext.project_freq(fakes[0], reals)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
@pytest.mark.parametrize("mode", FREQ_MODES)
def test_freq_spectra_on_cuda_match_torch_fft(make_inputs, mode):
    fakes, reals = make_inputs(9, 30, (3, 16, 12), seed=2)
    got = manifpt_ext.ops._freq_spectra(fakes.cuda(), mode).cpu()
    torch.testing.assert_close(got, manifpt_ext.freq_embed(fakes, mode), rtol=1e-4, atol=1e-4)
    p = manifpt_ext.project_freq(fakes.cuda(), reals.cuda(), mode=mode)
    fs, rs = (manifpt_ext.ops._freq_spectra(t.cuda(), mode) for t in (fakes, reals))
    _assert_exact(p, fs, rs)  # the projection of cuFFT's spectra, exact
