"""manifpt_ext.project on the CPU: exactness against the float64 reference and FAISS, every code path,
tiling, ties, dtypes, shapes, and the torch integration (opcheck, autograd, compile)."""
import faiss
import numpy as np
import pytest
import torch
from helpers import assert_matches_reference, make_pair
from hypothesis import given, settings
from hypothesis import strategies as st

import manifpt_ext
from manifpt_ext import project

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
SHAPES = [  # (M, N, trailing shape S)
    (1, 1, (1,)),
    (1, 37, (5,)),
    (37, 1, (5,)),
    (5, 9, (1,)),
    (129, 517, (3,)),
    (300, 1100, (64,)),
    (70, 700, (130,)),
    (33, 65, (3, 8, 8)),  # image-shaped (M, C, H, W)
    (0, 10, (4,)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("m,n,shape", SHAPES, ids=str)
def test_matches_reference(cpu_path, m, n, shape, dtype):
    x, y = make_pair(m, n, shape, dtype)
    assert_matches_reference(project(x, y), x, y)


@pytest.mark.parametrize("tile_m,tile_n", [(1, 1), (3, 5), (7, 33), (64, 17), (1000, 3)])
@pytest.mark.parametrize("m", [2, 61])  # few fakes: reals split over threads; many: shared tiles
def test_multi_tile_paths(cpu_path, m, tile_m, tile_n):
    x, y = make_pair(m, 203, (19,), seed=3)
    assert_matches_reference(project(x, y, tile_m=tile_m, tile_n=tile_n), x, y)


def test_non_contiguous_inputs():
    x, y = make_pair(40, 90, (6, 10), seed=1)
    xt, yt = x.transpose(1, 2), y.transpose(1, 2)  # (M, 10, 6) views, not contiguous
    assert not xt.is_contiguous() and not yt.is_contiguous()
    assert_matches_reference(project(xt, yt), xt, yt)
    xs, ys = x[::2], y[1::3]  # strided along the sample dimension
    assert_matches_reference(project(xs, ys), xs, ys)


def test_ties_go_to_lowest_index(cpu_path):
    g = torch.Generator().manual_seed(0)
    uniq = torch.randn(10, 8, generator=g)
    reals = torch.cat([uniq, uniq, uniq])  # every real appears three times
    fakes = torch.cat([uniq[[3, 7, 0]], uniq[[3]] + 1e-3])
    p = project(fakes, reals)
    assert p.index.tolist() == [3, 7, 0, 3]
    assert p.distance[:3].tolist() == [0.0, 0.0, 0.0]
    assert torch.all(p.artifact[:3] == 0)


@pytest.mark.parametrize("n", [17, 200])
def test_candidate_overflow_falls_back_to_direct_scan(cpu_path, n):
    # All reals identical but for the last, closer one: every real lies within the error bound of the
    # best, the candidate list (16) overflows and the row must be scanned directly.
    reals = torch.full((n, 32), 3.0)
    reals[-1] += 1e-3
    fakes = torch.full((4, 32), 3.0 + 2e-3)
    p = project(fakes, reals, tile_n=8)
    assert p.index.tolist() == [n - 1] * 4
    fakes2 = torch.full((2, 32), 2.0)  # nearer the identical block: first of them wins the tie
    assert project(fakes2, reals, tile_n=8).index.tolist() == [0, 0]


def test_shared_large_offset_is_exact_where_faiss_is_not(cpu_path):
    # The case: all vectors = one common vector of scale 300 + noise 0.05. A GEMM expansion in
    # float32 (FAISS IndexFlatL2's BLAS path) loses the distances to cancellation.
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


def test_values_whose_squares_overflow_float32(cpu_path):
    # |x| ~ 1e20: squares overflow float32, so the expansion is useless; the direct float64 form ranks.
    x, y = make_pair(20, 50, (7,), seed=5)
    x, y = x * 1e20, y * 1e20
    p = project(x, y)
    r = manifpt_ext.project_reference(x, y)
    assert torch.equal(p.index, r.index)
    torch.testing.assert_close(p.artifact, r.artifact, rtol=0, atol=0)


def test_tiny_values_near_underflow(cpu_path):
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
def test_property_random_shapes(m, n, d, tile_m, tile_n, offset, dtype, seed):
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


def test_opcheck():
    x, y = make_pair(9, 13, (4,), torch.float64, seed=2)
    for rx, ry in [(False, False), (True, False), (True, True)]:
        args = (x.clone().requires_grad_(rx), y.clone().requires_grad_(ry), 0, 0)
        torch.library.opcheck(torch.ops.manifpt.project.default, args)


def test_gradcheck_artifact_float64():
    x, y = make_pair(6, 11, (3,), torch.float64, seed=4)
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: project(a, b).artifact, (x, y))


def test_gradients_match_autograd_of_reference_formula():
    x, y = make_pair(8, 20, (5,), torch.float64, seed=9)
    x1, y1 = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    p = project(x1, y1)
    w = torch.randn_like(p.artifact)
    (p.artifact * w).sum().add(p.distance.sum()).backward()
    x2, y2 = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    art = x2 - y2[p.index]
    (art * w).sum().add((art**2).sum()).backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(y1.grad, y2.grad)


def test_torch_compile_fullgraph():
    x, y = make_pair(10, 30, (2, 3), seed=8)

    def f(a, b):
        p = project(a, b)
        return p.artifact * 2, p.index, p.distance.sqrt()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    for got, want in zip(compiled(x, y), f(x, y)):
        torch.testing.assert_close(got, want)


def test_cuda_kernel_is_compiled_into_builds_with_cuda():
    # On this project's machines torch is a CUDA build and nvcc is present: MANIFPT_CUDA=AUTO must have
    # compiled the CUDA kernel even without a GPU (the dispatcher lists it).
    if torch.version.cuda is None:
        pytest.skip("CPU-only torch: the CUDA kernel is not built")
    import shutil

    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc: AUTO builds CPU only")
    assert manifpt_ext.cuda_available()


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
    with pytest.raises(ValueError, match="m, n and d must be >= 1"):
        manifpt_ext.cpu_info(0, 1, 1)


def test_unknown_cpu_isa_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("MANIFPT_CPU_ISA", "sse9")
    x, y = make_pair(3, 4, (2,))
    with pytest.raises(RuntimeError, match="MANIFPT_CPU_ISA must be auto, avx512, avx2, blas or portable, got 'sse9'"):
        project(x, y)
