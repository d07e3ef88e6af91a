"""VAEs: the shared decoder with a Gaussian encoder, trained on the ELBO or the beta-ELBO."""
from __future__ import annotations

import torch
from torch import nn

from .layers import Decoder, output_to_pixels, to_uint8, update


class VAE(nn.Module):
    """Gaussian decoder with a fixed variance (sum-of-squares reconstruction) and a diagonal Gaussian encoder;
    beta-elbo weighs the KL term by `beta`."""

    def __init__(self, upsampling, normalization, nonlinearity, loss, z_dim=32, width=128, beta=4.0):
        super().__init__()
        if loss not in ("elbo", "beta-elbo"):
            raise ValueError(f"VAE loss must be elbo or beta-elbo, got {loss!r}")
        self.z_dim, self.beta = z_dim, (beta if loss == "beta-elbo" else 1.0)
        self.enc = nn.Sequential(
            nn.Conv2d(3, 32, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(32, 64, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(2048, 2 * z_dim))
        self.G = Decoder(z_dim, width, upsampling, normalization, nonlinearity)

    def optimizers(self):
        return (torch.optim.Adam(self.parameters(), 1e-3),)

    def train_step(self, x11, opts) -> float:
        (opt,) = opts
        mu, logvar = self.enc(x11).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        target = self.G.to_data_range(x11)
        # sum-of-squares with sigma = 0.1 in [-1, 1] units (scaled for the [0, 1] range of a sigmoid output)
        sigma = 0.05 if self.G.nonlinearity == "sigmoid" else 0.1
        rec = ((self.G(z) - target) ** 2).flatten(1).sum(1) / (2 * sigma ** 2)
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
        return update(opt, (rec + self.beta * kl).mean() / x11[0].numel())

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        self.eval()
        return to_uint8(output_to_pixels(self.G(torch.randn(n, self.z_dim)), self.G.nonlinearity))
