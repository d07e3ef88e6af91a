#pragma once
// CUDA emulation on the CPU: compiles the project's device code (the ATen-free .cuh headers) with a
// host C++20 compiler and runs each kernel launch on CPU threads, so that every kernel executes, and
// can be run under ThreadSanitizer, on machines without a GPU.
//
// Execution model
// - Every CUDA thread is a fiber (its own stack, switched cooperatively). A block's fibers all run on
//   one OS thread and only switch at the synchronising built-ins (__syncthreads, the *_sync warp
//   intrinsics, atomics), so a launch costs no thread creation per CUDA thread and a barrier costs one
//   stack switch per thread. Blocks run one after another on each of `workers` OS threads.
// - Static `__shared__` variables become `static thread_local`: one copy per OS thread, shared by the
//   fibers of the block running there; blocks of one worker never overlap, so each block sees its
//   own. Dynamic shared memory is a per-worker buffer (MANIFPT_DYNAMIC_SHARED in common/device.cuh),
//   filled with 0xff bytes before every block so that a read before a write shows up as NaN or -1.
// - __syncthreads: a block-wide barrier of all threads. A thread that exits while others wait at a
//   barrier, or a barrier reached after a thread exited, is reported (undefined in CUDA).
// - Warp intrinsics follow PTX's *.sync semantics: the lanes named in the mask that have not exited
//   take part; the calling lane must be in its mask; lanes outside it do not take part and are not
//   waited for. Shuffles compute the source lane exactly as PTX shfl.sync does (width segments,
//   clamping); a source lane that does not take part yields all-ones bits (undefined in CUDA).
// - A block in which every live thread waits for a partner that can never arrive is a deadlock in
//   CUDA; here it is detected (no fiber can run) and reported with the waiting sites, instead of
//   hanging.
// - half and bfloat16 conversions round to nearest even, as the device's cvt.rn instructions do.
// - Launch limits are checked as the CUDA runtime checks them (threads per block, block and grid
//   dimensions, dynamic shared memory against the per-kernel limit and the device's opt-in maximum)
//   and a bad launch is refused with CUDA's error name, before any thread runs.
// - Under ThreadSanitizer (the race check), each block runs on a fresh OS thread and each CUDA
//   thread is a TSAN fiber; switches carry no happens-before; barriers, __syncwarp and the end of the
//   launch do, so any shared- or global-memory access pair not ordered by them is reported.
//
// Not modelled: the memory model (within a block all writes are visible at once, so missing fences
// or volatile go unnoticed except through the race check), timing and the order of concurrent
// blocks, code generation (registers, spills, occupancy, FMA contraction that nvcc may apply to a
// plain a * b + c: device code that needs one rounding writes fma()), __launch_bounds__ (accepted,
// not checked), warp-synchronous code that omits the _sync intrinsics (lanes here do not run in
// lockstep), __activemask, and forward progress of a thread that spins on a flag set by another
// thread of its block without a synchronising built-in (fibers are cooperative: it hangs).
//
// Include this header after every ATen/c10 header of a translation unit: it defines the CUDA
// qualifiers as macros.
#if defined(__CUDACC__)
#error "cuda_emu.h is the CPU stand-in for the CUDA runtime; nvcc builds use the real headers"
#endif

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <source_location>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- qualifiers -------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static thread_local
// __restrict__ is a GCC/Clang keyword already.

// ---- built-in types and variables ----------------------------------------------------------------
struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
};

// Per OS thread; the scheduler sets them before it switches to a fiber (a block's fibers never move
// between OS threads). Inline with constant initialisation, so reading them needs no TLS wrapper call.
inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};
constexpr int warpSize = 32;

// ---- device math used by the kernels -------------------------------------------------------------
// CUDA's fma(float, float, float) is the single-rounding float FMA; bring std's float overloads into
// the global namespace so an unqualified fma on floats does not round through double.
using std::fma;

namespace manifpt::emu {

// The device the emulation models: limits of sm_90 (H100/H200), which the launch checks apply.
struct DeviceLimits {
  unsigned max_threads_per_block = 1024;
  dim3 max_block{1024, 1024, 64};
  dim3 max_grid{2147483647u, 65535u, 65535u};
  std::size_t shared_per_block = 48 * 1024;              // default dynamic + static limit per kernel
  std::size_t shared_per_block_optin = 227 * 1024;       // cudaDevAttrMaxSharedMemoryPerBlockOptin
  int warp_size = 32;
};
const DeviceLimits& device_limits();

// A refused launch or a failed cudaFuncSetAttribute, named as the CUDA runtime names the error.
struct LaunchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A kernel that did something undefined in CUDA that the emulation detects (deadlock, divergent
// barrier, a lane calling a warp intrinsic with a mask that does not contain it, ...).
struct KernelFault : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct LaunchConfig {
  dim3 grid;
  dim3 block;
  std::size_t dynamic_smem = 0;
  // Static __shared__ bytes of the kernel: the emulation cannot measure them, so the launcher states
  // them (the cuobjdump test checks the statement against the cubin); they count against the limits.
  std::size_t static_smem = 0;
  int workers = 1;  // OS threads that run blocks (ignored under ThreadSanitizer: one per block)
};

// cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes).
void set_max_dynamic_shared_memory(const void* kernel, std::size_t static_smem, std::size_t bytes);

// Whether this process runs under ThreadSanitizer (its runtime is linked in).
bool under_thread_sanitizer();

namespace detail {

// Validates `cfg` for `kernel` as a CUDA launch would; throws LaunchError.
void check_launch(const void* kernel, const LaunchConfig& cfg);
// Runs body(ctx) once per CUDA thread of the grid, under the model above; throws KernelFault.
void run_grid(const LaunchConfig& cfg, void (*body)(void*), void* ctx);

enum class WarpOp : std::uint8_t { ShflIdx, ShflUp, ShflDown, ShflXor, Ballot, Any, All, SyncWarp };
std::uint64_t warp_op(WarpOp op, unsigned mask, std::uint64_t value, int arg, int width, const std::source_location& where);
void syncthreads(const std::source_location& where);
void atomic_point();  // lets other threads of the block run: spin loops on atomics make progress
unsigned char* dynamic_shared_memory();

template <class T>
inline constexpr bool kShuffleType =
    std::is_same_v<T, int> || std::is_same_v<T, unsigned int> || std::is_same_v<T, long> ||
    std::is_same_v<T, unsigned long> || std::is_same_v<T, long long> || std::is_same_v<T, unsigned long long> ||
    std::is_same_v<T, float> || std::is_same_v<T, double>;

template <class T>
inline std::uint64_t to_bits(const T& v) {
  std::uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
inline T from_bits(std::uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

}  // namespace detail

// Launches kernel<<<cfg.grid, cfg.block, cfg.dynamic_smem>>>(args...) and returns when every thread
// has finished (a launch here is synchronous). Arguments are converted to the kernel's parameter
// types once, as the CUDA runtime copies them into the parameter buffer.
template <class... Params, class... Args>
void launch(const LaunchConfig& cfg, void (*kernel)(Params...), Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "manifpt::emu::launch: wrong number of kernel arguments");
  detail::check_launch(reinterpret_cast<const void*>(kernel), cfg);
  struct Ctx {
    void (*kernel)(Params...);
    std::tuple<std::decay_t<Params>...> params;
  } ctx{kernel, std::tuple<std::decay_t<Params>...>(std::forward<Args>(args)...)};
  detail::run_grid(
      cfg, [](void* p) {
        auto* c = static_cast<Ctx*>(p);
        std::apply(c->kernel, c->params);
      },
      &ctx);
}

template <class... Params>
void set_max_dynamic_shared_memory(void (*kernel)(Params...), std::size_t static_smem, std::size_t bytes) {
  set_max_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), static_smem, bytes);
}

inline unsigned char* dynamic_shared_memory() { return detail::dynamic_shared_memory(); }

}  // namespace manifpt::emu

// ---- synchronisation ----------------------------------------------------------------------------
inline void __syncthreads(const std::source_location& where = std::source_location::current()) {
  manifpt::emu::detail::syncthreads(where);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, const std::source_location& where = std::source_location::current()) {
  manifpt::emu::detail::warp_op(manifpt::emu::detail::WarpOp::SyncWarp, mask, 0, 0, warpSize, where);
}

// ---- warp shuffles and votes ----------------------------------------------------------------------
#define MANIFPT_EMU_SHUFFLE(name, op, arg_t)                                                                     \
  template <class T>                                                                                             \
  inline T name(unsigned mask, T var, arg_t arg, int width = warpSize,                                           \
                const std::source_location& where = std::source_location::current()) {                          \
    static_assert(manifpt::emu::detail::kShuffleType<T>, #name ": CUDA shuffles 32- and 64-bit integers and floats"); \
    namespace d = manifpt::emu::detail;                                                                          \
    return d::from_bits<T>(d::warp_op(d::WarpOp::op, mask, d::to_bits(var), static_cast<int>(arg), width, where)); \
  }
MANIFPT_EMU_SHUFFLE(__shfl_sync, ShflIdx, int)
MANIFPT_EMU_SHUFFLE(__shfl_up_sync, ShflUp, unsigned int)
MANIFPT_EMU_SHUFFLE(__shfl_down_sync, ShflDown, unsigned int)
MANIFPT_EMU_SHUFFLE(__shfl_xor_sync, ShflXor, int)
#undef MANIFPT_EMU_SHUFFLE

inline unsigned __ballot_sync(unsigned mask, int pred, const std::source_location& where = std::source_location::current()) {
  namespace d = manifpt::emu::detail;
  return static_cast<unsigned>(d::warp_op(d::WarpOp::Ballot, mask, pred != 0, 0, warpSize, where));
}
inline int __any_sync(unsigned mask, int pred, const std::source_location& where = std::source_location::current()) {
  namespace d = manifpt::emu::detail;
  return static_cast<int>(d::warp_op(d::WarpOp::Any, mask, pred != 0, 0, warpSize, where));
}
inline int __all_sync(unsigned mask, int pred, const std::source_location& where = std::source_location::current()) {
  namespace d = manifpt::emu::detail;
  return static_cast<int>(d::warp_op(d::WarpOp::All, mask, pred != 0, 0, warpSize, where));
}

// ---- atomics (relaxed, device scope, as CUDA's atomicXxx) ------------------------------------------
// std::atomic_ref keeps them atomic across the worker threads and visible to ThreadSanitizer.
namespace manifpt::emu::detail {
template <class T>
inline T atomic_fetch_min(T* addr, T v) {
  std::atomic_ref<T> a(*addr);
  T old = a.load(std::memory_order_relaxed);
  while (v < old && !a.compare_exchange_weak(old, v, std::memory_order_relaxed)) {
  }
  return old;
}
template <class T>
inline T atomic_fetch_max(T* addr, T v) {
  std::atomic_ref<T> a(*addr);
  T old = a.load(std::memory_order_relaxed);
  while (old < v && !a.compare_exchange_weak(old, v, std::memory_order_relaxed)) {
  }
  return old;
}
template <class T>
inline T atomic_cas(T* addr, T compare, T v) {
  std::atomic_ref<T>(*addr).compare_exchange_strong(compare, v, std::memory_order_relaxed);
  return compare;  // the old value, whether or not the swap happened
}
}  // namespace manifpt::emu::detail

#define MANIFPT_EMU_ATOMIC(name, T, expr)         \
  inline T name(T* address, T val) {              \
    manifpt::emu::detail::atomic_point();         \
    return expr;                                  \
  }
MANIFPT_EMU_ATOMIC(atomicAdd, int, std::atomic_ref<int>(*address).fetch_add(val, std::memory_order_relaxed))
MANIFPT_EMU_ATOMIC(atomicAdd, unsigned int, std::atomic_ref<unsigned int>(*address).fetch_add(val, std::memory_order_relaxed))
MANIFPT_EMU_ATOMIC(atomicAdd, unsigned long long,
                   std::atomic_ref<unsigned long long>(*address).fetch_add(val, std::memory_order_relaxed))
MANIFPT_EMU_ATOMIC(atomicAdd, float, std::atomic_ref<float>(*address).fetch_add(val, std::memory_order_relaxed))
MANIFPT_EMU_ATOMIC(atomicAdd, double, std::atomic_ref<double>(*address).fetch_add(val, std::memory_order_relaxed))
MANIFPT_EMU_ATOMIC(atomicMin, int, manifpt::emu::detail::atomic_fetch_min(address, val))
MANIFPT_EMU_ATOMIC(atomicMin, unsigned int, manifpt::emu::detail::atomic_fetch_min(address, val))
MANIFPT_EMU_ATOMIC(atomicMin, long long, manifpt::emu::detail::atomic_fetch_min(address, val))
MANIFPT_EMU_ATOMIC(atomicMin, unsigned long long, manifpt::emu::detail::atomic_fetch_min(address, val))
MANIFPT_EMU_ATOMIC(atomicMax, int, manifpt::emu::detail::atomic_fetch_max(address, val))
MANIFPT_EMU_ATOMIC(atomicMax, unsigned int, manifpt::emu::detail::atomic_fetch_max(address, val))
MANIFPT_EMU_ATOMIC(atomicMax, long long, manifpt::emu::detail::atomic_fetch_max(address, val))
MANIFPT_EMU_ATOMIC(atomicMax, unsigned long long, manifpt::emu::detail::atomic_fetch_max(address, val))
MANIFPT_EMU_ATOMIC(atomicExch, int, std::atomic_ref<int>(*address).exchange(val, std::memory_order_relaxed))
MANIFPT_EMU_ATOMIC(atomicExch, unsigned int, std::atomic_ref<unsigned int>(*address).exchange(val, std::memory_order_relaxed))
MANIFPT_EMU_ATOMIC(atomicExch, unsigned long long,
                   std::atomic_ref<unsigned long long>(*address).exchange(val, std::memory_order_relaxed))
MANIFPT_EMU_ATOMIC(atomicExch, float, std::atomic_ref<float>(*address).exchange(val, std::memory_order_relaxed))
#undef MANIFPT_EMU_ATOMIC

#define MANIFPT_EMU_ATOMIC_CAS(T)                             \
  inline T atomicCAS(T* address, T compare, T val) {          \
    manifpt::emu::detail::atomic_point();                     \
    return manifpt::emu::detail::atomic_cas(address, compare, val); \
  }
MANIFPT_EMU_ATOMIC_CAS(int)
MANIFPT_EMU_ATOMIC_CAS(unsigned int)
MANIFPT_EMU_ATOMIC_CAS(unsigned long long)
MANIFPT_EMU_ATOMIC_CAS(unsigned short)
#undef MANIFPT_EMU_ATOMIC_CAS

// ---- half and bfloat16 -----------------------------------------------------------------------------
// Storage types with the device's bit layout (2 bytes, IEEE binary16 / bfloat16); conversions only
// through the intrinsics below, bit-exact with cvt.rn.f16.f32 / cvt.rn.bf16.f32 / cvt.f32.f16.
struct __half {
  unsigned short __x;
};
struct __nv_bfloat16 {
  unsigned short __x;
};

inline int __float_as_int(float f) {
  int i;
  std::memcpy(&i, &f, 4);
  return i;
}
inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}
inline long long __double_as_longlong(double d) {
  long long i;
  std::memcpy(&i, &d, 8);
  return i;
}

inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short b) { return __half{b}; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short b) { return __nv_bfloat16{b}; }

inline __half __float2half_rn(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) return __half{static_cast<unsigned short>(a == 0x7f800000u ? (sign | 0x7c00u) : 0x7fffu)};
  if (a >= 0x477ff000u) return __half{static_cast<unsigned short>(sign | 0x7c00u)};  // >= 65520 rounds to inf
  std::uint32_t r, rem, halfway;
  if (a >= 0x38800000u) {  // a normal half: rebias the exponent (127 -> 15), keep 10 mantissa bits
    const std::uint32_t m = a - 0x38000000u;
    r = m >> 13;
    rem = m & 0x1fffu;
    halfway = 0x1000u;
  } else if (a < 0x33000000u) {  // below half the smallest subnormal (2^-25): rounds to zero
    return __half{static_cast<unsigned short>(sign)};
  } else {  // a subnormal half: units of 2^-24
    const std::uint32_t shift = 126u - (a >> 23), mant = (a & 0x7fffffu) | 0x800000u;
    r = mant >> shift;
    rem = mant & ((1u << shift) - 1u);
    halfway = 1u << (shift - 1u);
  }
  r += (rem > halfway || (rem == halfway && (r & 1u))) ? 1u : 0u;  // a carry moves into the exponent
  return __half{static_cast<unsigned short>(sign | r)};
}
inline __half __float2half(float f) { return __float2half_rn(f); }

inline float __half2float(__half h) {
  const std::uint32_t sign = std::uint32_t(h.__x & 0x8000u) << 16, e = (h.__x >> 10) & 0x1fu, m = h.__x & 0x3ffu;
  std::uint32_t bits;
  if (e == 0x1f) {
    bits = sign | 0x7f800000u | (m << 13);
  } else if (e != 0) {
    bits = sign | ((e + 112u) << 23) | (m << 13);
  } else {
    const float v = std::ldexp(static_cast<float>(m), -24);  // exact: m < 2^10
    return sign ? -v : v;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{0x7fffu};
  x += 0x7fffu + ((x >> 16) & 1u);  // round to nearest even on the 16 dropped bits; overflow gives inf
  return __nv_bfloat16{static_cast<unsigned short>(x >> 16)};
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline float __bfloat162float(__nv_bfloat16 h) {
  const std::uint32_t bits = std::uint32_t(h.__x) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
