#pragma once
// What every device-code header (.cuh) of the project includes first. The same device code compiles
// with nvcc for the GPU and, through the CUDA emulation (testing/cuda_emu.h), with the host compiler
// for the CPU, where the tests and the race check run it. So device code here is free of ATen/c10,
// and it touches half and bfloat16 only through the conversion functions below.
#include <cstddef>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#else
#include "testing/cuda_emu.h"
#endif

#define MANIFPT_DEVICE_INLINE __device__ __forceinline__

// Device code and the host code around it live in an inline namespace named after the compiler, so
// that the emulated copy of a kernel (a host function) and nvcc's launch stub of the real one, both
// linked into _C with the same source name, get different symbols instead of one silently
// replacing the other. Every .cuh and launcher header wraps its contents in it.
#if defined(__CUDACC__)
#define MANIFPT_DEVICE_ABI_BEGIN inline namespace device_nvcc {
#else
#define MANIFPT_DEVICE_ABI_BEGIN inline namespace device_emulated {
#endif
#define MANIFPT_DEVICE_ABI_END }

// Dynamic shared memory: `extern __shared__` has no host-compiler equivalent, so kernels name it
// through this macro (the HIP-CPU runtime does the same with HIP_DYNAMIC_SHARED). One untyped array
// per kernel, as nvcc requires when kernels of one file use different element types.
#if defined(__CUDACC__)
#define MANIFPT_DYNAMIC_SHARED(T, name)                                    \
  extern __shared__ __align__(16) unsigned char manifpt_dynamic_shared_[]; \
  T* name = reinterpret_cast<T*>(manifpt_dynamic_shared_)
#else
#define MANIFPT_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(::manifpt::emu::dynamic_shared_memory())
#endif

namespace manifpt::cuda {
MANIFPT_DEVICE_ABI_BEGIN
// A launch as the host launchers describe it to a backend (the real <<<>>> or the emulation).
struct LaunchShape {
  dim3 grid;
  dim3 block;
  std::size_t dynamic_smem = 0;
  std::size_t static_smem = 0;  // what the kernel declares; the emulation's launch checks count it
};
MANIFPT_DEVICE_ABI_END
}  // namespace manifpt::cuda

namespace manifpt::device {
MANIFPT_DEVICE_ABI_BEGIN

// Loads into the accumulation type and stores back, with the device's rounding (nearest even).
MANIFPT_DEVICE_INLINE float widen(float v) { return v; }
MANIFPT_DEVICE_INLINE double widen(double v) { return v; }
MANIFPT_DEVICE_INLINE float widen(__half v) { return __half2float(v); }
MANIFPT_DEVICE_INLINE float widen(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
struct Narrow;
template <>
struct Narrow<float> {
  static MANIFPT_DEVICE_INLINE float from(float v) { return v; }
};
template <>
struct Narrow<double> {
  static MANIFPT_DEVICE_INLINE double from(double v) { return v; }
};
template <>
struct Narrow<__half> {
  static MANIFPT_DEVICE_INLINE __half from(float v) { return __float2half_rn(v); }
};
template <>
struct Narrow<__nv_bfloat16> {
  static MANIFPT_DEVICE_INLINE __nv_bfloat16 from(float v) { return __float2bfloat16_rn(v); }
};
template <typename T, typename A>
MANIFPT_DEVICE_INLINE T narrow(A v) {
  return Narrow<T>::from(v);
}

MANIFPT_DEVICE_ABI_END
}  // namespace manifpt::device
