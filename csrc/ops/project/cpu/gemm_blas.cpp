// Cross term on row-major operands: BLAS sgemm_/dgemm_ (the `blas` path, and float64 inputs on every
// path), or a portable C++ loop (the `portable` path, and a torch without BLAS symbols).
#include <limits>
#include <type_traits>

#include "ops/project/cpu/kernels.h"

// torch's x86 wheels link MKL into libtorch_cpu and export these symbols; we call them directly
// rather than at::mm / cpublas because torch may route float32 matmuls to reduced precision
// (bf16/tf32 via set_float32_matmul_precision), which would void the error bound. Weak: a torch
// without them loads fine and uses the portable loop below.
extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc) __attribute__((weak));
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc) __attribute__((weak));
// The C entry point; the lower-case symbol is the Fortran one (takes int*).
int MKL_Set_Num_Threads_Local(int nthreads) __attribute__((weak));
}

namespace manifpt::detail {

// The BLAS is column-major, so c = X Y^T (mb x nb, row-major) is C^T (nb x mb) = Y (nb x D) * X^T.
template <typename T>
void cross_gemm_rowmajor(const T* x, int64_t mb, const T* y, int64_t nb, int64_t D, T* c, bool use_blas) {
  const bool fits_int = use_blas && D <= std::numeric_limits<int>::max() && mb * nb <= std::numeric_limits<int>::max();
  if constexpr (std::is_same_v<T, float>) {
    if (sgemm_ && fits_int) {
      const int m = int(nb), n = int(mb), k = int(D);
      const float one = 1.f, zero = 0.f;
      sgemm_("T", "N", &m, &n, &k, &one, y, &k, x, &k, &zero, c, &m);
      return;
    }
  } else {
    if (dgemm_ && fits_int) {
      const int m = int(nb), n = int(mb), k = int(D);
      const double one = 1.0, zero = 0.0;
      dgemm_("T", "N", &m, &n, &k, &one, y, &k, x, &k, &zero, c, &m);
      return;
    }
  }
  // Portable: dot products with independent accumulators so the compiler can vectorise.
  for (int64_t i = 0; i < mb; ++i) {
    const T* xi = x + i * D;
    for (int64_t j = 0; j < nb; ++j) {
      const T* yj = y + j * D;
      T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t k = 0;
      for (; k + 8 <= D; k += 8)
        for (int u = 0; u < 8; ++u) acc[u] += xi[k + u] * yj[k + u];
      T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      for (; k < D; ++k) s += xi[k] * yj[k];
      c[i * nb + j] = s;
    }
  }
}
template void cross_gemm_rowmajor<float>(const float*, int64_t, const float*, int64_t, int64_t, float*, bool);
template void cross_gemm_rowmajor<double>(const double*, int64_t, const double*, int64_t, int64_t, double*, bool);

SingleThreadedBlas::SingleThreadedBlas() {
  if (MKL_Set_Num_Threads_Local) previous = MKL_Set_Num_Threads_Local(1);
}
SingleThreadedBlas::~SingleThreadedBlas() {
  if (MKL_Set_Num_Threads_Local) MKL_Set_Num_Threads_Local(previous);
}

}  // namespace manifpt::detail
