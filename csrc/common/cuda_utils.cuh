#pragma once
// Small CUDA helpers. Kept free of <ATen/ATen.h>: including it in a .cu file costs ~15 s of nvcc
// time per file (BUILD-NOTES), and <ATen/cuda/CUDAContext.h> needs cusparse.h, which the system
// toolkit here lacks; the c10 stream/guard headers are enough.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace manifpt::cuda {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace manifpt::cuda
