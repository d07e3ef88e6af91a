import os
import tempfile

import pytest
from helpers import KERNEL_DEVICES, KernelDevice, assert_kernel_result, make_pair

# Inductor's on-disk cache is keyed without the CPU capability torch runs at (ATEN_CPU_CAPABILITY): a kernel
# cached by a run at AVX-512 and loaded by one at AVX2 gave wrong values. Each test session compiles its own.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="manifpt-inductor-"))

CPU_PATHS = ["auto", "avx2", "blas", "portable"]


@pytest.fixture(params=CPU_PATHS)
def cpu_path(request, monkeypatch):
    """Runs a test once per CPU code path (AVX-512 or AVX2 GEMM / BLAS GEMM, each + AVX2 scan / portable C++)."""
    monkeypatch.setenv("MANIFPT_CPU_ISA", request.param)
    return request.param


@pytest.fixture(params=KERNEL_DEVICES)
def kernel_device(request):
    """Runs a test once on the GPU (skipped without one) and once under the CUDA emulation (always)."""
    return KernelDevice(request.param)


@pytest.fixture
def make_inputs():
    """make_pair(m, n, shape, dtype=float32, device="cpu", seed=0, offset=0.0, noise=1.0) -> (fakes, reals)."""
    return make_pair


@pytest.fixture
def check_kernel_result():
    """assert_kernel_result(p, fakes, reals, max_uncertain=0.05): see there."""
    return assert_kernel_result
