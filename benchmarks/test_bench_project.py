"""pytest-benchmark suite: manifpt_ext.project vs FAISS IndexFlatL2 (k=1, + artifact gather) vs
torch.cdist + argmin, on the shapes of `--preset` (small in CI, full for benchmarks/RESULTS.md).

Each test asserts correctness before timing. The full preset also asserts the speed targets
(manifpt.bench.check_targets: >= 1.1x FAISS everywhere, >= 2.5x at (1000, 10000, 64), >= 90% of the
sgemm rate of this run where D >= 512, working memory <= 256 MiB at (20000, 200000, 64)); the small
preset, which CI runs on a shared machine, checks only correctness. The FAISS and GEMM times that the
ratios in extra_info are built from are measured inside the same test, in turns with ours
(bench.time_interleaved), so a slow spell of the machine costs each alike. FAISS's `add` is outside the timed region; ours is timed whole (centring and packing included).
"""
import pytest
import torch

import manifpt_ext
from manifpt.bench import (
    FaissFlat,
    cdist_argmin,
    check_exact,
    check_targets,
    compare,
    gflops,
    make_data,
    peak_rss_of_projection,
    targets_table,
)

faiss = pytest.importorskip("faiss")


def _info(benchmark, shape, sgemm, **extra):
    m, n, d = shape
    benchmark.extra_info.update({"M": m, "N": n, "D": d, "sgemm_gflops": sgemm, **extra})


def test_project_ours(benchmark, shape, sgemm, preset):
    m, n, d = shape
    # the exactness check, then ours, FAISS and this shape's own GEMM timed in turns (bench.compare)
    row = compare(m, n, d, with_cdist=False)
    x, y = make_data(m, n, d)
    benchmark.pedantic(manifpt_ext.project, args=(x, y), rounds=3, warmup_rounds=1)
    _info(benchmark, shape, sgemm, gflops=row.ours_gflops, pct_of_sgemm=row.pct_of_sgemm(sgemm),
          shape_sgemm_gflops=row.sgemm_gflops, faiss_s=row.faiss_s, faiss_gflops=row.faiss_gflops,
          ratio_vs_faiss=row.ratio_vs_faiss)
    if preset == "full":
        targets = check_targets([row], sgemm)
        assert all(t["met"] for t in targets), "speed targets missed:\n" + targets_table(targets)


def test_project_memory_target(preset):
    if preset != "full":
        pytest.skip("the memory target is checked by the full preset")
    mem = peak_rss_of_projection(20000, 200000, 64)
    targets = check_targets([], {"none": 1.0}, mem["beyond_outputs_mib"])
    assert targets[0]["met"], targets_table(targets)


def test_project_faiss(benchmark, shape, sgemm):
    m, n, d = shape
    x, y = make_data(m, n, d)
    flat = FaissFlat(y)
    artifact, index = flat(x)
    assert (index == manifpt_ext.project(x, y).index).float().mean() > 0.99  # random data: FAISS is right
    benchmark.pedantic(flat, args=(x,), rounds=3, warmup_rounds=1)
    _info(benchmark, shape, sgemm, gflops=gflops(m, n, d, benchmark.stats.stats.min))


def test_project_torch_cdist(benchmark, shape, sgemm):
    m, n, d = shape
    if m * n * 4 > 2 * 2**30:
        pytest.skip("the M x N matrix alone would exceed 2 GiB")
    x, y = make_data(m, n, d)
    _, index = cdist_argmin(x, y)
    assert (index == manifpt_ext.project(x, y).index).float().mean() > 0.99
    benchmark.pedantic(cdist_argmin, args=(x, y), rounds=3, warmup_rounds=1)
    _info(benchmark, shape, sgemm, gflops=gflops(m, n, d, benchmark.stats.stats.min))


def test_project_exact_on_shared_offset(benchmark):
    """The case FAISS gets wrong (docs/projection.md, "Why not a plain GEMM expansion"): vectors = common offset of scale 300 + noise 0.05."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(256, generator=g) * 300
    x = base + 0.05 * torch.randn(2000, 256, generator=g)
    y = base + 0.05 * torch.randn(4000, 256, generator=g)
    ours = manifpt_ext.project(x, y)
    check_exact(x, y, ours.index, rows=2000)
    faiss_ok = (FaissFlat(y)(x)[1] == ours.index).float().mean().item()
    benchmark.pedantic(manifpt_ext.project, args=(x, y), rounds=3, warmup_rounds=1)
    benchmark.extra_info.update({"M": 2000, "N": 4000, "D": 256, "faiss_exact_rows": faiss_ok, "ours_exact_rows": 1.0})
