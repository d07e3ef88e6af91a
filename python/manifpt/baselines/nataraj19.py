"""Nataraj et al. 2019, "Detecting GAN generated fake images using co-occurrence matrices".

Input: for each of R, G, B, the 256 x 256 co-occurrence matrix of horizontally adjacent pixel values,
stacked as a (3, 256, 256) tensor. The counts are scaled so that the mean entry is 1; normalised to
sum 1 they would be ~1e-5, too small for the network to train from. Network, as in the paper: conv 32 3x3,
conv 32 5x5, max-pool 3, conv 64 3x3, conv 64 5x5, max-pool 3, conv 128 3x3, conv 128 5x5, max-pool 3,
dense 256, dense 256, K-way softmax (ReLU activations), trained with Adam. No public code exists.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import TorchBaseline, Trunk, to_uint8


def cooccurrence(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> (N, 3, 256, 256): counts of (x[i, j], x[i, j+1]) pairs, as fractions
    of all pairs of the channel (each matrix sums to 1)."""
    u8 = to_uint8(images).long()
    pairs = (u8[..., :-1] * 256 + u8[..., 1:]).flatten(2)  # (N, 3, H*(W-1))
    n, c, m = pairs.shape
    offset = (torch.arange(n * c) * 65536).view(n, c, 1)
    counts = torch.bincount((pairs + offset).flatten(), minlength=n * c * 65536).view(n, c, 256, 256)
    return counts.float() / max(m, 1)


class Nataraj19(TorchBaseline):
    name = "nataraj19"

    def transform(self, images, train, gen=None):
        return cooccurrence(images) * 65536.0  # mean entry 1

    def make_net(self, num_classes):
        def conv(cin, cout, k):
            return [nn.Conv2d(cin, cout, k), nn.ReLU(inplace=True)]

        features = nn.Sequential(
            *conv(3, 32, 3), *conv(32, 32, 5), nn.MaxPool2d(3),
            *conv(32, 64, 3), *conv(64, 64, 5), nn.MaxPool2d(3),
            *conv(64, 128, 3), *conv(128, 128, 5), nn.MaxPool2d(3),
            nn.Flatten(), nn.Linear(128 * 6 * 6, 256), nn.ReLU(inplace=True), nn.Linear(256, 256), nn.ReLU(inplace=True),
        )
        return Trunk(features, 256, num_classes)
