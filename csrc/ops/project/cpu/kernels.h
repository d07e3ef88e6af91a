#pragma once
// The inner kernels of the candidate search (candidates.cpp): the cross term x.y of a block of
// centred fakes against a tile of centred reals, and the scan of one row of approximate distances.
// Each ISA's kernels live in their own file, compiled with that ISA's -m flags and called only after
// isa.cpp has seen the CPU support it.
#include <cstdint>
#include <vector>

#include "ops/project/cpu/row_state.h"

namespace manifpt::detail {

// --- Our packed-panel GEMMs, float only: one file gemm_<isa>.cpp each (driver in gemm_panels.h). ---
// Reals: panels of kPanel reals, zero-padded to a whole panel (pack.h); a panel is kPanel / cols
// sub-panels of `cols` reals (the kernel's register pass), each k-major: [panel][sub][k][cols], so the
// kc x cols slice one register pass reads is contiguous (sub-panel q of a tile at q * D * cols).
// Fakes: K-blocks of micro-panels of mr rows (pack.h): K-block [k0, k0 + kw) of all M fakes at
// fakes + k0 * M, the micro-panel of row g in it at + g * kw, layout [k][rows] (rows = mr but for the
// last micro-panel of all fakes). A K-block of a block of fakes is contiguous, and so is a K-slice of
// a sub-panel of reals.
// run: c[i * ldc + j] = x_{i0 + i} . y_j for i < mb, j < round_up(nb, kPanel); kc: the K-block the fakes
// were packed with (blocking.h); prefetch: the software prefetches of gemm_panels.h.
constexpr int64_t kPanel = 32;
struct PanelGemm {
  const char* name;  // its MANIFPT_CPU_ISA value
  int preference;    // auto (and a name the CPU cannot run) take the supported kernel ranked highest
  int mr, cols;      // register block: fakes per micro-panel, reals per register pass (blocking.cpp)
  const char* needs;  // CPU features it needs, as cpu_supports (isa.cpp) reads them: "avx512f,avx2,fma"
  void (*run)(const float* fakes, int64_t M, int64_t i0, int64_t mb, int64_t D, int64_t kc, const float* panels,
              int64_t nb, float* c, int64_t ldc, bool prefetch);
};
// A gemm_<isa>.cpp adds its kernel as the module loads:
//   static const bool registered = register_panel_gemm(&kKernel);   (kKernel: a constexpr PanelGemm)
// The kernel is constant data and the initialiser passes one pointer, so nothing of the ISA runs before
// cpu_path() has checked `needs`. Registered kernels, highest preference first:
bool register_panel_gemm(const PanelGemm* g);
const std::vector<const PanelGemm*>& panel_gemms();

// --- BLAS sgemm_/dgemm_ or portable C++ (gemm_blas.cpp), on row-major operands. ---
// c[i * nb + j] = x_i . y_j for a block of mb fakes and nb reals (both row-major, D wide).
template <typename T>
void cross_gemm_rowmajor(const T* x, int64_t mb, const T* y, int64_t nb, int64_t D, T* c, bool use_blas);
// While a worker thread runs its own GEMMs inside at::parallel_for, the BLAS must not start threads of
// its own (nested threads only oversubscribe the cores).
struct SingleThreadedBlas {
  int previous = 0;
  SingleThreadedBlas();
  ~SingleThreadedBlas();
};

// --- Candidate scan of one row (candidates.cpp: portable; scan_avx2.cpp: AVX2/FMA). ---
// c[j] = x.y_j (centred), yn[j] = |y_j|^2, xn = |x|^2, bound = the expansion error bound for this row
// and tile, j0 = global index of the tile's first real.
template <typename T>
void scan_row(const T* c, const T* yn, int64_t nb, T xn, T bound, int64_t j0, RowState<T>& st);
void scan_row_f32_avx2(const float* c, const float* yn, int64_t nb, float xn, float bound, int64_t j0, RowState<float>& st);

// --- Packing float rows k-major (pack_avx2.cpp: AVX2): centre_kmajor_chunk of pack.h, faster, the same
// values and norms. ---
void centre_kmajor_chunk_f32_avx2(const float* src, int64_t rows, int64_t width, int64_t D, int64_t k0, int64_t k1,
                                  const float* mu, float* dst, double* lanes);

}  // namespace manifpt::detail
