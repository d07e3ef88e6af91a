"""DDPMs: a small UNet predicting the noise (eps-mse) or the clean image (x0-mse), ancestral sampling."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import SIZE, norm_layer, up_layer, to_uint8, update


def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([a.sin(), a.cos()], 1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tdim, normalization):
        super().__init__()
        self.n1, self.c1 = norm_layer(normalization, cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.t = nn.Linear(tdim, cout)
        self.n2, self.c2 = norm_layer(normalization, cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.c1(F.silu(self.n1(x))) + self.t(temb)[:, :, None, None]
        return self.skip(x) + self.c2(F.silu(self.n2(h)))


class UNet(nn.Module):
    """32 -> 16 -> 8 and back, one residual block per scale, skip connections by concatenation; the decoder
    path upsamples with the model's `upsampling`."""

    def __init__(self, upsampling, normalization, width=32, tdim=64):
        super().__init__()
        self.tdim = tdim
        self.tmlp = nn.Sequential(nn.Linear(tdim, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        c1, c2, c3 = width, 2 * width, 2 * width
        self.inp = nn.Conv2d(3, c1, 3, 1, 1)
        self.d1 = ResBlock(c1, c1, tdim, normalization)
        self.down1 = nn.Conv2d(c1, c2, 3, 2, 1)
        self.d2 = ResBlock(c2, c2, tdim, normalization)
        self.down2 = nn.Conv2d(c2, c3, 3, 2, 1)
        self.mid = ResBlock(c3, c3, tdim, normalization)
        self.up2 = up_layer(upsampling, c3, c2)
        self.u2 = ResBlock(2 * c2, c2, tdim, normalization)
        self.up1 = up_layer(upsampling, c2, c1)
        self.u1 = ResBlock(2 * c1, c1, tdim, normalization)
        self.out = nn.Sequential(norm_layer(normalization, c1), nn.SiLU(), nn.Conv2d(c1, 3, 3, 1, 1))

    def forward(self, x, t):
        temb = self.tmlp(timestep_embedding(t, self.tdim))
        h1 = self.d1(self.inp(x), temb)
        h2 = self.d2(self.down1(h1), temb)
        h = self.mid(self.down2(h2), temb)
        h = self.u2(torch.cat([self.up2(h), h2], 1), temb)
        h = self.u1(torch.cat([self.up1(h), h1], 1), temb)
        return self.out(h)


class Diffusion(nn.Module):
    """DDPM (Ho et al. 2020) with T steps of a linear beta schedule rescaled from the 1000-step one; the
    network predicts the noise (eps-mse) or the clean image (x0-mse). Sampled by ancestral DDPM steps, the
    final image clamped to [-1, 1] (nonlinearity none).
    Sampled on 40 of the 200 steps (see `sample`)."""

    def __init__(self, upsampling, normalization, nonlinearity="none", loss="eps-mse", steps=200, width=32):
        super().__init__()
        if loss not in ("eps-mse", "x0-mse") or nonlinearity != "none":
            raise ValueError("diffusion: loss must be eps-mse or x0-mse, nonlinearity none")
        self.loss, self.T, self.sample_steps = loss, steps, 40
        self.net = UNet(upsampling, normalization, width)
        betas = torch.linspace(1e-4 * 1000 / steps, 0.02 * 1000 / steps, steps, dtype=torch.float64)
        alphas_bar = torch.cumprod(1 - betas, 0)
        self.register_buffer("betas", betas.float())
        self.register_buffer("alphas_bar", alphas_bar.float())

    def optimizers(self):
        return (torch.optim.Adam(self.parameters(), 1e-3),)

    def train_step(self, x11, opts) -> float:
        (opt,) = opts
        t = torch.randint(0, self.T, (x11.shape[0],))
        ab = self.alphas_bar[t][:, None, None, None]
        eps = torch.randn_like(x11)
        xt = ab.sqrt() * x11 + (1 - ab).sqrt() * eps
        target = eps if self.loss == "eps-mse" else x11
        return update(opt, F.mse_loss(self.net(xt, t), target), clip=1.0)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Ancestral sampling on `sample_steps` of the T training steps, evenly spaced (the respacing of
        Nichol & Dhariwal 2021): each jump uses the beta that takes alphas_bar from one kept step to the next."""
        self.eval()
        keep = torch.linspace(0, self.T - 1, min(self.sample_steps, self.T)).round().long().tolist()
        x = torch.randn(n, 3, SIZE, SIZE)
        for k in reversed(range(len(keep))):
            i = keep[k]
            ab = self.alphas_bar[i]
            ab_prev = self.alphas_bar[keep[k - 1]] if k > 0 else torch.tensor(1.0)
            beta = 1 - ab / ab_prev
            out = self.net(x, torch.full((n,), i, dtype=torch.long))
            x0 = (x - (1 - ab).sqrt() * out) / ab.sqrt() if self.loss == "eps-mse" else out
            x0 = x0.clamp(-1, 1)
            # posterior mean of q(x_prev | x_t, x0)
            mean = (ab_prev.sqrt() * beta / (1 - ab)) * x0 + ((1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)) * x
            x = mean + (beta * (1 - ab_prev) / (1 - ab)).sqrt() * torch.randn_like(x) if k > 0 else mean
        return to_uint8((x.clamp(-1, 1) + 1) / 2)
