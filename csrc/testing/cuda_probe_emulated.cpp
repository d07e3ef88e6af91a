// manifpt::_cuda_probe: schema, and the probe kernels run under the CUDA emulation for CPU tensors
// (the real GPU backend is cuda_probe.cu). Private: reached through manifpt_ext.ops._cuda_probe by
// the tests, which hold the emulation to what the device does.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "testing/cuda_probe.h"
#include "testing/emulated_backend.h"

TORCH_LIBRARY_FRAGMENT(manifpt, m) {
  m.def("_cuda_probe(str kernel, Tensor input, int[] grid, int[] block, int dynamic_smem=0, int max_dynamic_smem=0) -> Tensor");
}
TORCH_LIBRARY_IMPL(manifpt, CPU, m) { m.impl("_cuda_probe", &manifpt::cuda::cuda_probe<manifpt::cuda::EmulatedBackend>); }
