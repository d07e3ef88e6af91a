"""Yu et al. 2019, "Attributing fake images to GANs: learning and analyzing GAN fingerprints"
(public code: ningyu1991/GANFingerprints): a ProGAN-style discriminator trunk trained K-way.

Network, at `input_size` = 128 as in the paper:
- fromRGB, a 1x1 convolution;
- then blocks of (3x3 conv, LeakyReLU 0.2, 3x3 conv, LeakyReLU 0.2, 2x average-pool) down to 4x4,
  with channels 32, 64, 128, 256, 256;
- a 3x3 convolution, then a dense layer of 256 over the 4x4 map, then the K-way head.

Optimiser: Adam with lr 1e-4 and betas (0, 0.99), as ProGAN.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from .base import TorchBaseline, Trunk


class Yu19(TorchBaseline):
    name = "yu19"

    def __init__(self, input_size: int = 128, lr: float = 1e-4, **kw):
        super().__init__(lr=lr, **kw)
        if input_size < 8 or input_size & (input_size - 1):
            raise ValueError(f"yu19: input_size must be a power of two >= 8, got {input_size}")
        self.input_size = input_size

    def transform(self, images, train, gen=None):
        return TF.resize(images, [self.input_size, self.input_size], antialias=True) * 2 - 1  # [-1, 1] as ProGAN

    def make_net(self, num_classes):
        act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        n_down = int(math.log2(self.input_size)) - 2
        widths = [min(256, 32 * 2**i) for i in range(n_down + 1)]
        layers = [nn.Conv2d(3, widths[0], 1), act()]
        for i in range(n_down):
            layers += [nn.Conv2d(widths[i], widths[i], 3, padding=1), act(), nn.Conv2d(widths[i], widths[i + 1], 3, padding=1),
                       act(), nn.AvgPool2d(2)]
        layers += [nn.Conv2d(widths[-1], widths[-1], 3, padding=1), act(), nn.Flatten(),
                   nn.Linear(widths[-1] * 16, 256), act()]
        return Trunk(nn.Sequential(*layers), 256, num_classes)

    def optimizer(self, params):
        return torch.optim.Adam(params, lr=self.lr, betas=(0.0, 0.99))  # ProGAN's
