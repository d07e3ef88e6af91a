"""McCloskey & Albright 2018, "Detecting GAN-generated imagery using saturation cues".

GAN generators' normalisation makes fully saturated and fully under-exposed pixels rarer than in
camera images. Features (8): per-channel frequency of saturated pixels (value >= `saturated`) and of
under-exposed pixels (value <= `underexposed`), on the 8-bit image, plus the frequency of pixels
saturated or under-exposed in any channel. Classifier: linear SVM on standardised features. No public
code exists; the thresholds (255 and 0 by default) are parameters.
"""
from __future__ import annotations

import numpy as np
import torch

from .base import SklearnBaseline, _check_images, to_uint8


class McCloskey18(SklearnBaseline):
    name = "mccloskey18"

    def __init__(self, saturated: int = 255, underexposed: int = 0, C: float = 1.0, seed: int = 0):
        super().__init__(seed)
        if not 0 <= underexposed < saturated <= 255:
            raise ValueError(f"mccloskey18: need 0 <= underexposed < saturated <= 255, got {underexposed}, {saturated}")
        self.saturated, self.underexposed, self.C = saturated, underexposed, C

    def features(self, images) -> np.ndarray:
        u8 = to_uint8(_check_images(images))
        sat, under = u8 >= self.saturated, u8 <= self.underexposed
        per_channel = torch.cat([sat.float().mean(dim=(2, 3)), under.float().mean(dim=(2, 3))], dim=1)
        any_channel = torch.stack([sat.any(dim=1).float().mean(dim=(1, 2)), under.any(dim=1).float().mean(dim=(1, 2))], dim=1)
        return torch.cat([per_channel, any_channel], dim=1).numpy()

    def _classifier(self):
        from sklearn.svm import LinearSVC

        return LinearSVC(C=self.C, random_state=self.seed, max_iter=20000)
