// manifpt::_freq_post_emulated: the fused post-FFT kernel of the CUDA FFT embedding
// (freq_kernels.cuh, launched by freq_launch.h), run on CPU threads by the CUDA emulation, on a half
// spectrum computed by torch.fft.rfft2 (the layout cuFFT's R2C writes). For tests.
//
// Also the schema of manifpt::freq_spectra (the CUDA op: cuFFT + the post kernel, in
// freq_cuda.cu), defined in every build so that the Python side can register its fake kernel.
#include <torch/library.h>

#include "ops/freq/freq_launch.h"
#include "testing/emulated_backend.h"

namespace manifpt::cuda {
namespace {

at::Tensor freq_post_emulated(const at::Tensor& half, int64_t W, c10::string_view mode) {
  EmulatedBackend::check_device("manifpt.freq", "half spectrum", half);
  return freq_post<EmulatedBackend>(half, W, parse_freq_mode(std::string_view(mode.data(), mode.size())));
}

}  // namespace
}  // namespace manifpt::cuda

TORCH_LIBRARY_FRAGMENT(manifpt, m) {
  m.def("freq_spectra(Tensor images, str mode=\"logmag\") -> Tensor");
  m.def("_freq_post_emulated(Tensor half, int W, str mode=\"logmag\") -> Tensor");
}
TORCH_LIBRARY_IMPL(manifpt, CPU, m) { m.impl("_freq_post_emulated", &manifpt::cuda::freq_post_emulated); }
