"""The frequency embedding of the paper's FREQ space: a 2-D FFT of every channel of every image.

`freq_embed(images, mode)` maps (B, C, H, W) images to:
  logmag    (default) log1p(|fftshift(fft2(x))|), (B, C, H, W): the log-magnitude spectrum, centred
  magnitude |fftshift(fft2(x))|, (B, C, H, W)
  complex   real and imaginary parts of fftshift(fft2(x)) as 2C channels, (B, 2C, H, W)

Why `logmag` is the default: the unnormalised FFT is linear and preserves L2 distances up to the
constant H*W (Parseval). With `complex`, the nearest real is therefore the same as in RGB, and the
artifact is just the FFT of the RGB artifact. `magnitude` and `logmag` are non-linear, so the
neighbours differ, and the log compresses the dominant low frequencies. The authors' released code
uses log(|F| + 1e-12); log1p is the same map shifted to be 0 at |F| = 0, and finite there.

Computed with torch.fft (pocketfft on the CPU, cuFFT on CUDA). A fused cuFFT kernel that writes
straight into the projection's layout is planned (docs/projection.md).
"""
from __future__ import annotations

import torch

MODES = ("logmag", "magnitude", "complex")


def freq_embed(images: torch.Tensor, mode: str = "logmag") -> torch.Tensor:
    """Channelwise 2-D FFT embedding of Tensor[B, C, H, W] -> Tensor[B, C or 2C, H, W] (float32, or
    float64 for float64 input)."""
    if mode not in MODES:
        raise ValueError(f"manifpt.freq_embed: mode must be one of {MODES}, got {mode!r}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(
            f"manifpt.freq_embed: images must be a (B, C, H, W) tensor, got {getattr(images, 'shape', type(images).__name__)}"
        )
    if not images.is_floating_point():
        raise TypeError(f"manifpt.freq_embed: images must be floating point, got {images.dtype}")
    x = images if images.dtype == torch.float64 else images.float()
    spec = torch.fft.fftshift(torch.fft.fft2(x, dim=(-2, -1)), dim=(-2, -1))
    if mode == "complex":
        b, c, h, w = x.shape
        return torch.view_as_real(spec).permute(0, 1, 4, 2, 3).reshape(b, 2 * c, h, w).contiguous()
    mag = spec.abs()
    return torch.log1p(mag) if mode == "logmag" else mag
