"""sl and ssl: the pooled penultimate features of a ResNet, from a local weights file.

  sl   torchvision's ResNet50 trained on ImageNet (supervised), (2048,)
  ssl  the Barlow Twins ResNet50 backbone (self-supervised), (2048,); or a backbone that
       `manifpt ssl-pretrain` trained on the user's own reals (its file names the arch and image size)

The weights come from `weights` (`--weights`), or else the first known file name found in torch's hub
cache (`$TORCH_HOME/hub/checkpoints`); nothing is ever downloaded. Images are resized to 224 x 224
(bilinear; the paper's images are 256, centre-cropped to 224) and normalised with the ImageNet mean and
std, as the authors' code does. A backbone from `ssl-pretrain` is used at the image size it was trained
at instead: a network trained on 32 x 32 views has not seen 224.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .. import backbones
from ..io import sha256_file
from .registry import Space, register
from .base import Embedder

# File names torch.hub gives these weights (torchvision's ResNet50 V1/V2; Barlow Twins' backbone).
KNOWN_WEIGHTS = {
    "sl": ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth", "resnet50-19c8e357.pth"),
    "ssl": ("resnet50.pth",),
}


def resolve_weights(space: str, weights: str | os.PathLike | None) -> Path:
    """The weights file for `space`: the given path, or a known file in torch's hub cache."""
    if weights is not None:
        path = Path(weights)
        if path.is_dir():
            raise ValueError(f"{space}: weights file {path} is a folder, not a file")
        if not path.is_file():
            raise FileNotFoundError(f"{space}: weights file {path} does not exist")
        return path
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for name in KNOWN_WEIGHTS[space]:
        if (cache / name).is_file():
            return cache / name
    what = "torchvision's ImageNet ResNet50" if space == "sl" else "the Barlow Twins ResNet50 backbone"
    raise FileNotFoundError(
        f"{space}: no weights for {what}. manifpt never downloads: pass --weights FILE (weights=...), or put the file at "
        f"{cache / KNOWN_WEIGHTS[space][0]}. For a space with no outside weights, train one on your own reals with "
        "`manifpt ssl-pretrain`."
    )


class ResNetFeatures(Embedder):
    """A torchvision ResNet up to its pooled feature vector (fc removed), from a local state dict."""

    def __init__(self, space: str, weights: str | os.PathLike | None = None, **kw):
        super().__init__(**kw)
        self.name = space
        self.weights = resolve_weights(space, weights)
        raw = backbones.read_state_dict(self.weights)
        arch, self.input_size = "resnet50", (224, 224)
        if raw.get("format") == backbones.SSL_BACKBONE_FORMAT:  # ssl-pretrain's own file
            arch, self.input_size = raw["arch"], tuple(raw.get("input_size", self.input_size))
            raw = raw["state_dict"]
        trunk = backbones.build(arch)
        try:
            backbones.load_weights(trunk.features, raw)
        except ValueError as e:
            raise ValueError(f"{space}: {self.weights} is not a {arch} state dict: {e}. Expected torchvision's {arch} keys "
                             "(conv1.weight, layer1.0.conv1.weight, ...); the fc.* head may be absent.") from None
        self.arch = arch
        self.model = trunk.features.eval().to(self.device)
        self._hash: str | None = None

    def key(self):
        if self._hash is None:
            self._hash = sha256_file(self.weights)[:16]
        return f"{self.name}-{self.arch}-{self._hash}"

    def _forward(self, x):
        if tuple(x.shape[-2:]) != self.input_size:
            x = torch.nn.functional.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return self.model(backbones.imagenet_normalize(x))


register(Space("sl", "ImageNet ResNet50 features (local --weights file), (2048,)",
               lambda weights=None, **kw: ResNetFeatures("sl", weights, **kw), needs_weights=True))
register(Space("ssl", "Barlow Twins ResNet50 features, or a backbone from `manifpt ssl-pretrain` (--weights), (2048,)",
               lambda weights=None, **kw: ResNetFeatures("ssl", weights, **kw), needs_weights=True))
