import pytest
import torch

import manifpt_ext

CPU_PATHS = ["auto", "avx2", "blas", "portable"]

requires_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and manifpt_ext.cuda_available()),
    reason="needs a CUDA device and a build with the CUDA kernels",
)


@pytest.fixture(params=CPU_PATHS)
def cpu_path(request, monkeypatch):
    """Runs a test once per CPU code path (AVX-512 or AVX2 GEMM / BLAS GEMM, each + AVX2 scan / portable C++)."""
    monkeypatch.setenv("MANIFPT_CPU_ISA", request.param)
    return request.param


def make_pair(m, n, shape, dtype=torch.float32, device="cpu", seed=0, offset=0.0, noise=1.0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(shape, generator=g) * offset
    x = base + noise * torch.randn((m, *shape), generator=g)
    y = base + noise * torch.randn((n, *shape), generator=g)
    return x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)


def assert_matches_reference(p, fakes, reals):
    r = manifpt_ext.project_reference(fakes, reals)
    assert p.index.dtype == torch.long and p.distance.dtype == torch.float32
    assert p.artifact.shape == fakes.shape and p.artifact.dtype == fakes.dtype
    torch.testing.assert_close(p.index.cpu(), r.index.cpu(), rtol=0, atol=0)
    torch.testing.assert_close(p.artifact.cpu(), r.artifact.cpu(), rtol=0, atol=0)
    torch.testing.assert_close(p.distance.cpu(), r.distance.cpu(), rtol=1e-5, atol=1e-6)
