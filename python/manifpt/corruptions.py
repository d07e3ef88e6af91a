"""Real-world processing of images: JPEG, rescaling, blur, noise and crops, at named strengths.

`corrupt(images, kind, strength)` maps (N, 3, H, W) in [0, 1] to the same, processed:
- `jpeg`: quality 95 / 75 / 50;
- `rescale`: downscale by 0.75 / 0.5, then upscale back (bilinear, antialiased);
- `blur`: Gaussian, sigma 0.5 / 1.0;
- `noise`: additive Gaussian, std 0.02 / 0.05 in [0, 1] units;
- `crop`: centre crop of 90% / 75% of the side, resized back.
`random_corruption(images, seed)` gives each image one of them, kind and strength drawn uniformly.
`wild_chain(images, seed, stream)` puts every image through what a social platform does to it (JPEG,
resizing, cropping), in a random order with random parameters (WILD; `wild_params` draws them).
"""
from __future__ import annotations

import math

import numpy as np
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


# The in-the-wild chain: each image gets all three, in a random order, each parameter uniform in its range.
# Crop: a square of `crop` times the side at a random place, resized back to the image size.
WILD = {"jpeg": (30, 95), "resize": (0.5, 1.5), "crop": (0.7, 1.0)}


def wild_params(n: int, seed: int, stream: int = 0) -> list[dict]:
    """The chain of each of n images: {"order": [op, ...], "jpeg": quality, "resize": factor, "crop": side
    fraction, "top"/"left": where the crop starts, as fractions of the free margin}. `stream` keeps the
    draws of different image sets apart (reals and fakes get the same distribution, not the same draws)."""
    rng = np.random.default_rng([seed, stream])
    ops = list(WILD)
    out = []
    for _ in range(n):
        order = [ops[i] for i in rng.permutation(len(ops))]
        q = int(rng.integers(WILD["jpeg"][0], WILD["jpeg"][1] + 1))
        f, c = float(rng.uniform(*WILD["resize"])), float(rng.uniform(*WILD["crop"]))
        top, left = float(rng.uniform()), float(rng.uniform())
        out.append({"order": order, "jpeg": q, "resize": f, "crop": c, "top": top, "left": left})
    return out


def apply_chain(image: torch.Tensor, p: dict) -> torch.Tensor:
    """One image (3, H, W) in [0, 1] through the chain `p` (one entry of wild_params); same size back."""
    h, w = image.shape[-2:]
    x = image[None]
    for op in p["order"]:
        if op == "jpeg":
            x = corrupt(x, "jpeg", p["jpeg"])
        elif op == "resize":
            sh, sw = max(1, round(h * p["resize"])), max(1, round(w * p["resize"]))
            x = TF.resize(TF.resize(x, [sh, sw], antialias=True), [h, w], antialias=True).clamp(0, 1)
        else:
            ch, cw = max(1, round(h * p["crop"])), max(1, round(w * p["crop"]))
            top, left = round(p["top"] * (h - ch)), round(p["left"] * (w - cw))
            x = TF.resize(x[..., top : top + ch, left : left + cw], [h, w], antialias=True).clamp(0, 1)
    return x[0]


def wild_chain(images: torch.Tensor, seed: int, stream: int = 0) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> the same, each image through its own seeded chain (wild_params)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"wild_chain: images must be (N, 3, H, W), got {tuple(images.shape)}")
    params = wild_params(len(images), seed, stream)
    if not len(images):
        return images.clone()
    return torch.stack([apply_chain(im, p) for im, p in zip(images, params)])
