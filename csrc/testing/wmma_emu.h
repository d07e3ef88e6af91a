#pragma once
// The CPU stand-in for nvcuda::wmma (<mma.h>), for the fragment shapes and types the project's
// kernels use, so that the tensor-core kernels compile with the host compiler and run under the
// CUDA emulation (testing/cuda_emu.h).
//
// What is modelled
// - Shapes and types: double m8n8k4 (DMMA), precision::tf32 m16n16k8 and __nv_bfloat16 m16n16k16
//   with float accumulators (HMMA). Others do not compile (as on a device without them).
// - Operand fragments (matrix_a, matrix_b) hold the whole tile in every lane, so `x` has all
//   rows * cols elements, not the device's per-lane share; a loop over `x` that applies the same
//   function to every element (the only use the CUDA docs allow, since the element-to-lane mapping
//   is unspecified) gives the same tile as on the device.
// - Accumulator fragments are distributed: lane l owns the elements e = 32 * i + l (row-major
//   index e of the M x N tile), num_elements = M * N / 32 as on the device. store_matrix_sync writes
//   only the calling lane's elements, so another lane's read of the stored tile without a barrier in
//   between is a data race the race check reports, as it is on the device.
// - load_matrix_sync / store_matrix_sync check what the device requires: a 256-bit aligned pointer
//   and a leading dimension that is a multiple of 16 bytes; a violation is a KernelFault
//   ("misaligned address", which faults on a GPU).
// - mma_sync: each lane computes its own accumulator elements. Double (DMMA): IEEE FMAs in k order.
//   tf32 and bf16: the products are exact (11 x 11 and 8 x 8 significant bits); the k products and
//   the accumulator are summed in double and rounded to float once, to nearest. The device's
//   tensor cores sum with their own internal order, alignment and truncation (not specified by
//   NVIDIA); the kernels' error bounds allow two units of float rounding per addition to cover it.
//   tf32 operands are used with their low 13 bits dropped, as the tensor cores do: a kernel that
//   forgets __float_to_tf32 gets truncation, not an error.
// - __float_to_tf32 rounds to nearest with ties away from zero (cvt.rna.tf32.f32), keeps inf and
//   NaN, and overflows to inf.
// Not modelled: the warp-collective nature itself (a wmma call by only some lanes of a warp is
// undefined on the device; here it works), and the device's register layout of fragments.
#if defined(__CUDACC__)
#error "wmma_emu.h is the CPU stand-in for <mma.h>; nvcc builds use the real header"
#endif

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "testing/cuda_emu.h"

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision

inline float __float_to_tf32(float in) {
  std::uint32_t x;
  std::memcpy(&x, &in, 4);
  if ((x & 0x7f800000u) != 0x7f800000u) x = (x + 0x1000u) & ~0x1fffu;  // ties away (sign-magnitude)
  float r;
  std::memcpy(&r, &x, 4);
  return r;
}

namespace detail {

template <class T>
struct Storage {
  using type = T;
};
template <>
struct Storage<precision::tf32> {
  using type = float;
};

// The calling CUDA thread's lane (threads are numbered x fastest, as CUDA does).
inline unsigned lane() {
  const unsigned linear = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  return linear % 32u;
}

template <class Use, int M, int N, int K>
struct Dims;
template <int M, int N, int K>
struct Dims<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct Dims<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct Dims<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

template <class T>
inline void check_access(const T* p, unsigned ldm, const char* what) {
  if (reinterpret_cast<std::uintptr_t>(p) % 32 != 0 || (static_cast<std::size_t>(ldm) * sizeof(T)) % 16 != 0)
    throw manifpt::emu::KernelFault(std::string("misaligned address: wmma::") + what + " needs a 256-bit aligned pointer and a leading dimension of a multiple of 16 bytes (ldm = " +
                                    std::to_string(ldm) + ")");
}

inline float tf32_operand(float v) {  // the tensor cores read the top 19 bits
  std::uint32_t x;
  std::memcpy(&x, &v, 4);
  x &= ~0x1fffu;
  std::memcpy(&v, &x, 4);
  return v;
}
inline double operand(float v, precision::tf32) { return tf32_operand(v); }
inline double operand(__nv_bfloat16 v, __nv_bfloat16) { return __bfloat162float(v); }
inline double operand(double v, double) { return v; }

}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment;

// Operand fragments: the whole tile, in every lane.
template <class Use, int M, int N, int K, class T, class Layout>
  requires(std::is_same_v<Use, matrix_a> || std::is_same_v<Use, matrix_b>)
class fragment<Use, M, N, K, T, Layout> {
 public:
  using element_type = typename detail::Storage<T>::type;
  using layout = Layout;
  static constexpr int rows = detail::Dims<Use, M, N, K>::rows, cols = detail::Dims<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols;
  element_type x[num_elements];
  element_type at(int r, int c) const { return x[r * cols + c]; }
};

// Accumulators: lane l owns the elements 32 * i + l.
template <int M, int N, int K, class T>
class fragment<accumulator, M, N, K, T, void> {
 public:
  using element_type = T;
  static_assert((M * N) % 32 == 0);
  static constexpr int num_elements = M * N / 32;
  T x[num_elements];
};

template <class Use, int M, int N, int K, class T, class Layout>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const typename fragment<Use, M, N, K, T, Layout>::element_type& v) {
  for (int i = 0; i < f.num_elements; ++i) f.x[i] = v;
}

template <class Use, int M, int N, int K, class T, class Layout>
  requires(!std::is_same_v<Use, accumulator>)
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const typename fragment<Use, M, N, K, T, Layout>::element_type* p,
                             unsigned ldm) {
  using F = fragment<Use, M, N, K, T, Layout>;
  detail::check_access(p, ldm, "load_matrix_sync");
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c)
      f.x[r * F::cols + c] = std::is_same_v<Layout, row_major> ? p[static_cast<std::size_t>(r) * ldm + c] : p[static_cast<std::size_t>(c) * ldm + r];
}

template <int M, int N, int K, class T>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const T* p, unsigned ldm, layout_t layout) {
  detail::check_access(p, ldm, "load_matrix_sync");
  const unsigned l = detail::lane();
  for (int i = 0; i < f.num_elements; ++i) {
    const int e = 32 * i + static_cast<int>(l), r = e / N, c = e % N;
    f.x[i] = layout == mem_row_major ? p[static_cast<std::size_t>(r) * ldm + c] : p[static_cast<std::size_t>(c) * ldm + r];
  }
}

template <int M, int N, int K, class T>
inline void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t layout) {
  detail::check_access(p, ldm, "store_matrix_sync");
  const unsigned l = detail::lane();
  for (int i = 0; i < f.num_elements; ++i) {
    const int e = 32 * i + static_cast<int>(l), r = e / N, c = e % N;
    (layout == mem_row_major ? p[static_cast<std::size_t>(r) * ldm + c] : p[static_cast<std::size_t>(c) * ldm + r]) = f.x[i];
  }
}

// d = a * b + c for the calling lane's accumulator elements (d may be c).
template <int M, int N, int K, class Tin, class LA, class LB, class Tacc>
inline void mma_sync(fragment<accumulator, M, N, K, Tacc>& d, const fragment<matrix_a, M, N, K, Tin, LA>& a,
                     const fragment<matrix_b, M, N, K, Tin, LB>& b, const fragment<accumulator, M, N, K, Tacc>& c) {
  static_assert((std::is_same_v<Tin, double> && std::is_same_v<Tacc, double> && M == 8 && N == 8 && K == 4) ||
                    (std::is_same_v<Tin, precision::tf32> && std::is_same_v<Tacc, float> && M == 16 && N == 16 && K == 8) ||
                    (std::is_same_v<Tin, __nv_bfloat16> && std::is_same_v<Tacc, float> && M == 16 && N == 16 && K == 16),
                "wmma emulation: only the shapes the project's kernels use (f64 m8n8k4, tf32 m16n16k8, bf16 m16n16k16)");
  const unsigned l = detail::lane();
  for (int i = 0; i < d.num_elements; ++i) {
    const int e = 32 * i + static_cast<int>(l), r = e / N, col = e % N;
    if constexpr (std::is_same_v<Tacc, double>) {
      double s = c.x[i];
      for (int k = 0; k < K; ++k) s = std::fma(a.at(r, k), b.at(k, col), s);
      d.x[i] = s;
    } else {
      double s = c.x[i];
      for (int k = 0; k < K; ++k) s += detail::operand(a.at(r, k), Tin{}) * detail::operand(b.at(k, col), Tin{});
      d.x[i] = static_cast<float>(s);
    }
  }
}

}  // namespace nvcuda::wmma
