"""Wang et al. 2020, "CNN-generated images are surprisingly easy to spot... for now" (public code:
PeterWang512/CNNDetection), trained K-way here for attribution.

- **Network:** ResNet50 with a K-way head, fine-tuned from ImageNet weights when a local file is
  given (`weights`, checked like the sl embedder).
- **Training augmentation:** each image is loaded at `load_size` (256), then randomly cropped to
  `input_size` (224) and flipped. With probability `p_blur` it is blurred (Gaussian,
  sigma ~ U[0, 3]); with probability `p_jpeg` it is JPEG-compressed (quality ~ U[30, 100]).
- **Evaluation:** resize to `load_size`, centre crop to `input_size`.
- ImageNet normalisation; Adam with lr 1e-4.

`arch="small"` swaps in the ManiFPT authors' small ResNet (backbones.SmallResNet) for CPU runs at small sizes.
"""
from __future__ import annotations

import torch
import torchvision
from torchvision.transforms.v2 import functional as TF

from .. import backbones
from ..backbones import imagenet_normalize
from .base import TorchBaseline, to_uint8



class Wang20(TorchBaseline):
    name = "wang20"

    def __init__(self, arch: str = "resnet50", weights=None, load_size: int = 256, input_size: int = 224, p_blur: float = 0.5,
                 p_jpeg: float = 0.5, lr: float = 1e-4, **kw):
        super().__init__(lr=lr, **kw)
        if arch not in ("resnet50", "small"):
            raise ValueError(f"wang20: arch must be 'resnet50' or 'small', got {arch!r}")
        if input_size > load_size:
            raise ValueError(f"wang20: input_size ({input_size}) must not exceed load_size ({load_size})")
        self.arch, self.weights, self.load_size, self.input_size = arch, weights, load_size, input_size
        self.p_blur, self.p_jpeg = p_blur, p_jpeg

    def transform(self, images, train, gen=None):
        x = TF.resize(images, [self.load_size, self.load_size], antialias=True)
        if not train:
            x = TF.center_crop(x, [self.input_size, self.input_size])
            return imagenet_normalize(x)
        out = []
        for img in x:
            u = torch.rand(6, generator=gen)
            top = int(u[0] * (self.load_size - self.input_size + 1))
            left = int(u[1] * (self.load_size - self.input_size + 1))
            img = img[:, top : top + self.input_size, left : left + self.input_size]
            if u[2] < 0.5:
                img = img.flip(-1)
            if u[3] < self.p_blur:
                sigma = float(3 * u[4]) + 1e-3
                k = 2 * int(3 * sigma) + 1
                img = TF.gaussian_blur(img, [k, k], [sigma, sigma])
            if torch.rand(1, generator=gen) < self.p_jpeg:
                quality = int(30 + 70 * u[5])
                img = torchvision.io.decode_jpeg(torchvision.io.encode_jpeg(to_uint8(img[None])[0], quality=quality)).float() / 255
            out.append(img)
        return imagenet_normalize(torch.stack(out))

    def make_net(self, num_classes):
        return backbones.build(self.arch, 3, num_classes, self.weights)
