#pragma once
// Which CPU code path the projection takes: the best the CPU has, unless MANIFPT_CPU_ISA narrows it
// (the tests use this to cover every path on one machine).
//   avx512    our AVX-512 GEMM + AVX2 scan (the default where the CPU has AVX-512F)
//   avx2      our AVX2 GEMM + AVX2 scan (the default on AVX2-only CPUs)
//   blas      torch's BLAS sgemm_ + AVX2 scan
//   portable  plain C++ GEMM and scan
// The detection lives in isa.cpp, a file compiled without -mavx2/-mavx512f: in the files built with
// those flags the compiler may use the wider instructions anywhere, so a check placed there could
// itself fault on the CPUs it is meant to detect.
#include <string>

namespace manifpt::detail {

enum class Gemm { Avx512, Avx2, Blas, Portable };

struct CpuPath {
  Gemm gemm;
  bool avx2_scan;
  // Our packed-panel GEMMs (float working type only); BLAS and portable read row-major operands.
  bool panels() const { return gemm == Gemm::Avx512 || gemm == Gemm::Avx2; }
};

bool cpu_has_avx2_fma();
bool cpu_has_avx512f();
// Reads MANIFPT_CPU_ISA on every call (one getenv); an unknown value is a one-line error.
CpuPath cpu_path();
const char* gemm_name(Gemm g);

}  // namespace manifpt::detail
