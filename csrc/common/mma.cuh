#pragma once
// nvcuda::wmma for device code: the real <mma.h> under nvcc, the emulation's stand-in
// (testing/wmma_emu.h) under the host compiler. Include after common/device.cuh.
#include "common/device.cuh"

#if defined(__CUDACC__)
#include <mma.h>
#else
#include "testing/wmma_emu.h"
#endif
