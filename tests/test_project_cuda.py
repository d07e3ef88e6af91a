"""manifpt_ext.project on CUDA: against the float64 reference and the CPU kernel. Skipped without a GPU
(the kernel is still compiled in every build that has nvcc and a CUDA torch)."""
import pytest
import torch
from helpers import assert_matches_reference, make_pair, requires_cuda

from manifpt_ext import project

pytestmark = [requires_cuda, pytest.mark.cuda]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize(
    "m,n,shape",
    [(1, 1, (1,)), (1, 37, (5,)), (37, 1, (5,)), (129, 517, (3,)), (300, 1100, (64,)), (33, 65, (3, 8, 8)), (0, 5, (2,))],
    ids=str,
)
def test_cuda_matches_reference(m, n, shape, dtype):
    x, y = make_pair(m, n, shape, dtype, device="cuda")
    assert_matches_reference(project(x, y), x, y)


def test_cuda_equals_cpu():
    x, y = make_pair(500, 2000, (96,), seed=1)
    pc, pg = project(x, y), project(x.cuda(), y.cuda())
    assert torch.equal(pc.index, pg.index.cpu())
    torch.testing.assert_close(pc.artifact, pg.artifact.cpu(), rtol=0, atol=0)
    torch.testing.assert_close(pc.distance, pg.distance.cpu(), rtol=1e-5, atol=1e-6)


def test_cuda_large_offset_and_ties():
    x, y = make_pair(300, 700, (64,), device="cuda", seed=7, offset=300.0, noise=0.05)
    assert_matches_reference(project(x, y), x, y)
    uniq = torch.randn(10, 8, device="cuda")
    p = project(uniq[[3, 7]], torch.cat([uniq, uniq]))
    assert p.index.tolist() == [3, 7]


def test_cuda_non_contiguous_and_autograd():
    x, y = make_pair(20, 50, (6, 5), torch.float64, device="cuda", seed=3)
    xt, yt = x.transpose(1, 2), y.transpose(1, 2)
    assert_matches_reference(project(xt, yt), xt, yt)
    xs, ys = x[:5].clone().requires_grad_(True), y.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: project(a, b).artifact, (xs, ys))
    torch.library.opcheck(torch.ops.manifpt.project.default, (x, y, 0, 0))


def test_cuda_errors():
    x, y = make_pair(4, 6, (3,), device="cuda")
    y[1, 1] = float("nan")
    with pytest.raises(RuntimeError, match="reals contains NaN or Inf"):
        project(x, y)
    with pytest.raises(ValueError, match="same device"):
        project(x, y.cpu())


def test_cuda_torch_compile():
    x, y = make_pair(10, 30, (4,), device="cuda", seed=8)
    compiled = torch.compile(lambda a, b: project(a, b).artifact, fullgraph=True)
    torch.testing.assert_close(compiled(x, y), project(x, y).artifact)
