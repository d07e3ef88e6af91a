"""Python wrappers of the manifpt ops: the only module that touches ``torch.ops.manifpt``."""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .freq import MODES as FREQ_MODES
from .freq import freq_embed

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


PRECISIONS = ("exact", "tf32", "bf16")


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"manifpt.project: precision must be one of {PRECISIONS}, got {precision!r}")


def project(
    fakes: torch.Tensor, reals: torch.Tensor, *, tile_m: int = 0, tile_n: int = 0, precision: str = "exact"
) -> Projection:
    """Exact nearest real sample of every fake, and the artifact, in one fused kernel.

    Args:
        fakes: Tensor[M, *S] generated samples (any trailing shape S, flattened to D = prod(S)).
        reals: Tensor[N, *S] real samples, same dtype (float32/float64/float16/bfloat16) and device.
        tile_m, tile_n: CPU tile sizes (fakes, reals) for tests and tuning; 0 picks them.
        precision: the arithmetic of the CUDA kernel's candidate search (tensor cores): "exact"
            (float64 DMMA, default), "tf32" or "bf16" (faster candidates, wider error bound, more
            rows re-ranked). The answer is the exact one for every precision: candidates are
            re-ranked in float64. The CPU path ignores it (its own bound in float32/float64).

    Returns:
        Projection(artifact Tensor[M, *S], index Tensor[M] int64, distance Tensor[M] float32) with
        index[i] = argmin_j ||fakes[i] - reals[j]||^2 (lowest j on ties), distance[i] that minimum
        and artifact[i] = fakes[i] - reals[index[i]].

    Exact: the index's float64 distance equals the float64 minimum (up to float32 rounding of the
    sum on CUDA), also when all vectors share a large offset, where a plain GEMM expansion fails.
    Differentiable: the artifact's (and distance's) gradient flows to fakes and to the chosen reals.
    """
    _check(fakes, reals)
    _check_precision(precision)
    if tile_m < 0 or tile_n < 0:
        raise ValueError(f"manifpt.project: tile_m and tile_n must be >= 0 (0 = automatic), got {tile_m} and {tile_n}")
    if precision != "exact" and fakes.device.type == "cuda":
        artifact, index, distance = torch.ops.manifpt.project_precision.default(fakes, reals, precision, "auto", 0)
    else:
        artifact, index, distance = torch.ops.manifpt.project.default(fakes, reals, tile_m, tile_n)
    return Projection(artifact, index, distance)


def _project_cuda(
    fakes: torch.Tensor, reals: torch.Tensor, *, precision: str = "exact", variant: str = "auto", splits: int = 0
) -> Projection:
    """The CUDA op with its kernel choices exposed, for tests and benchmarks: `variant` "auto"/"mma"
    (tensor-core candidates + float64 re-rank) or "direct" (the first CUDA-core kernel, the
    reference variant); `splits` > 0 forces the number of ranges the reals are split into (0 =
    automatic). CUDA tensors; see :func:`project`."""
    _check(fakes, reals)
    _check_precision(precision)
    if splits < 0:
        raise ValueError(f"manifpt.project: splits must be >= 0 (0 = automatic), got {splits}")
    artifact, index, distance = torch.ops.manifpt.project_precision.default(fakes, reals, precision, variant, splits)
    return Projection(artifact, index, distance)


def _project_cuda_emulated(
    fakes: torch.Tensor,
    reals: torch.Tensor,
    *,
    tile_m: int = 0,
    tile_n: int = 0,
    precision: str = "exact",
    variant: str = "auto",
    splits: int = 0,
) -> Projection:
    """The CUDA kernel of :func:`project`, run on CPU threads by the CUDA emulation. For tests.

    The same device code and host launcher as the CUDA op (csrc/ops/project/project_kernels.cuh and
    project_launch.h), compiled for the CPU against csrc/testing/cuda_emu.h, so that the CUDA kernel
    executes, with CUDA's launch rules and results bit for bit, on machines without a GPU. Takes and
    returns CPU tensors (Tensor[M, *S], Tensor[N, *S] -> Projection as :func:`project`).
    precision, variant, splits: as :func:`_project_cuda`. Slow: one fiber per CUDA thread.
    """
    _check(fakes, reals)
    _check_precision(precision)
    if tile_m < 0 or tile_n < 0:
        raise ValueError(f"manifpt.project: tile_m and tile_n must be >= 0 (0 = automatic), got {tile_m} and {tile_n}")
    if splits < 0:
        raise ValueError(f"manifpt.project: splits must be >= 0 (0 = automatic), got {splits}")
    if (precision, variant, splits) == ("exact", "auto", 0):
        artifact, index, distance = torch.ops.manifpt._project_cuda_emulated.default(fakes, reals, tile_m, tile_n)
    else:
        artifact, index, distance = torch.ops.manifpt._project_precision_emulated.default(fakes, reals, precision, variant, splits)
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


def _freq_post_emulated(half: torch.Tensor, width: int, mode: str = "logmag") -> torch.Tensor:
    """The CUDA FFT embedding's fused post-FFT kernel under the CUDA emulation, for tests: half is
    torch.view_as_real(torch.fft.rfft2(x)) (B, C, H, W // 2 + 1, 2), width = W -> the embedding
    Tensor[B, C or 2C, H, W] of :func:`manifpt_ext.freq_embed`."""
    return torch.ops.manifpt._freq_post_emulated.default(half, width, mode)


def _freq_spectra(images: torch.Tensor, mode: str) -> torch.Tensor:
    """freq_embed(images, mode): on CUDA by cuFFT + the fused post-FFT kernel when this build has
    them, else by torch.fft (pocketfft on the CPU)."""
    if images.device.type == "cuda" and torch._C._dispatch_has_kernel_for_dispatch_key("manifpt::freq_spectra", "CUDA"):
        return torch.ops.manifpt.freq_spectra.default(images, mode)
    return freq_embed(images, mode)


def project_freq(
    fake_images: torch.Tensor,
    real_images: torch.Tensor | None = None,
    *,
    mode: str = "logmag",
    real_spectra: torch.Tensor | None = None,
    precision: str = "exact",
) -> Projection:
    """Nearest real in the channelwise FFT space: :func:`project` of freq_embed(fakes, mode) onto
    freq_embed(reals, mode), Tensor[M, C, H, W] x Tensor[N, C, H, W] -> Projection (artifact
    Tensor[M, C or 2C, H, W] in the frequency space).

    On CUDA the spectra come from one batched cuFFT plan per shape and a fused kernel that writes the
    fftshifted log1p(|F|) (or |F|, or Re/Im as 2C channels) straight into the projection's layout; on
    the CPU from torch.fft. real_spectra: the reals' embedding, precomputed (then real_images may be
    None), so a loop over batches of fakes transforms the reals once."""
    if mode not in FREQ_MODES:
        raise ValueError(f"manifpt.project_freq: mode must be one of {FREQ_MODES}, got {mode!r}")
    _check_precision(precision)
    for name, t in (("fake_images", fake_images), ("real_images", real_images)):
        if t is not None and (not isinstance(t, torch.Tensor) or t.dim() != 4):
            raise ValueError(f"manifpt.project_freq: {name} must be a (B, C, H, W) tensor, got {getattr(t, 'shape', type(t).__name__)}")
    if real_spectra is None and real_images is None:
        raise ValueError("manifpt.project_freq: pass real_images or real_spectra")
    fakes = _freq_spectra(fake_images, mode)
    reals = real_spectra if real_spectra is not None else _freq_spectra(real_images, mode)
    if reals.shape[1:] != fakes.shape[1:]:
        raise ValueError(
            f"manifpt.project_freq: real_spectra {tuple(reals.shape)} do not match the fakes' spectra {tuple(fakes.shape)} (mode {mode!r})"
        )
    return project(fakes, reals.to(fakes.dtype), precision=precision)


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
    defaults), "mr", "kc", "mc", "nc": the blocking, "prefetch": 1 when the panel GEMMs prefetch
    (MANIFPT_CPU_PREFETCH=0 turns it off), "threads"}. The path follows MANIFPT_CPU_ISA.
    """
    if min(m, n, d) < 1:
        raise ValueError(f"manifpt_ext.cpu_info: m, n and d must be >= 1, got {m}, {n}, {d}")
    pairs = (item.split("=", 1) for item in torch.ops.manifpt._cpu_info.default(m, n, d).split())
    return {k: (int(v) if v.isdigit() else v) for k, v in pairs}


def cpu_direct_rows() -> int:
    """Rows the CPU op has scanned directly since the process started: the float64 scan over all N reals
    that a fake takes when more reals lie within the expansion's error bound of its nearest than its
    candidate list holds and the list cannot prove its best (duplicated or tied reals). Each such row
    costs O(N * D): the count tells a call slowed by degenerate data from a slow machine."""
    return int(torch.ops.manifpt._cpu_direct_rows.default())


def cpu_paths() -> tuple[str, ...]:
    """Every MANIFPT_CPU_ISA value of this build: "auto", our packed-panel GEMMs best first (a kernel the
    CPU cannot run falls back to the best one below it), "blas" and "portable"."""
    kernels = str(cpu_info(1, 1, 1).get("kernels", ""))
    return ("auto", *[k for k in kernels.split(",") if k], "blas", "portable")
