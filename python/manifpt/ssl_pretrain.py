"""Barlow Twins pretraining on the user's own real images (Zbontar et al. 2021), so the SSL space works
with no outside weights.

Training:
- **Backbone:** torchvision ResNet18 (512-d pooled features, fc removed); `--arch resnet50` gives the
  2048-d backbone the paper used. Its first convolution and pooling are kept as torchvision has them.
- **Views:** two augmented views of each batch: random resized crop (scale 0.4-1), horizontal flip,
  brightness/contrast/saturation jitter, grayscale with p = 0.2.
- **Projector:** Linear-BN-ReLU-Linear-BN-ReLU-Linear.
- **Loss:** sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2, where C is the cross-correlation of the
  batch-standardised projections of the two views; lambda = 5e-3 as in the paper.
- **Optimiser:** AdamW (lr 1e-3), seeded.

Training goes through the one training loop (train.train): with `checkpoint`, an interrupted run
continues from its last epoch (`--resume`). The file written holds only the backbone (a state dict plus
its `arch` and the image size it was trained at), saved atomically; the `ssl` space recognises it and
embeds at that size.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import backbones
from .backbones import imagenet_normalize
from .io import atomic_write
from .train import train

ARCHS = ("resnet18", "resnet50")


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A random view of each image in x (B, 3, H, W) in [0, 1]; per-image parameters from g."""
    b, _, h, w = x.shape
    out = torch.empty_like(x)
    for i in range(b):
        scale = 0.4 + 0.6 * torch.rand(1, generator=g).item()
        ch, cw = max(2, round(h * scale**0.5)), max(2, round(w * scale**0.5))
        top = torch.randint(0, h - ch + 1, (1,), generator=g).item()
        left = torch.randint(0, w - cw + 1, (1,), generator=g).item()
        v = nn.functional.interpolate(x[i : i + 1, :, top : top + ch, left : left + cw], size=(h, w), mode="bilinear",
                                      align_corners=False)[0]
        if torch.rand(1, generator=g).item() < 0.5:
            v = v.flip(-1)
        j = 1 + 0.4 * (torch.rand(3, generator=g) * 2 - 1)  # brightness, contrast, saturation
        v = v * j[0]
        v = (v - v.mean()) * j[1] + v.mean()
        gray = v.mean(dim=0, keepdim=True)
        v = (v - gray) * j[2] + gray
        if torch.rand(1, generator=g).item() < 0.2:
            v = v.mean(dim=0, keepdim=True).expand(3, -1, -1)
        out[i] = v.clamp(0, 1)
    return out


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3) -> torch.Tensor:
    n = z1.shape[0]
    z1 = (z1 - z1.mean(0)) / z1.std(0).clamp_min(1e-6)
    z2 = (z2 - z2.mean(0)) / z2.std(0).clamp_min(1e-6)
    c = z1.T @ z2 / n
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on + lambd * off


def pretrain(images: torch.Tensor, out: str | Path, *, arch: str = "resnet18", epochs: int = 20, batch_size: int = 64,
             proj_dim: int = 512, lr: float = 1e-3, seed: int = 0, device: str = "cpu", progress: bool = True,
             checkpoint: str | Path | None = None, resume: bool = False) -> list[float]:
    """Trains a Barlow Twins backbone on `images` (N, 3, H, W) in [0, 1]; writes it to `out`; returns
    the mean loss of each epoch."""
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[0] < 4:
        raise ValueError(f"ssl-pretrain: need at least 4 images of shape (3, H, W), got {tuple(images.shape)}")
    if arch not in ARCHS:
        raise ValueError(f"ssl-pretrain: arch must be one of {ARCHS}, got {arch!r}")
    torch.manual_seed(seed)
    trunk = backbones.build(arch)
    net, f = trunk.features.to(device), trunk.dim
    projector = nn.Sequential(nn.Linear(f, proj_dim), nn.BatchNorm1d(proj_dim), nn.ReLU(inplace=True),
                              nn.Linear(proj_dim, proj_dim), nn.BatchNorm1d(proj_dim), nn.ReLU(inplace=True),
                              nn.Linear(proj_dim, proj_dim)).to(device)
    model = nn.ModuleDict({"backbone": net, "projector": projector})
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)

    def batch_loss(idx, g):
        batch = images[idx]
        v1 = imagenet_normalize(_augment(batch, g).to(device))
        v2 = imagenet_normalize(_augment(batch, g).to(device))
        return barlow_twins_loss(projector(net(v1)), projector(net(v2)))

    settings = {"arch": arch, "epochs": epochs, "batch_size": batch_size, "proj_dim": proj_dim, "lr": lr, "seed": seed,
                "images": list(images.shape)}
    history, _ = train(model, opt, len(images), batch_loss, epochs=epochs, batch_size=batch_size, seed=seed, min_batch=4,
                       checkpoint=checkpoint, resume=resume, settings=settings, progress="ssl-pretrain" if progress else None)
    losses = [h["train_loss"] for h in history]
    # the size the views had: the ssl space feeds this backbone images of that size, not ImageNet's 224
    state = {"format": backbones.SSL_BACKBONE_FORMAT, "arch": arch, "state_dict": {k: v.cpu() for k, v in net.state_dict().items()},
             "losses": losses, "input_size": list(images.shape[-2:])}
    atomic_write(out, lambda tmp: torch.save(state, tmp))
    return losses
