"""Real-world processing of images: JPEG, rescaling, blur, noise and crops, at named strengths.

`corrupt(images, kind, strength)` maps (N, 3, H, W) in [0, 1] to the same, processed:
- `jpeg`: quality 95 / 75 / 50;
- `rescale`: downscale by 0.75 / 0.5, then upscale back (bilinear, antialiased);
- `blur`: Gaussian, sigma 0.5 / 1.0;
- `noise`: additive Gaussian, std 0.02 / 0.05 in [0, 1] units;
- `crop`: centre crop of 90% / 75% of the side, resized back.
`random_corruption(images, seed)` gives each image one of them, kind and strength drawn uniformly.
"""
from __future__ import annotations

import math

import torch
import torchvision
from torchvision.transforms.v2 import functional as TF

CORRUPTIONS = {"jpeg": (95, 75, 50), "rescale": (0.75, 0.5), "blur": (0.5, 1.0), "noise": (0.02, 0.05), "crop": (0.9, 0.75)}


def corrupt(images: torch.Tensor, kind: str, strength: float, seed: int = 0) -> torch.Tensor:
    """images (N, 3, H, W) in [0, 1] -> the same, processed."""
    n, _, h, w = images.shape
    if kind == "jpeg":
        u8 = (images.clamp(0, 1) * 255).round().to(torch.uint8)
        return torch.stack([torchvision.io.decode_jpeg(torchvision.io.encode_jpeg(im, quality=int(strength))) for im in u8]).float() / 255
    if kind == "rescale":
        small = TF.resize(images, [max(1, round(h * strength)), max(1, round(w * strength))], antialias=True)
        return TF.resize(small, [h, w], antialias=True).clamp(0, 1)
    if kind == "blur":
        k = 2 * math.ceil(3 * strength) + 1
        return TF.gaussian_blur(images, [k, k], [strength, strength])
    if kind == "noise":
        g = torch.Generator().manual_seed(seed)
        return (images + strength * torch.randn(images.shape, generator=g)).clamp(0, 1)
    if kind == "crop":
        ch, cw = max(1, round(h * strength)), max(1, round(w * strength))
        return TF.resize(TF.center_crop(images, [ch, cw]), [h, w], antialias=True).clamp(0, 1)
    raise ValueError(f"unknown corruption {kind!r}: choose from {', '.join(CORRUPTIONS)}")


def random_corruption(images: torch.Tensor, seed: int) -> torch.Tensor:
    """One random corruption per image (kind and strength drawn uniformly), for training augmentation."""
    g = torch.Generator().manual_seed(seed)
    out = images.clone()
    kinds = list(CORRUPTIONS)
    for i in range(len(images)):
        kind = kinds[int(torch.randint(len(kinds), (1,), generator=g))]
        levels = CORRUPTIONS[kind]
        out[i] = corrupt(images[i : i + 1], kind, levels[int(torch.randint(len(levels), (1,), generator=g))], seed + i)[0]
    return out
