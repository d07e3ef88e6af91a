"""manifpt_ext.project, one suite over every backend (the `backend` fixture, conftest.py): the CPU code
paths (MANIFPT_CPU_ISA auto/avx2/blas/portable), the GPU (skipped without one) and the CUDA emulation
(the same device code and host launcher on CPU threads, always run). Each result is held to what its
backend promises (Backend.check): the CPU paths to the float64 reference bit for bit, the CUDA kernels'
default variant to float64 arithmetic up to the rounding of its float32 sums.

Then what only one side has: the CPU op's tile sizes, BLAS agreement and cpu_info (`cpu_backend`), and the
CUDA kernels' precisions, variants and index arithmetic (`kernel_backend`). The FFT path is in
test_project_freq.py, the CUDA built-ins the emulation must reproduce in test_cuda_builtins.py.
"""
import platform
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch
from helpers import assert_exact_result, assert_kernel_result, assert_matches_reference, make_pair
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import manifpt_ext
from manifpt_ext import project

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
SHAPES = [  # (M, N, trailing shape S); the CUDA kernel's block is 32 fakes, its tile 32 reals x 16 dims
    (1, 1, (1,)),
    (1, 37, (5,)),
    (37, 1, (5,)),  # N = 1
    (5, 9, (1,)),
    (40, 50, (1,)),  # D = 1
    (70, 90, (17,)),  # M and D not multiples of the CUDA block (32) and staging width (16)
    (129, 517, (3,)),
    (300, 1100, (64,)),
    (70, 700, (130,)),  # D past the CPU micro-kernel's widths
    (33, 65, (3, 8, 8)),  # image-shaped (M, C, H, W)
    (0, 10, (4,)),
]
HYPOTHESIS_FIXTURES = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# ---- every backend ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("m,n,shape", SHAPES, ids=str)
def test_matches_reference(backend, m, n, shape, dtype):
    x, y = make_pair(m, n, shape, dtype, device=backend.device)
    backend.check(backend.project(x, y), x, y)


def test_ties_go_to_lowest_index_across_tiles(backend):
    g = torch.Generator().manual_seed(0)
    uniq = torch.randn(40, 8, generator=g)
    reals = backend.to(torch.cat([uniq, uniq, uniq]))  # 120 reals: copies in other tiles
    fakes = backend.to(torch.cat([uniq[[3, 7, 0, 39]], uniq[[3]] + 1e-3]))
    p = backend.project(fakes, reals)
    assert p.index.tolist() == [3, 7, 0, 39, 3]
    assert p.distance[:4].tolist() == [0.0] * 4
    assert bool((p.artifact[:4] == 0).all())
    # Equidistant distinct reals (exact in float32): the lower index wins.
    p = backend.project(backend.to(torch.tensor([[1.0, 1.0]])), backend.to(torch.tensor([[2.0, 1.0], [0.0, 1.0]])))
    assert p.index.tolist() == [0]


@settings(max_examples=25, **HYPOTHESIS_FIXTURES)
@given(
    m=st.integers(1, 70),
    n=st.integers(1, 80),
    d=st.integers(1, 40),
    dup=st.integers(1, 3),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_random_shapes_with_certain_answers(backend, m, n, d, dup, dtype, seed):
    # Small integers (exact in every dtype) and repeated reals: every distance is exact, so the index,
    # ties included, is certain on every backend; shapes cross the CPU tiles and the CUDA block (32),
    # tile (32) and staging (16) boundaries.
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(-4, 5, (n, d), generator=g).to(dtype).repeat(dup, 1)
    x = torch.randint(-4, 5, (m, d), generator=g).to(dtype)
    p = backend.project(backend.to(x), backend.to(y))
    r = manifpt_ext.project_reference(x, y)
    assert torch.equal(p.index.cpu(), r.index) and torch.equal(p.distance.cpu(), r.distance)
    assert torch.equal(p.artifact.cpu(), r.artifact)


def test_non_contiguous_inputs(backend):
    x, y = make_pair(40, 90, (6, 10), seed=1, device=backend.device)
    xt, yt = x.transpose(1, 2), y.transpose(1, 2)  # rows not contiguous inside
    assert not xt.is_contiguous() and not yt.is_contiguous()
    backend.check(backend.project(xt, yt), xt, yt)
    xs, ys = x[::2], y[1::3]  # strided rows, contiguous inside: read in place
    backend.check(backend.project(xs, ys), xs, ys)
    ye = y[:1].expand(7, 6, 10)  # row stride 0: seven copies of one real, the first wins
    p = backend.project(xs, ye)
    assert p.index.tolist() == [0] * xs.shape[0]
    backend.check(p, xs, ye, max_uncertain=1.0)
    img = make_pair(9, 20, (3, 4, 5), seed=2, device=backend.device)
    xc, yc = (t.contiguous(memory_format=torch.channels_last) for t in img)
    backend.check(backend.project(xc, yc), xc, yc)


def test_shared_large_offset(backend):
    # All vectors share one offset of scale 300 (noise 0.05), where a float32 GEMM expansion loses the
    # distances to cancellation; every backend must still give the certain answer on every row.
    x, y = make_pair(300, 700, (64,), device=backend.device, seed=7, offset=300.0, noise=0.05)
    backend.check(backend.project(x, y), x, y, max_uncertain=0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_integer_data_exact_ties(backend, seed):
    # Small integers: every distance is exact in float32, so the answer is certain, ties included.
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(-3, 4, (45, 5), generator=g).float().repeat(3, 1)
    x = torch.randint(-3, 4, (70, 5), generator=g).float()
    p = backend.project(backend.to(x), backend.to(y))
    r = manifpt_ext.project_reference(x, y)
    assert torch.equal(p.index.cpu(), r.index)
    assert torch.equal(p.distance.cpu(), r.distance)


def test_nan_and_inf_are_refused(backend):
    x, y = make_pair(4, 6, (3,), device=backend.device)
    y[1, 1] = float("nan")
    with pytest.raises(RuntimeError, match="reals contains NaN or Inf"):
        backend.project(x, y)
    y[1, 1] = 0.0
    x[2, 0] = float("inf")
    with pytest.raises(RuntimeError, match="fakes contains NaN or Inf"):
        backend.project(x, y)
    with pytest.raises(ValueError, match="same device"):
        backend.project(x, y.to("meta"))


def test_opcheck_gradcheck_and_compile(backend):
    x, y = make_pair(20, 50, (6, 5), torch.float64, seed=3, device=backend.device)
    for rx, ry in [(False, False), (True, False), (True, True)]:
        torch.library.opcheck(backend.op, (x.clone().requires_grad_(rx), y.clone().requires_grad_(ry), 0, 0))
    xs, ys = x[:5].clone().requires_grad_(True), y[:12].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: backend.project(a, b).artifact, (xs, ys))
    compiled = torch.compile(lambda a, b: backend.project(a, b).artifact * 2, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, y), backend.project(x, y).artifact * 2)


def test_gradients_match_autograd_of_reference_formula(backend):
    x, y = make_pair(8, 20, (5,), torch.float64, seed=9, device=backend.device)
    x1, y1 = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    p = backend.project(x1, y1)
    w = torch.randn_like(p.artifact)
    (p.artifact * w).sum().add(p.distance.sum()).backward()
    x2, y2 = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    art = x2 - y2[p.index]
    (art * w).sum().add((art**2).sum()).backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(y1.grad, y2.grad)


# ---- the CPU op: tile sizes, the exact re-rank's edges, BLAS agreement, cpu_info ---------------------------


@pytest.mark.parametrize("tile_m,tile_n", [(1, 1), (3, 5), (7, 33), (64, 17), (1000, 3)])
@pytest.mark.parametrize("m", [2, 61])  # few fakes: reals split over threads; many: shared tiles
def test_multi_tile_paths(cpu_backend, m, tile_m, tile_n):
    x, y = make_pair(m, 203, (19,), seed=3)
    assert_matches_reference(project(x, y, tile_m=tile_m, tile_n=tile_n), x, y)


@pytest.mark.parametrize("n", [17, 200])
def test_full_candidate_list_falls_back_to_direct_scan_only_on_ties(cpu_backend, n):
    # n - 1 identical reals and a last, closer one: every identical real lies within the error bound of
    # the others, more than the candidate list (16) holds. For fakes nearest the last real, the dropped
    # copies are provably farther: no direct scan. For fakes nearest the copies, a dropped copy ties the
    # listed best (n = 200), so the row must be scanned directly for the lowest index; with n = 17 only
    # the farther last real is dropped.
    reals = torch.full((n, 32), 3.0)
    reals[-1] += 1e-3
    fakes = torch.full((4, 32), 3.0 + 2e-3)
    before = manifpt_ext.cpu_direct_rows()
    p = project(fakes, reals, tile_n=8)
    assert p.index.tolist() == [n - 1] * 4
    assert manifpt_ext.cpu_direct_rows() == before
    fakes2 = torch.full((2, 32), 2.0)  # nearer the identical block: first of them wins the tie
    assert project(fakes2, reals, tile_n=8).index.tolist() == [0, 0]
    assert manifpt_ext.cpu_direct_rows() - before == (0 if n == 17 else 2)


def _scan_bound(fake: torch.Tensor, reals: torch.Tensor) -> float:
    """The scan's error bound for one fake against one tile holding all reals, as the op computes it
    (select.h: expansion_error_coeff for float32, on vectors centred on the reals' mean)."""
    x, y = fake.double(), reals.double()
    mu = y.mean(0)
    n = (y.shape[1] + 8) * 2.0**-24
    return float(1.01 * n / (1 - n) * ((x - mu).norm() + (y - mu).norm(dim=1).max()) ** 2)


@pytest.mark.parametrize("tile_n", [8, 4096])
def test_full_candidate_list_keeps_the_nearest_without_a_direct_scan(cpu_backend, tile_n):
    # 26 reals inside the error window of the nearest, more than the list holds (16): 10 of them ("far",
    # listed first) lie more than the bound b beyond the nearest, 15 ("near") within b / 2, the nearest
    # last. The list must drop the far ones and still prove its answer exact, without a direct scan.
    g = torch.Generator().manual_seed(5)
    D = 1024

    def at_sqdist(d):  # reals at squared distance d from the origin (the fakes), in random directions
        u = torch.randn(len(d), D, generator=g, dtype=torch.float64)
        return u / u.norm(dim=1, keepdim=True) * torch.as_tensor(d, dtype=torch.float64).sqrt()[:, None]

    outer = at_sqdist(torch.full((400,), 4.0))  # the rest of the reals, well outside the window
    b = _scan_bound(torch.zeros(D), outer)
    far = at_sqdist(1.0 + b * torch.linspace(1.3, 1.8, 10))
    near = at_sqdist(1.0 + b * torch.linspace(0.1, 0.4, 15))
    reals = torch.cat([far, outer[:200], near, outer[200:], at_sqdist(torch.tensor([1.0]))]).float()
    fakes = torch.zeros(64, D)  # 8 blocks of 8 fakes: one lane of state on up to 8 threads (candidates.cpp)
    d = (reals.double() ** 2).sum(1)
    gap = (d - d.min()) / _scan_bound(fakes[0], reals)
    assert int(d.argmin()) == len(reals) - 1
    assert ((gap[:10] > 1.1) & (gap[:10] < 1.9)).all() and (gap[210:225] < 0.5).all()  # the construction holds

    before = manifpt_ext.cpu_direct_rows()
    p = project(fakes, reals, tile_m=8, tile_n=tile_n)
    assert_matches_reference(p, fakes, reals)
    assert p.index.tolist() == [len(reals) - 1] * 64
    assert manifpt_ext.cpu_direct_rows() == before


def _pack_reference(rows: torch.Tensor, mu: torch.Tensor, width: int):
    """What the k-major packing must give (cpu/pack.h): rows centred in float32, transposed, zero padding,
    |row| in float64 of the centred values (of the float64 difference where the float32 one overflows)."""
    v = rows - mu
    packed = torch.zeros(rows.shape[1], width)
    packed[:, : len(rows)] = v.T
    exact = torch.where(v.isfinite(), v.double(), rows.double() - mu.double())
    return packed, (exact**2).sum(1).sqrt()


# (rows, width, D): full 8-row groups and partial ones, padding, micro-panels of 8, 6, 5 and 3 rows, D
# past a multiple of 8 and of the 128-column chunk, a single column, and no rows at all.
@pytest.mark.parametrize(
    "n,width,d", [(32, 32, 300), (29, 32, 131), (16, 16, 40), (8, 8, 391), (6, 6, 77), (5, 5, 64), (3, 3, 24), (3, 16, 1), (0, 16, 9)]
)
def test_cpu_packing_avx2_matches_scalar_bit_for_bit_and_the_reference(n, width, d):
    g = torch.Generator().manual_seed(n * 1000 + d)
    rows = torch.randn(n, d, generator=g) * 3 + 5
    mu = torch.randn(d, generator=g) + 5
    if n > 2:
        rows[2, 0], mu[0] = 3e38, -1e38  # centring overflows float32: that 8 x 8 block takes the scalar code
    scalar = torch.ops.manifpt._cpu_pack_kmajor(rows, mu, width, False)
    packed, norm = _pack_reference(rows, mu, width)
    assert torch.equal(scalar[0], packed)
    torch.testing.assert_close(scalar[2], norm, rtol=1e-12, atol=0)
    torch.testing.assert_close(scalar[1], (norm**2).float(), rtol=2**-23, atol=0)
    if manifpt_ext.cpu_info()["scan"] != "avx2":
        pytest.skip("this CPU has no AVX2: only the scalar packing runs here")
    vector = torch.ops.manifpt._cpu_pack_kmajor(rows, mu, width, True)
    for a, b in zip(vector, scalar):
        assert torch.equal(a, b)  # the same lanes in the same order: identical, not merely close


def test_cpu_packing_rejects_bad_arguments():
    with pytest.raises(RuntimeError, match="width must be in"):
        torch.ops.manifpt._cpu_pack_kmajor(torch.ones(4, 8), torch.ones(8), 33, False)
    with pytest.raises(RuntimeError, match="mu must be a float32 CPU tensor of 8 values"):
        torch.ops.manifpt._cpu_pack_kmajor(torch.ones(4, 8), torch.ones(7), 8, False)


def test_shared_large_offset_is_exact_where_faiss_is_not():
    # At a size where FAISS IndexFlatL2 (a float32 GEMM expansion) gets most rows wrong (the default path;
    # test_shared_large_offset holds every backend to the same case at a smaller size).
    x, y = make_pair(2000, 4000, (256,), seed=7, offset=300.0, noise=0.05)
    p = project(x, y)
    assert_matches_reference(p, x, y)
    index = faiss.IndexFlatL2(256)
    index.add(y.numpy())
    _, fi = index.search(x.numpy(), 1)
    faiss_correct = (torch.from_numpy(fi[:, 0]) == p.index).float().mean().item()
    assert faiss_correct < 0.5, f"FAISS got {faiss_correct:.0%} right: the case no longer exercises cancellation"


def test_agrees_with_faiss_on_well_conditioned_data():
    x, y = make_pair(500, 3000, (48,), seed=11)
    p = project(x, y)
    index = faiss.IndexFlatL2(48)
    index.add(y.numpy())
    fd, fi = index.search(x.numpy(), 1)
    np.testing.assert_array_equal(p.index.numpy(), fi[:, 0])
    np.testing.assert_allclose(p.distance.numpy(), fd[:, 0], rtol=1e-4, atol=1e-4)


def test_values_whose_squares_overflow_float32(cpu_backend):
    # |x| ~ 1e20: squares overflow float32, so the expansion is useless; the direct float64 form ranks.
    x, y = make_pair(20, 50, (7,), seed=5)
    x, y = x * 1e20, y * 1e20
    p = project(x, y)
    r = manifpt_ext.project_reference(x, y)
    assert torch.equal(p.index, r.index)
    torch.testing.assert_close(p.artifact, r.artifact, rtol=0, atol=0)


def test_tiny_values_near_underflow(cpu_backend):
    x, y = make_pair(20, 50, (7,), seed=6)
    x, y = x * 1e-19, y * 1e-19
    assert torch.equal(project(x, y).index, manifpt_ext.project_reference(x, y).index)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 30),
    n=st.integers(1, 60),
    d=st.integers(1, 40),
    tile_m=st.integers(0, 9),
    tile_n=st.integers(0, 9),
    offset=st.sampled_from([0.0, 10.0, 1000.0]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_random_shapes_and_tiles(m, n, d, tile_m, tile_n, offset, dtype, seed):
    x, y = make_pair(m, n, (d,), dtype, seed=seed, offset=offset)
    assert_matches_reference(project(x, y, tile_m=tile_m, tile_n=tile_n), x, y)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), dup=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_property_result_independent_of_tiling(n, dup, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(-3, 4, (n, 5), generator=g).float().repeat(dup, 1)  # many exact ties
    x = torch.randint(-3, 4, (12, 5), generator=g).float()
    ref = project(x, y)
    for tm, tn in [(1, 1), (5, 3), (12, 7)]:
        p = project(x, y, tile_m=tm, tile_n=tn)
        assert torch.equal(p.index, ref.index)
    assert torch.equal(ref.index, manifpt_ext.project_reference(x, y).index)


def test_torch_compile_inductor_default_backend():
    # The default backend lowers the graph around the op and compiles C++; the op stays an extern call.
    x, y = make_pair(10, 30, (6,), seed=9)

    def f(a, b):
        return project(a, b).artifact * 2 + 1

    torch.testing.assert_close(torch.compile(f, fullgraph=True)(x, y), f(x, y))


@pytest.mark.parametrize("path,gemm,mr", [("portable", "portable", 1), ("blas", "blas", 1), ("avx2", "avx2", 6)])
def test_cpu_info_reports_the_path_and_blocking(monkeypatch, path, gemm, mr):
    if path == "avx2" and manifpt_ext.cpu_info()["scan"] != "avx2":
        pytest.skip("this CPU has no AVX2: the avx2 path falls back to BLAS")
    monkeypatch.setenv("MANIFPT_CPU_ISA", path)
    monkeypatch.setenv("MANIFPT_CPU_KC", "40")  # forced K-block: D = 100 splits into 3 blocks of 40 (8-float multiples)
    info = manifpt_ext.cpu_info(1000, 5000, 100)
    assert (info["gemm"], info["mr"]) == (gemm, mr)
    assert info["scan"] == ("portable" if path == "portable" else "avx2")
    if mr > 1:
        assert info["kc"] == 40 and info["mc"] % mr == 0
    assert info["prefetch"] == 1
    monkeypatch.setenv("MANIFPT_CPU_PREFETCH", "0")
    assert manifpt_ext.cpu_info(1000, 5000, 100)["prefetch"] == 0
    with pytest.raises(ValueError, match="m, n and d must be >= 1"):
        manifpt_ext.cpu_info(0, 1, 1)


def test_cpu_paths_come_from_the_kernel_registry(monkeypatch):
    paths = manifpt_ext.cpu_paths()
    assert paths[0] == "auto" and paths[-2:] == ("blas", "portable")
    kernels = paths[1:-2]
    if platform.machine() in ("x86_64", "AMD64"):
        assert kernels == ("avx512", "avx2")  # best first: the order auto prefers them in
    for i, name in enumerate(kernels):  # a name takes that kernel, or the best one below it this CPU runs
        monkeypatch.setenv("MANIFPT_CPU_ISA", name)
        assert manifpt_ext.cpu_info()["gemm"] in (*kernels[i:], "blas")
    monkeypatch.setenv("MANIFPT_CPU_ISA", "auto")
    assert manifpt_ext.cpu_info()["gemm"] in (*kernels, "blas")
    cpuinfo = Path("/proc/cpuinfo")
    if kernels == ("avx512", "avx2") and cpuinfo.exists() and " avx512f " in cpuinfo.read_text():
        assert manifpt_ext.cpu_info()["gemm"] == kernels[0]


def test_unknown_cpu_isa_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("MANIFPT_CPU_ISA", "sse9")
    x, y = make_pair(3, 4, (2,))
    with pytest.raises(RuntimeError, match="MANIFPT_CPU_ISA must be auto, avx512, avx2, blas or portable, got 'sse9'"):
        project(x, y)


# ---- the CUDA kernels: agreement with the CPU op, index arithmetic, overflow, precisions and variants -------


def test_cuda_kernel_is_compiled_into_builds_with_cuda():
    # On this project's machines torch is a CUDA build and nvcc is present: MANIFPT_CUDA=AUTO must have
    # compiled the CUDA kernel even without a GPU (the dispatcher lists it).
    if torch.version.cuda is None:
        pytest.skip("CPU-only torch: the CUDA kernel is not built")
    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc: AUTO builds CPU only")
    assert manifpt_ext.cuda_available()


def test_kernel_equals_cpu_op(kernel_backend):
    x, y = make_pair(500, 2000, (96,), seed=1)
    pc, pk = manifpt_ext.project(x, y), kernel_backend.project(kernel_backend.to(x), kernel_backend.to(y))
    certain = assert_kernel_result(pk, kernel_backend.to(x), kernel_backend.to(y))
    assert torch.equal(pc.index[certain], pk.index.cpu()[certain])
    torch.testing.assert_close(pc.artifact[certain], pk.artifact.cpu()[certain], rtol=0, atol=0)


def test_index_arithmetic_past_2_31_elements(kernel_backend):
    # Rows 2^31 + 40 elements apart in one sparse buffer (only the touched pages exist): the kernel
    # reads fakes at row * stride > 2^31 and reals at > 2^32 elements, in place (the launcher does not
    # copy rows that are contiguous inside), so 32-bit index arithmetic anywhere would read garbage.
    D, S = 24, 2**31 + 40
    buf = kernel_backend.sparse_buffer(2 * S + 2 * D, torch.float16)
    if buf is None:
        pytest.skip("no room for an 8 GiB (virtual) buffer on this device")
    g = torch.Generator().manual_seed(3)
    xv = torch.randn(2, D, generator=g).half()
    yv = torch.randn(3, D, generator=g).half()
    yv[2] = xv[1] + 0.01  # the farthest row is the nearest real of fake 1
    for r in range(2):
        buf[r * S : r * S + D] = kernel_backend.to(xv[r])
    for r in range(3):
        buf[r * S + D : r * S + 2 * D] = kernel_backend.to(yv[r])
    fakes = torch.as_strided(buf, (2, D), (S, 1), 0)
    reals = torch.as_strided(buf, (3, D), (S, 1), D)
    p = kernel_backend.project(fakes, reals)
    assert p.index[1].item() == 2
    assert_kernel_result(p, kernel_backend.to(xv), kernel_backend.to(yv))  # the same values, contiguous
    assert torch.equal(p.index.cpu(), manifpt_ext.project(xv, yv).index)
    del fakes, reals, buf


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_squares_overflowing_float32(kernel_backend, dtype):
    # Values ~1e20: every squared distance overflows float32. The tensor-core kernel centres and ranks
    # in float64, so it returns the exact index (the distance, a float32, is inf, as the CPU op's);
    # the direct kernel accumulates in float32, where the index would be meaningless, so it refuses.
    x, y = make_pair(20, 50, (7,), seed=5)
    xb, yb = (x * 1e20).to(dtype), (y * 1e20).to(dtype)
    want = manifpt_ext.project_reference(xb, yb).index
    for precision in ("exact", "tf32", "bf16"):
        p = kernel_backend.project_kernel(kernel_backend.to(xb), kernel_backend.to(yb), precision=precision)
        assert torch.equal(p.index.cpu(), want), precision
    assert torch.equal(p.distance.cpu(), manifpt_ext.project(xb, yb).distance)
    with pytest.raises(RuntimeError, match="overflow float32"):
        kernel_backend.project_kernel(kernel_backend.to(xb), kernel_backend.to(yb), variant="direct")
    x64, y64 = kernel_backend.to(x.double() * 1e20), kernel_backend.to(y.double() * 1e20)  # float64 accumulates in float64
    assert torch.equal(kernel_backend.project(x64, y64).index.cpu(), manifpt_ext.project_reference(x64.cpu(), y64.cpu()).index)


# ---- the tensor-core variant (cuda/mma.cuh): every precision gives the float64 answer ---------------------

PRECISIONS = ["exact", "tf32", "bf16"]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("m,n,d,splits", [(70, 200, 17, 0), (130, 90, 33, 1), (5, 700, 40, 3)], ids=str)
def test_mma_matches_float64_reference(kernel_backend, precision, dtype, m, n, d, splits):
    x, y = make_pair(m, n, (d,), dtype, device=kernel_backend.device, seed=m + n)
    assert_exact_result(kernel_backend.project_kernel(x, y, precision=precision, splits=splits), x, y)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_mma_shared_large_offset(kernel_backend, precision, dtype):
    # The case where a plain float32 GEMM expansion fails: a shared offset of 300, noise 0.05.
    x, y = make_pair(150, 400, (64,), dtype, device=kernel_backend.device, seed=7, offset=300.0, noise=0.05)
    assert_exact_result(kernel_backend.project_kernel(x, y, precision=precision), x, y)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("copies,splits", [(3, 1), (3, 0), (20, 1), (20, 0)], ids=str)
def test_mma_duplicated_reals_across_tiles_and_blocks(kernel_backend, precision, copies, splits):
    # Copies of every real, 40 rows apart: across tiles of 64 reals and, with splits, across blocks;
    # 20 copies of the nearest real are more than a fake's 16 candidates (the direct scan of overflowed
    # rows). The lowest copy must win, at distance 0 for exact copies.
    g = torch.Generator().manual_seed(1)
    uniq = torch.randn(40, 9, generator=g)
    reals = kernel_backend.to(uniq.repeat(copies, 1))
    fakes = kernel_backend.to(torch.cat([uniq[[3, 7, 0, 39]], uniq[[5, 21]] + 1e-3]))
    p = kernel_backend.project_kernel(fakes, reals, precision=precision, splits=splits)
    assert p.index.tolist() == [3, 7, 0, 39, 5, 21]
    assert p.distance[:4].tolist() == [0.0] * 4 and bool((p.artifact[:4] == 0).all())
    assert_exact_result(p, fakes, reals)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("m,n,d", [(1, 1, 1), (1, 300, 3), (300, 1, 3), (65, 130, 1), (1, 1, 700)], ids=str)
def test_mma_edge_shapes(kernel_backend, precision, m, n, d):
    x, y = make_pair(m, n, (d,), device=kernel_backend.device, seed=m * n + d)
    assert_exact_result(kernel_backend.project_kernel(x, y, precision=precision), x, y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_mma_large_dimension(kernel_backend, precision, dtype):
    # D = 196608 (a 3 x 256 x 256 image) at small M and N: 12288 staging steps per tile.
    x, y = make_pair(3, 5, (3, 256, 256), dtype, device=kernel_backend.device, seed=11)
    assert_exact_result(kernel_backend.project_kernel(x, y, precision=precision), x, y)


@pytest.mark.parametrize("seed", [0, 1])
def test_mma_equals_the_direct_variant(kernel_backend, seed):
    # Small integers: the direct kernel's float32 distances are exact too, so both variants must
    # agree bit for bit, ties included (reals repeated across tiles).
    g = torch.Generator().manual_seed(seed)
    y = kernel_backend.to(torch.randint(-3, 4, (45, 6), generator=g).float().repeat(3, 1))
    x = kernel_backend.to(torch.randint(-3, 4, (90, 6), generator=g).float())
    direct = kernel_backend.project_kernel(x, y, variant="direct")
    for precision in PRECISIONS:
        fast = kernel_backend.project_kernel(x, y, precision=precision, variant="mma")
        assert torch.equal(fast.index, direct.index) and torch.equal(fast.distance, direct.distance), precision
        assert torch.equal(fast.artifact, direct.artifact)


def test_precision_and_variant_arguments_are_checked(kernel_backend):
    x, y = make_pair(4, 6, (3,), device=kernel_backend.device)
    with pytest.raises(ValueError, match="precision must be one of"):
        kernel_backend.project_kernel(x, y, precision="fp8")
    with pytest.raises(ValueError, match="precision must be one of"):
        manifpt_ext.project(x, y, precision="half")
    with pytest.raises(RuntimeError, match="variant must be 'auto', 'mma' or 'direct'"):
        kernel_backend.project_kernel(x, y, variant="fast")
    with pytest.raises(ValueError, match="splits must be >= 0"):
        kernel_backend.project_kernel(x, y, splits=-1)


def test_mma_opcheck(kernel_backend):
    x, y = make_pair(20, 50, (6, 5), torch.float64, seed=3, device=kernel_backend.device)
    op = torch.ops.manifpt.project_precision.default if kernel_backend.name == "cuda" else torch.ops.manifpt._project_precision_emulated.default
    torch.library.opcheck(op, (x, y, "tf32", "auto", 2))
    xs = x[:5].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: kernel_backend.project_kernel(a, y, precision="bf16").artifact, (xs,))
