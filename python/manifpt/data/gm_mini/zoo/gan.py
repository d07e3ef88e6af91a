"""GANs: the shared decoder as generator against the shared critic (non-saturating, LSGAN or WGAN-GP)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Critic, Decoder, output_to_pixels, to_uint8, update


class GAN(nn.Module):
    def __init__(self, upsampling, normalization, nonlinearity, loss, z_dim=64, width=128):
        super().__init__()
        if loss not in ("nonsaturating", "lsgan", "wgan-gp"):
            raise ValueError(f"GAN loss must be nonsaturating, lsgan or wgan-gp, got {loss!r}")
        self.loss, self.z_dim = loss, z_dim
        self.G = Decoder(z_dim, width, upsampling, normalization, nonlinearity)
        self.D = Critic()

    def optimizers(self):
        betas = (0.0, 0.9) if self.loss == "wgan-gp" else (0.5, 0.999)
        return (torch.optim.Adam(self.G.parameters(), 2e-4, betas=betas),
                torch.optim.Adam(self.D.parameters(), 2e-4, betas=betas))

    def _d_loss(self, real, fake):
        dr, df = self.D(real), self.D(fake)
        if self.loss == "nonsaturating":
            return F.softplus(-dr).mean() + F.softplus(df).mean()
        if self.loss == "lsgan":
            return 0.5 * ((dr - 1) ** 2).mean() + 0.5 * (df ** 2).mean()
        eps = torch.rand(real.shape[0], 1, 1, 1)
        mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(self.D(mix).sum(), mix, create_graph=True)
        penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        return df.mean() - dr.mean() + 10.0 * penalty

    def _g_loss(self, fake):
        df = self.D(fake)
        if self.loss == "nonsaturating":
            return F.softplus(-df).mean()
        if self.loss == "lsgan":
            return 0.5 * ((df - 1) ** 2).mean()
        return -df.mean()

    def train_step(self, x11, opts) -> float:
        """One discriminator and one generator update; the discriminator sees images in the generator's range."""
        opt_g, opt_d = opts
        real = self.G.to_data_range(x11)
        z = torch.randn(x11.shape[0], self.z_dim)
        fake = self.G(z)
        update(opt_d, self._d_loss(real, fake.detach()))
        return update(opt_g, self._g_loss(fake))

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        self.eval()
        y = self.G(torch.randn(n, self.z_dim))
        return to_uint8(output_to_pixels(y, self.G.nonlinearity))
