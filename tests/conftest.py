import os
import tempfile

import pytest

# Inductor's on-disk cache is keyed without the CPU capability torch runs at (ATEN_CPU_CAPABILITY): a kernel
# cached by a run at AVX-512 and loaded by one at AVX2 gave wrong values. Each test session compiles its own.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="manifpt-inductor-"))

CPU_PATHS = ["auto", "avx2", "blas", "portable"]


@pytest.fixture(params=CPU_PATHS)
def cpu_path(request, monkeypatch):
    """Runs a test once per CPU code path (AVX-512 or AVX2 GEMM / BLAS GEMM, each + AVX2 scan / portable C++)."""
    monkeypatch.setenv("MANIFPT_CPU_ISA", request.param)
    return request.param
