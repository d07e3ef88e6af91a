"""Building blocks shared by the zoo's families: the design-factor layers (normalization, upsampling,
output nonlinearity), the decoder and critic that GANs and VAEs share, one optimizer step, and the
conversion to uint8 pixels."""
from __future__ import annotations

import torch
from torch import nn


SIZE = 32


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"normalization must be batch, instance, group or none here, got {kind!r}")


def up_layer(kind: str, cin: int, cout: int) -> nn.Module:
    """x2 upsampling from cin to cout channels."""
    if kind == "transposed":
        return nn.ConvTranspose2d(cin, cout, 4, 2, 1)
    if kind in ("nearest", "bilinear"):
        return nn.Sequential(nn.Upsample(scale_factor=2, mode=kind), nn.Conv2d(cin, cout, 3, 1, 1))
    if kind == "pixelshuffle":
        return nn.Sequential(nn.Conv2d(cin, 4 * cout, 3, 1, 1), nn.PixelShuffle(2))
    raise ValueError(f"upsampling must be transposed, nearest, bilinear or pixelshuffle, got {kind!r}")


def output_to_pixels(y: torch.Tensor, nonlinearity: str) -> torch.Tensor:
    """The generator's output (after its last nonlinearity) -> [0, 1]."""
    if nonlinearity == "sigmoid":
        return y.clamp(0, 1)
    return ((y.clamp(-1, 1) + 1) / 2)


def update(opt: torch.optim.Optimizer, loss: torch.Tensor, clip: float | None = None) -> float:
    """One optimizer step on `loss` (gradients clipped to norm `clip` when given); returns the loss value."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip)
    opt.step()
    return loss.item()


def to_uint8(x01: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8."""
    return (x01.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class Decoder(nn.Module):
    """z -> 4x4xC -> 8 -> 16 -> 32 through three upsampling blocks, then a 3x3 conv to RGB and the last
    nonlinearity. The generator of every GAN and the decoder of every VAE."""

    def __init__(self, z_dim=64, width=128, upsampling="transposed", normalization="batch", nonlinearity="tanh"):
        super().__init__()
        if nonlinearity not in ("tanh", "sigmoid", "none"):
            raise ValueError(f"nonlinearity must be tanh, sigmoid or none, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.width = width
        self.fc = nn.Linear(z_dim, 16 * width)
        layers = [norm_layer(normalization, width), nn.ReLU()]
        c = width
        for _ in range(3):
            layers += [up_layer(upsampling, c, c // 2), norm_layer(normalization, c // 2), nn.ReLU()]
            c //= 2
        layers += [nn.Conv2d(c, 3, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        y = self.net(self.fc(z).view(-1, self.width, 4, 4))
        if self.nonlinearity == "tanh":
            return torch.tanh(y)
        if self.nonlinearity == "sigmoid":
            return torch.sigmoid(y)
        return y

    def to_data_range(self, x11: torch.Tensor) -> torch.Tensor:
        """Training images in [-1, 1] -> the range this decoder's output lives in."""
        return (x11 + 1) / 2 if self.nonlinearity == "sigmoid" else x11


class Critic(nn.Module):
    """The DCGAN-style discriminator (no normalization, so WGAN-GP's per-sample penalty is valid), the same
    for every GAN of the zoo."""

    def __init__(self, width=32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(16 * 4 * width, 1))

    def forward(self, x):
        return self.net(x).squeeze(1)
