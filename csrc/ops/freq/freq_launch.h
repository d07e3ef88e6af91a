#pragma once
// Host side of the fused post-FFT kernel (freq_kernels.cuh), shared by the CUDA op (freq_cuda.cu,
// after cuFFT) and the emulated one (freq_emulated.cpp, after torch.fft.rfft2): checks, output,
// dtype dispatch, grid. Only the launch differs, through a Backend.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "ops/freq/freq_kernels.cuh"

namespace manifpt::cuda {
MANIFPT_DEVICE_ABI_BEGIN

inline int parse_freq_mode(std::string_view mode) {
  if (mode == "logmag") return kFreqLogMag;
  if (mode == "magnitude") return kFreqMagnitude;
  if (mode == "complex") return kFreqComplex;
  TORCH_CHECK(false, "manifpt.freq: mode must be 'logmag', 'magnitude' or 'complex', got '", std::string(mode), "'");
}

// half: (B, C, H, W / 2 + 1, 2) real (re, im) pairs, contiguous, float32 or float64 -> the
// (B, C or 2C, H, W) embedding.
template <class Backend>
at::Tensor freq_post(const at::Tensor& half, int64_t W, int mode) {
  TORCH_CHECK(half.dim() == 5 && half.size(4) == 2 && half.size(3) == W / 2 + 1 && W >= 1,
              "manifpt.freq: the half spectrum must be (B, C, H, W / 2 + 1, 2), got ", half.sizes(), " for W = ", W);
  TORCH_CHECK(half.is_contiguous(), "manifpt.freq: the half spectrum must be contiguous");
  TORCH_CHECK(half.scalar_type() == at::kFloat || half.scalar_type() == at::kDouble, "manifpt.freq: the half spectrum must be float32 or float64");
  const int64_t B = half.size(0), C = half.size(1), H = half.size(2);
  at::Tensor out = at::empty({B, mode == kFreqComplex ? 2 * C : C, H, W}, half.options());
  const int64_t total = B * C * H * W;
  if (total == 0) return out;
  const int64_t blocks = std::min<int64_t>((total + kFreqThreads - 1) / kFreqThreads, int64_t(1) << 20);
  AT_DISPATCH_FLOATING_TYPES(half.scalar_type(), "manifpt_freq_post", [&] {
    Backend::launch(&freq_post_kernel<scalar_t>, LaunchShape{dim3(static_cast<unsigned>(blocks)), dim3(kFreqThreads)},
                    half.template const_data_ptr<scalar_t>(), B * C, C, H, W, mode, out.template mutable_data_ptr<scalar_t>());
  });
  return out;
}

MANIFPT_DEVICE_ABI_END
}  // namespace manifpt::cuda
