#pragma once
// Which CPU code path the projection takes: the best the CPU has, unless MANIFPT_CPU_ISA narrows it
// (the tests use this to cover every path on one machine).
//   <panel GEMM>  one of our packed-panel GEMMs (kernels.h: avx512, avx2), each + the AVX2 scan; a name
//                 whose ISA the CPU lacks takes the best kernel below it that the CPU has, else blas
//   blas          torch's BLAS sgemm_ + AVX2 scan
//   portable      plain C++ GEMM and scan
// The detection lives in isa.cpp, a file compiled without -mavx2/-mavx512f: in the files built with
// those flags the compiler may use the wider instructions anywhere, so a check placed there could
// itself fault on the CPUs it is meant to detect.
#include <string>

namespace manifpt::detail {

struct PanelGemm;  // kernels.h

enum class Gemm { Panels, Blas, Portable };

struct CpuPath {
  Gemm gemm;
  const PanelGemm* panel;  // the packed-panel kernel when gemm == Panels (float working type only)
  bool avx2;  // the AVX2 code for the candidate scan and the packing (the CPU has AVX2/FMA; not on portable)
  bool panels() const { return gemm == Gemm::Panels; }
  const char* gemm_name() const;  // the kernel's name, "blas" or "portable"
};

bool cpu_has_avx2_fma();
// Every feature of a comma-separated list ("avx512f,avx2,fma"), as __builtin_cpu_supports names them.
bool cpu_supports(const char* features);
// Reads MANIFPT_CPU_ISA on every call (one getenv); an unknown value is a one-line error.
CpuPath cpu_path();

}  // namespace manifpt::detail
