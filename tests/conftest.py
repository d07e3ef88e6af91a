import os
import tempfile

import pytest
from helpers import CPU_BACKENDS, KERNEL_BACKENDS, Backend

# Inductor's on-disk cache is keyed without the CPU capability torch runs at (ATEN_CPU_CAPABILITY): a kernel
# cached by a run at AVX-512 and loaded by one at AVX2 gave wrong values. Each test session compiles its own.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="manifpt-inductor-"))


def _backend(request, monkeypatch):
    name = request.param
    if name.startswith("cpu-"):
        monkeypatch.setenv("MANIFPT_CPU_ISA", name.removeprefix("cpu-"))
    return Backend(name)


@pytest.fixture(params=CPU_BACKENDS + KERNEL_BACKENDS)
def backend(request, monkeypatch):
    """Runs a test on every backend of manifpt_ext.project: the CPU code paths (AVX-512 or AVX2 GEMM,
    BLAS GEMM, portable C++), the GPU (skipped without one) and the CUDA emulation (always)."""
    return _backend(request, monkeypatch)


@pytest.fixture(params=CPU_BACKENDS)
def cpu_backend(request, monkeypatch):
    """The CPU code paths only: for what only the CPU op has (tile sizes, cpu_info, BLAS)."""
    return _backend(request, monkeypatch)


@pytest.fixture(params=KERNEL_BACKENDS)
def kernel_backend(request, monkeypatch):
    """The CUDA kernels only, on the GPU and under the emulation: precisions, variants, probes."""
    return _backend(request, monkeypatch)

