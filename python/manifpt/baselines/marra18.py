"""Marra et al. 2018, "Detection of GAN-generated fake images over social networks": a deep ImageNet
CNN fine-tuned as the classifier. Theirs was XceptionNet; torchvision has Inception-v3, its closest
relative.

Network: Inception-v3 (without the auxiliary head) with a K-way head over its pooled 2048-d
features, fine-tuned from ImageNet weights when a local file is given (`weights`). Images are resized
to `input_size` (299, as Inception-v3 expects; 75 is its minimum), ImageNet-normalised; Adam lr 1e-4.
"""
from __future__ import annotations

import torch
from torchvision.transforms.v2 import functional as TF

from .. import backbones
from ..backbones import imagenet_normalize
from .base import TorchBaseline


class Marra18(TorchBaseline):
    name = "marra18"

    def __init__(self, weights=None, input_size: int = 299, lr: float = 1e-4, **kw):
        super().__init__(lr=lr, **kw)
        if input_size < 75:
            raise ValueError(f"marra18: Inception-v3 needs input_size >= 75, got {input_size}")
        self.weights, self.input_size = weights, input_size

    def transform(self, images, train, gen=None):
        x = TF.resize(images, [self.input_size, self.input_size], antialias=True)
        if train and torch.rand(1, generator=gen) < 0.5:
            x = x.flip(-1)
        return imagenet_normalize(x)

    def make_net(self, num_classes):
        return backbones.build("inception_v3", 3, num_classes, self.weights)
