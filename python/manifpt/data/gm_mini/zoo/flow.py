"""Normalizing flows (Glow / RealNVP style): actnorm or none, invertible 1x1 convolutions or reversals, affine couplings, multi-scale squeezes; exact log-likelihood."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import to_uint8, update


class ActNorm(nn.Module):
    """Glow's per-channel affine layer, initialised from the first batch (zero mean, unit variance)."""

    def __init__(self, channels):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("ready", torch.tensor(False))

    def forward(self, x):
        if not bool(self.ready):
            with torch.no_grad():
                self.loc.copy_(-x.mean((0, 2, 3), keepdim=True))
                self.log_scale.copy_(-x.std((0, 2, 3), keepdim=True).clamp_min(1e-3).log())
                self.ready.fill_(True)
        return (x + self.loc) * self.log_scale.exp(), self.log_scale.sum() * x.shape[2] * x.shape[3]

    def inverse(self, y):
        return y * (-self.log_scale).exp() - self.loc


class InvConv1x1(nn.Module):
    """Glow's invertible 1x1 convolution (a learned channel mixing, initialised orthogonal)."""

    def __init__(self, channels, generator):
        super().__init__()
        w = torch.linalg.qr(torch.randn(channels, channels, generator=generator))[0]
        self.weight = nn.Parameter(w)

    def forward(self, x):
        logdet = torch.linalg.slogdet(self.weight)[1] * x.shape[2] * x.shape[3]
        return F.conv2d(x, self.weight[:, :, None, None]), logdet

    def inverse(self, y):
        return F.conv2d(y, torch.linalg.inv(self.weight)[:, :, None, None])


class Reverse(nn.Module):
    """RealNVP's fixed channel permutation between couplings (volume-preserving)."""

    def forward(self, x):
        return x.flip(1), x.new_zeros(())

    def inverse(self, y):
        return y.flip(1)


class AffineCoupling(nn.Module):
    """y_b = x_b * exp(s(x_a)) + t(x_a) with s bounded by tanh; the last conv starts at zero (identity)."""

    def __init__(self, channels, hidden):
        super().__init__()
        self.half = channels // 2
        self.net = nn.Sequential(nn.Conv2d(self.half, hidden, 3, 1, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                                 nn.Conv2d(hidden, 2 * (channels - self.half), 3, 1, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(1))

    def _st(self, xa):
        s, t = self.net(xa).chunk(2, dim=1)
        return self.scale * torch.tanh(s), t

    def forward(self, x):
        xa, xb = x[:, :self.half], x[:, self.half:]
        s, t = self._st(xa)
        return torch.cat([xa, xb * s.exp() + t], 1), s.flatten(1).sum(1)

    def inverse(self, y):
        ya, yb = y[:, :self.half], y[:, self.half:]
        s, t = self._st(ya)
        return torch.cat([ya, (yb - t) * (-s).exp()], 1)


def squeeze(x):
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze(x):
    b, c, h, w = x.shape
    return x.view(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, 2 * h, 2 * w)


class Flow(nn.Module):
    """Two scales of affine couplings: squeeze to 12x16x16 (K steps), squeeze to 48x8x8 (K steps).
    normalization=actnorm gives Glow steps (actnorm, invertible 1x1 conv, coupling); none gives RealNVP
    steps (reverse permutation, coupling). nonlinearity=sigmoid models logit(x) (the inverse ends in a
    sigmoid); none models x in [-1, 1] (clamped when sampled). Dequantised with uniform noise, trained by
    maximum likelihood, sampled at temperature 0.7."""

    def __init__(self, normalization, nonlinearity, loss="mle", steps=4, hidden=48, seed=0):
        super().__init__()
        if loss != "mle":
            raise ValueError(f"flow loss must be mle, got {loss!r}")
        if normalization not in ("actnorm", "none") or nonlinearity not in ("sigmoid", "none"):
            raise ValueError("flow: normalization must be actnorm or none, nonlinearity sigmoid or none")
        self.nonlinearity, self.temperature = nonlinearity, 0.7
        g = torch.Generator().manual_seed(seed)
        self.levels = nn.ModuleList()
        for channels in (12, 48):
            layers = []
            for _ in range(steps):
                if normalization == "actnorm":
                    layers += [ActNorm(channels), InvConv1x1(channels, g)]
                else:
                    layers += [Reverse()]
                layers += [AffineCoupling(channels, hidden)]
            self.levels.append(nn.ModuleList(layers))

    def _preprocess(self, x01):
        """[0, 1] pixels (dequantised) -> the flow's data space, with log|det| of the map per image."""
        n = x01[0].numel()
        if self.nonlinearity == "sigmoid":
            p = 0.025 + 0.95 * x01  # keep away from 0 and 1, as RealNVP does
            y = torch.log(p) - torch.log1p(-p)
            logdet = (math.log(0.95) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
            return y, logdet
        return 2 * x01 - 1, torch.full((x01.shape[0],), n * math.log(2.0))

    def forward(self, y):
        logdet = torch.zeros(y.shape[0])
        for level in self.levels:
            y = squeeze(y)
            for layer in level:
                y, ld = layer(y)
                logdet = logdet + ld
        return y, logdet

    def inverse(self, z):
        for level in reversed(self.levels):
            for layer in reversed(level):
                z = layer.inverse(z)
            z = unsqueeze(z)
        return z

    def optimizers(self):
        return (torch.optim.Adam(self.parameters(), 1e-3),)

    def train_step(self, x11, opts) -> float:
        """Negative log-likelihood in bits per dimension of the 8-bit images."""
        (opt,) = opts
        x01 = ((x11 + 1) / 2 * 255 + torch.rand_like(x11)) / 256
        y, ld_pre = self._preprocess(x01)
        z, ld = self(y)
        n = x11[0].numel()
        log_pz = -0.5 * (z ** 2 + math.log(2 * math.pi)).flatten(1).sum(1)
        nll = -(log_pz + ld + ld_pre) + n * math.log(256)
        return update(opt, (nll / (n * math.log(2))).mean(), clip=50.0)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        self.eval()
        y = self.inverse(self.temperature * torch.randn(n, 48, 8, 8))
        if self.nonlinearity == "sigmoid":
            x01 = (torch.sigmoid(y) - 0.025) / 0.95
        else:
            x01 = (y.clamp(-1, 1) + 1) / 2
        return to_uint8(x01)
