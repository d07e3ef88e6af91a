#pragma once
// Device code of the channelwise FFT embedding on CUDA (no ATen/c10; compiled by nvcc and, through
// the CUDA emulation, by the host compiler): the fused post-FFT kernel. It reads the half spectrum
// of a real-to-complex 2-D FFT of each of the B*C channels (cuFFT's R2C layout, H x (W/2 + 1)
// complex values, the same as torch.fft.rfft2) and writes, for every frequency of the full
// fftshifted H x W spectrum, log1p(|F|) (mode 0), |F| (mode 1) or Re F and Im F as channels 2c and
// 2c + 1 (mode 2), straight into the (B, C or 2C, H, W) layout manifpt::project reads. The other
// half of the spectrum comes from Hermitian symmetry, F[u][v] = conj(F[-u][-v]), so only half of
// it is ever computed.
#include <cmath>
#include <cstdint>

#include "common/device.cuh"

namespace manifpt::cuda {
MANIFPT_DEVICE_ABI_BEGIN

constexpr int kFreqThreads = 256;
enum FreqMode : int { kFreqLogMag = 0, kFreqMagnitude = 1, kFreqComplex = 2 };

MANIFPT_DEVICE_INLINE float freq_hypot(float a, float b) { return hypotf(a, b); }
MANIFPT_DEVICE_INLINE double freq_hypot(double a, double b) { return hypot(a, b); }
MANIFPT_DEVICE_INLINE float freq_log1p(float a) { return log1pf(a); }
MANIFPT_DEVICE_INLINE double freq_log1p(double a) { return log1p(a); }

// F: BC x H x Wh complex values as (re, im) pairs, Wh = W / 2 + 1; out as described above, with
// C channels per image (BC = B * C).
template <typename real_t>
__global__ void __launch_bounds__(kFreqThreads)
    freq_post_kernel(const real_t* __restrict__ F, int64_t BC, int64_t C, int64_t H, int64_t W, int mode, real_t* __restrict__ out) {
  const int64_t Wh = W / 2 + 1, HW = H * W, total = BC * HW;
  for (int64_t e = int64_t(blockIdx.x) * kFreqThreads + threadIdx.x; e < total; e += int64_t(gridDim.x) * kFreqThreads) {
    const int64_t bc = e / HW, hw = e % HW, h = hw / W, w = hw % W;
    // fftshift: output index i holds frequency (i - n / 2) mod n.
    const int64_t u = (h + H - H / 2) % H, v = (w + W - W / 2) % W;
    real_t re, im;
    if (v < Wh) {
      const real_t* f = F + 2 * ((bc * H + u) * Wh + v);
      re = f[0];
      im = f[1];
    } else {
      const real_t* f = F + 2 * ((bc * H + (H - u) % H) * Wh + (W - v));
      re = f[0];
      im = -f[1];
    }
    if (mode == kFreqComplex) {
      const int64_t b = bc / C, c = bc % C;
      out[((b * 2 * C + 2 * c) * H + h) * W + w] = re;
      out[((b * 2 * C + 2 * c + 1) * H + h) * W + w] = im;
    } else {
      const real_t m = freq_hypot(re, im);
      out[e] = mode == kFreqLogMag ? freq_log1p(m) : m;
    }
  }
}

MANIFPT_DEVICE_ABI_END
}  // namespace manifpt::cuda
