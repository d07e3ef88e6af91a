"""The generative models of GM-Mini: four families (GAN, VAE, flow, diffusion), small enough to train on a
2-core CPU in minutes, with their design factors as constructor arguments.

Every model maps to 32x32 RGB. Data enter the models in [-1, 1] (the flows with `nonlinearity=sigmoid`
work in logit space instead), and every `sample()` returns uint8 images (B, 32, 32, 3).

Design factors (the columns of models.csv):
- upsampling: transposed (ConvTranspose 4x4, stride 2), nearest / bilinear (x2 resize + conv 3x3),
  pixelshuffle (conv 3x3 to 4C + PixelShuffle), none (flows: no upsampling at all);
- nonlinearity: the generator's last operation, tanh / sigmoid / none (a linear output, clamped to the
  pixel range only when sampled);
- normalization: batch / instance / group / actnorm / none, in the generator (GAN discriminators and VAE
  encoders are the same for every model of their family, so they are not a factor);
- loss: nonsaturating, lsgan, wgan-gp (GANs); elbo, beta-elbo (VAEs); mle (flows); eps-mse, x0-mse
  (diffusion: the network predicts the noise or the clean image).
"""
from __future__ import annotations

from torch import nn

from .diffusion import Diffusion, ResBlock, UNet, timestep_embedding
from .flow import ActNorm, AffineCoupling, Flow, InvConv1x1, Reverse, squeeze, unsqueeze
from .gan import GAN
from .layers import SIZE, Critic, Decoder, norm_layer, output_to_pixels, to_uint8, up_layer, update
from .vae import VAE


FAMILIES = {"gan": GAN, "vae": VAE, "flow": Flow, "diffusion": Diffusion}


def make_model(family: str, upsampling: str, normalization: str, nonlinearity: str, loss: str, seed: int = 0) -> nn.Module:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    if family == "flow":
        if upsampling != "none":
            raise ValueError("flows have no upsampling: upsampling must be 'none'")
        return Flow(normalization, nonlinearity, loss, seed=seed)
    return FAMILIES[family](upsampling, normalization, nonlinearity, loss)

__all__ = ["FAMILIES", "SIZE", "make_model", "GAN", "VAE", "Flow", "Diffusion", "ActNorm", "AffineCoupling", "InvConv1x1",
           "Reverse", "ResBlock", "UNet", "Critic", "Decoder", "norm_layer", "output_to_pixels", "squeeze", "timestep_embedding",
           "to_uint8", "unsqueeze", "up_layer", "update"]
