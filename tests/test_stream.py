"""manifpt_ext.project_stream: streamed reals (chunks, arrays, memmaps, .npy files) give the same
result as one project call, bitwise for index and artifact."""
import numpy as np
import pytest
import torch
from helpers import make_pair
from hypothesis import given, settings
from hypothesis import strategies as st

from manifpt_ext import project, project_stream


def assert_same(a, b):
    assert torch.equal(a.index, b.index)
    # bitwise (-0.0 and +0.0 differ here)
    assert torch.equal(a.artifact.reshape(-1).view(torch.int8), b.artifact.reshape(-1).view(torch.int8))
    assert torch.equal(a.distance, b.distance)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("rows", [1, 7, 64, 1000])
def test_tensor_source_equals_one_shot(dtype, rows):
    x, y = make_pair(23, 301, (4, 3), dtype, seed=1)
    row_bytes = 12 * x.element_size()
    assert_same(project_stream(x, y, memory_budget=rows * row_bytes), project(x, y))


def test_list_iterator_numpy_and_memmap_sources(tmp_path):
    x, y = make_pair(40, 257, (16,), seed=2)
    one = project(x, y)
    parts = [y[:5], y[5:5], y[5:100], y[100:]]  # includes an empty chunk and uneven sizes
    assert_same(project_stream(x, parts, memory_budget=16 * 4 * 13), one)
    assert_same(project_stream(x, iter([p.numpy() for p in parts]), memory_budget=10**6), one)
    assert_same(project_stream(x, y.numpy(), memory_budget=16 * 4 * 10), one)
    path = tmp_path / "reals.npy"
    np.save(path, y.numpy())
    mm = np.load(path, mmap_mode="r")
    assert_same(project_stream(x, mm, memory_budget=16 * 4 * 10), one)
    assert_same(project_stream(x, path, memory_budget=16 * 4 * 10), one)
    assert_same(project_stream(x, str(path), memory_budget=16 * 4 * 3), one)


def test_ties_across_chunks_keep_the_lowest_global_index():
    g = torch.Generator().manual_seed(0)
    uniq = torch.randn(6, 5, generator=g)
    y = torch.cat([uniq, uniq, uniq])
    x = uniq[[4, 1]] + 1e-3 * torch.randn(2, 5, generator=g)
    for rows in (1, 2, 5, 6, 7):
        r = project_stream(x, y, memory_budget=rows * 5 * 4)
        assert r.index.tolist() == project(x, y).index.tolist() == [4, 1]


def test_float32_ties_broken_in_float64_as_one_shot():
    # Two reals, in different chunks, whose float64 distances differ (1 + 2^-30 vs 1) but round to the
    # same float32 distance (1.0): the stream must pick the float64-nearer one, as the fused op does.
    x = torch.zeros(1, 2)
    y = torch.tensor([[1.0, 2.0**-15], [1.0, 0.0]])
    one = project(x, y)
    assert one.index.item() == 1
    assert one.distance.tolist() == [1.0]
    assert project(x, y[:1]).distance.tolist() == [1.0]  # really a float32 tie
    assert_same(project_stream(x, y, memory_budget=8), one)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(0, 12), n=st.integers(1, 50), d=st.integers(1, 9), rows=st.integers(1, 60), seed=st.integers(0, 10**6))
def test_property_stream_equals_one_shot(m, n, d, rows, seed):
    x, y = make_pair(m, n, (d,), seed=seed)
    y = torch.cat([y, y[: n // 3]])  # duplicates: exact ties across chunks
    assert_same(project_stream(x, y, memory_budget=rows * d * 4), project(x, y))


def test_npy_memmap_larger_than_budget_keeps_rss_bounded(tmp_path):
    from manifpt.bench import stream_rss_probe

    n, d = 60000, 256  # a 61 MB file, streamed with a 4 MB budget
    path = tmp_path / "big.npy"
    np.save(path, np.random.default_rng(0).standard_normal((n, d), dtype=np.float32))
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((50, d), dtype=np.float32))
    one = project(x, torch.from_numpy(np.load(path)))
    assert_same(project_stream(x, path, memory_budget=4 << 20), one)
    assert_same(project_stream(x, np.load(path, mmap_mode="r"), memory_budget=4 << 20), one)
    rss = stream_rss_probe(str(path), 50, d, 4 << 20)  # the same call, in a fresh process
    assert rss["growth_mib"] < 24, f"streaming a 61 MB file with a 4 MB budget grew RSS by {rss['growth_mib']:.1f} MiB"


def test_stream_errors(tmp_path):
    x, y = make_pair(3, 10, (4,))
    with pytest.raises(ValueError, match="reals is empty"):
        project_stream(x, [])
    with pytest.raises(ValueError, match="memory_budget must be a positive"):
        project_stream(x, y, memory_budget=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        project_stream(x, tmp_path / "missing.npy")
    with pytest.raises(TypeError, match="reals must be a tensor"):
        project_stream(x, 42)
    with pytest.raises(TypeError, match="reals chunk 1 must be a tensor or numpy array"):
        project_stream(x, [y, "oops"])
    np.save(tmp_path / "ints.npy", np.zeros((5, 4), dtype=np.int32))
    with pytest.raises(TypeError, match="dtype int32"):
        project_stream(x, tmp_path / "ints.npy")
    with pytest.raises(ValueError, match="trailing shape"):
        project_stream(x, torch.randn(5, 3))
    y[2, 1] = float("nan")
    with pytest.raises(RuntimeError, match="reals contains NaN"):
        project_stream(x, y, memory_budget=64)
