"""Nataraj et al. 2019, "Detecting GAN generated fake images using co-occurrence matrices".

Input: for each of R, G, B, the co-occurrence matrix of horizontally adjacent pixel values, stacked as a
(3, levels, levels) tensor; the paper uses all 256 levels. The counts are scaled so that the mean entry
is 1; normalised to sum 1 they would be ~1e-5, too small for the network to train from. Network, as in
the paper: conv 32 3x3, conv 32 5x5, max-pool 3, conv 64 3x3, conv 64 5x5, max-pool 3, conv 128 3x3,
conv 128 5x5, max-pool 3, dense 256, dense 256, K-way softmax (ReLU activations), trained with Adam.
No public code exists.

Two documented parameters the paper fixes, for small images on a CPU:
- `levels` quantises the 256 pixel values to `levels` bins (v * levels // 256) before counting. A 32 x 32
  image has only 992 horizontal pairs per channel, spread over 65,536 bins at 256 levels; 64 levels
  gives 4,096 bins and a network 14x cheaper: 0.19 G multiply-adds per matrix against 2.6 G, the first
  5x5 convolution running on 64 x 64 maps, not 250 x 250.
- `padding`: "valid" (the paper's unpadded convolutions) needs levels >= 105 to reach the dense layers;
  "same" keeps each convolution's size, for fewer levels.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import TorchBaseline, Trunk, to_uint8


def cooccurrence(images: torch.Tensor, levels: int = 256) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> (N, 3, levels, levels): counts of (q[i, j], q[i, j+1]) pairs, q the
    pixel value quantised to `levels` bins, as fractions of all pairs of the channel (each matrix sums to 1)."""
    q = to_uint8(images).long() * levels // 256
    pairs = (q[..., :-1] * levels + q[..., 1:]).flatten(2)  # (N, 3, H*(W-1))
    n, c, m = pairs.shape
    bins = levels * levels
    offset = (torch.arange(n * c) * bins).view(n, c, 1)
    counts = torch.bincount((pairs + offset).flatten(), minlength=n * c * bins).view(n, c, levels, levels)
    return counts.float() / max(m, 1)


def _valid_size(levels: int) -> int:
    """Side of the last feature map of the paper's unpadded network on a levels x levels input."""
    s = levels
    for _ in range(3):
        s = (s - 2 - 4) // 3  # conv 3x3, conv 5x5, max-pool 3
    return s


class Nataraj19(TorchBaseline):
    name = "nataraj19"

    def __init__(self, levels: int = 256, padding: str = "valid", **kw):
        super().__init__(**kw)
        if not 2 <= levels <= 256:
            raise ValueError(f"nataraj19: levels must be in [2, 256], got {levels}")
        if padding not in ("valid", "same"):
            raise ValueError(f"nataraj19: padding must be 'valid' or 'same', got {padding!r}")
        if padding == "valid" and _valid_size(levels) < 1:
            raise ValueError(f"nataraj19: padding='valid' needs levels >= 105 (got {levels}); use padding='same'")
        if padding == "same" and levels < 27:
            raise ValueError(f"nataraj19: three max-pools of 3 need levels >= 27, got {levels}")
        self.levels, self.padding = levels, padding

    def transform(self, images, train, gen=None):
        return cooccurrence(images, self.levels) * float(self.levels**2)  # mean entry 1

    def make_net(self, num_classes):
        def conv(cin, cout, k):
            return [nn.Conv2d(cin, cout, k, padding=self.padding), nn.ReLU(inplace=True)]

        side = _valid_size(self.levels) if self.padding == "valid" else self.levels // 27
        features = nn.Sequential(
            *conv(3, 32, 3), *conv(32, 32, 5), nn.MaxPool2d(3),
            *conv(32, 64, 3), *conv(64, 64, 5), nn.MaxPool2d(3),
            *conv(64, 128, 3), *conv(128, 128, 5), nn.MaxPool2d(3),
            nn.Flatten(), nn.Linear(128 * side * side, 256), nn.ReLU(inplace=True), nn.Linear(256, 256), nn.ReLU(inplace=True),
        )
        return Trunk(features, 256, num_classes)
