"""Tan et al. 2024, "Rethinking the up-sampling operations in CNN-based generative network for
generalizable deepfake detection" (NPR, CVPR 2024), trained K-way here for attribution.

- **Input, the neighbouring pixel relationships (NPR):** `x - up(down(x))`, where `down` keeps one pixel
  of every 2 x 2 block (nearest-neighbour resampling by 1/2) and `up` repeats it back over the block
  (nearest by 2). Generators upsample by repeating or interpolating neighbours; the residual keeps how the
  pixels of a 2 x 2 block differ from its top-left one, where that trace lives, and drops the content.
  The residual is scaled by 2/3 before the network, as in the authors' recipe.
- **Network:** a ResNet-50 cut after layer2 (bottleneck stages of 3 and 4 blocks, 512 channels), with a
  3 x 3 stride-2 first convolution instead of the 7 x 7 one (the residual is a pixel-level signal that a
  large first kernel would smear), global average pooling and a K-way linear head: 1.44M parameters
  without the head.
- **Training:** from scratch, Adam with lr 2e-4, cross-entropy through the shared training loop.
- `weights`: a local file of this truncated network (e.g. one saved from a run here; the authors' own
  checkpoint loads when its keys match) is loaded before the head is replaced. Nothing is downloaded.

Departures: trained K-way (the paper trains a binary real / fake detector), from scratch, for the
study's epochs, on the study's images (32 x 32 on GM-Mini, where the paper uses 224 x 224 crops), and
without the paper's random crops and flips.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import backbones
from .base import TorchBaseline, Trunk


def npr_residual(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> x - up(down(x, 1/2)), nearest both ways: each pixel minus the top-left pixel of its
    2 x 2 block (the last row / column of an odd side is its own block and gives 0 there)."""
    h, w = images.shape[-2:]
    down = images[..., ::2, ::2]
    up = down.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)[..., :h, :w]
    return images - up


class _NPRNet(nn.Module):
    """torchvision's ResNet-50 up to layer2, with the 3 x 3 stride-2 stem: the keys of its state dict are
    those of torchvision's resnet50 (conv1, bn1, layer1, layer2), so a truncated checkpoint loads."""

    def __init__(self):
        super().__init__()
        full = backbones.torchvision_model("resnet50")
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1, self.relu, self.maxpool = full.bn1, full.relu, full.maxpool
        self.layer1, self.layer2 = full.layer1, full.layer2
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.layer2(self.layer1(x)), 1), 1)


class NPR(TorchBaseline):
    name = "npr"

    def __init__(self, weights=None, lr: float = 2e-4, **kw):
        super().__init__(lr=lr, **kw)
        self.weights = weights

    def transform(self, images, train, gen=None):
        return npr_residual(images) * (2.0 / 3.0)

    def make_net(self, num_classes):
        net = _NPRNet()
        if self.weights is not None:
            backbones.load_weights(net, self.weights, ignore=("fc.",))
        return Trunk(net, 512, num_classes)
