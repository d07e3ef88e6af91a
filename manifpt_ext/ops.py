"""Python wrappers of the manifpt ops: the only module that touches ``torch.ops.manifpt``."""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


class Projection(NamedTuple):
    """Result of :func:`project`.

    artifact: Tensor[M, *S]  fakes - reals[index], dtype of fakes
    index:    Tensor[M]      int64, index of the nearest real (lowest index on ties)
    distance: Tensor[M]      float32, squared Euclidean distance to it
    """

    artifact: torch.Tensor
    index: torch.Tensor
    distance: torch.Tensor


def _check(fakes: torch.Tensor, reals: torch.Tensor) -> None:
    # Metadata-only checks (no data access), so they trace under torch.compile. NaN/Inf are
    # checked by the kernels, which read the data anyway.
    for name, t in (("fakes", fakes), ("reals", reals)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"manifpt.project: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in _FLOAT_DTYPES:
            raise TypeError(
                f"manifpt.project: {name} must be float32, float64, float16 or bfloat16, got {t.dtype}"
            )
        if t.dim() < 1:
            raise ValueError(f"manifpt.project: {name} must have a leading sample dimension, got a 0-d tensor")
    if fakes.dtype != reals.dtype:
        raise TypeError(
            f"manifpt.project: fakes and reals must have the same dtype, got fakes {fakes.dtype} and reals {reals.dtype}"
        )
    if fakes.device != reals.device:
        raise ValueError(
            f"manifpt.project: fakes and reals must be on the same device, got fakes on {fakes.device} "
            f"and reals on {reals.device}"
        )
    if fakes.shape[1:] != reals.shape[1:]:
        raise ValueError(
            "manifpt.project: fakes (M, *S) and reals (N, *S) must share the trailing shape S, got fakes "
            f"{tuple(fakes.shape)} and reals {tuple(reals.shape)}"
        )
    if reals.shape[0] == 0:
        raise ValueError("manifpt.project: reals is empty (N = 0): there is no real sample to project onto")
    if math.prod(fakes.shape[1:]) == 0:
        raise ValueError(f"manifpt.project: the trailing shape S has no elements (D = 0), got {tuple(fakes.shape)}")


def project(fakes: torch.Tensor, reals: torch.Tensor, *, tile_m: int = 0, tile_n: int = 0) -> Projection:
    """Exact nearest real sample of every fake, and the artifact, in one fused kernel.

    Args:
        fakes: Tensor[M, *S] generated samples (any trailing shape S, flattened to D = prod(S)).
        reals: Tensor[N, *S] real samples, same dtype (float32/float64/float16/bfloat16) and device.
        tile_m, tile_n: CPU tile sizes (fakes, reals) for tests and tuning; 0 picks them.

    Returns:
        Projection(artifact Tensor[M, *S], index Tensor[M] int64, distance Tensor[M] float32) with
        index[i] = argmin_j ||fakes[i] - reals[j]||^2 (lowest j on ties), distance[i] that minimum
        and artifact[i] = fakes[i] - reals[index[i]].

    Exact: the index's float64 distance equals the float64 minimum (up to float32 rounding of the
    sum on CUDA), also when all vectors share a large offset, where a plain GEMM expansion fails.
    Differentiable: the artifact's (and distance's) gradient flows to fakes and to the chosen reals.
    """
    _check(fakes, reals)
    if tile_m < 0 or tile_n < 0:
        raise ValueError(f"manifpt.project: tile_m and tile_n must be >= 0 (0 = automatic), got {tile_m} and {tile_n}")
    artifact, index, distance = torch.ops.manifpt.project.default(fakes, reals, tile_m, tile_n)
    return Projection(artifact, index, distance)


def _project_cuda_emulated(fakes: torch.Tensor, reals: torch.Tensor, *, tile_m: int = 0, tile_n: int = 0) -> Projection:
    """The CUDA kernel of :func:`project`, run on CPU threads by the CUDA emulation. For tests.

    The same device code and host launcher as the CUDA op (csrc/ops/project/project_kernels.cuh and
    project_launch.h), compiled for the CPU against csrc/testing/cuda_emu.h, so that the CUDA kernel
    executes, with CUDA's launch rules and results bit for bit, on machines without a GPU. Takes and
    returns CPU tensors (Tensor[M, *S], Tensor[N, *S] -> Projection as :func:`project`); ranks in
    float32 (float64 for float64 inputs) as the device does. Slow: one fiber per CUDA thread.
    """
    _check(fakes, reals)
    if tile_m < 0 or tile_n < 0:
        raise ValueError(f"manifpt.project: tile_m and tile_n must be >= 0 (0 = automatic), got {tile_m} and {tile_n}")
    artifact, index, distance = torch.ops.manifpt._project_cuda_emulated.default(fakes, reals, tile_m, tile_n)
    return Projection(artifact, index, distance)


def _cuda_probe(
    kernel: str,
    input: torch.Tensor,
    grid: tuple[int, ...] = (1,),
    block: tuple[int, ...] = (1,),
    dynamic_smem: int = 0,
    max_dynamic_smem: int = 0,
) -> torch.Tensor:
    """Runs one probe kernel (csrc/testing/probe_kernels.cuh) on input's device: the GPU for CUDA
    tensors, the CUDA emulation for CPU tensors. For tests that hold the emulation to the device.

    kernel: "index" -> Tensor[blocks * threads, 6] int64 (blockIdx, threadIdx per thread);
    "shared" -> Tensor[blocks, 2] (checksum of dynamic_smem bytes of shared memory, aligned flag);
    "warp" -> Tensor[K, 64] for int32 cases Tensor[K, 5]; "atomic" -> Tensor[7];
    "convert" -> Tensor[n, 4] int32 for float32 Tensor[n]; "limits" -> Tensor[10] (the device's
    launch limits). max_dynamic_smem > 0 first raises the kernel's dynamic shared memory limit.
    """
    return torch.ops.manifpt._cuda_probe.default(kernel, input, list(grid), list(block), dynamic_smem, max_dynamic_smem)


def cuda_available() -> bool:
    """True when the CUDA kernel of manifpt::project was compiled into this build."""
    return torch._C._dispatch_has_kernel_for_dispatch_key("manifpt::project", "CUDA")


def row_sqdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise float64 squared distance sum((a[i] - b[i])^2), Tensor[M, *S] x2 -> Tensor[M] float64.

    The same arithmetic as the CPU projection's exact re-rank, so it can order candidates from
    different chunks or ranks exactly as one project call would. CPU tensors only.
    """
    return torch.ops.manifpt.row_sqdist.default(a, b)


def cpu_info(m: int = 4096, n: int = 16384, d: int = 2048) -> dict[str, int | str]:
    """What the CPU kernel runs for an (m, n, d) float32 call on this machine, as read at run time.

    Returns {"gemm": "avx512" | "avx2" | "blas" | "portable", "scan": "avx2" | "portable", "l1d", "l2",
    "l3": cache bytes (per core; L3 shared), "caches_from_os": 1 when the OS reported them (else the
    defaults), "mr", "kc", "mc", "nc": the blocking, "threads"}. The path follows MANIFPT_CPU_ISA.
    """
    if min(m, n, d) < 1:
        raise ValueError(f"manifpt_ext.cpu_info: m, n and d must be >= 1, got {m}, {n}, {d}")
    pairs = (item.split("=", 1) for item in torch.ops.manifpt._cpu_info.default(m, n, d).split())
    return {k: (int(v) if v.isdigit() else v) for k, v in pairs}
