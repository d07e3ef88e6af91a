// manifpt::_cuda_probe on a real GPU (schema and emulated backend: cuda_probe_emulated.cpp).
#include <torch/library.h>

#include "common/cuda_backend.cuh"
#include "testing/cuda_probe.h"

TORCH_LIBRARY_IMPL(manifpt, CUDA, m) { m.impl("_cuda_probe", &manifpt::cuda::cuda_probe<manifpt::cuda::CudaBackend>); }
