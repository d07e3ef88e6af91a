"""Durall et al. 2020, "Watch your up-convolution" (public code: cc-hpc-itwm/UpConv).

Features: the grayscale image's spectrum, fftshift(fft2), as 20 * ln(|F| + 1e-8). Its azimuthal mean
is taken over integer radii around the centre. The DC bin (radius 0) is dropped, and so are the outer
bins beyond the largest full circle, which only the corners feed. Each profile is min-max normalised.
Classifier: logistic regression (default) or SVM on the standardised profile.
"""
from __future__ import annotations

import numpy as np
import torch

from .base import SklearnBaseline, _check_images, grayscale


def azimuthal_profile(images: torch.Tensor, eps: float = 1e-8) -> np.ndarray:
    g = grayscale(images) * 255.0
    mag = 20.0 * torch.log(torch.fft.fftshift(torch.fft.fft2(g.double()), dim=(-2, -1)).abs() + eps)
    h, w = g.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    r = torch.sqrt((yy**2 + xx**2).double()).round().long().flatten()
    rmax = min(h, w) // 2
    counts = torch.bincount(r)
    sums = torch.zeros(len(g), len(counts), dtype=torch.float64).index_add_(1, r, mag.flatten(1))
    prof = (sums / counts.clamp_min(1))[:, 1 : rmax + 1]
    lo, hi = prof.min(dim=1, keepdim=True).values, prof.max(dim=1, keepdim=True).values
    return ((prof - lo) / (hi - lo).clamp_min(1e-12)).numpy()


class Durall20(SklearnBaseline):
    name = "durall20"

    def __init__(self, classifier: str = "logistic", seed: int = 0):
        super().__init__(seed)
        if classifier not in ("logistic", "svm"):
            raise ValueError(f"durall20: classifier must be 'logistic' or 'svm', got {classifier!r}")
        self.classifier = classifier

    def features(self, images) -> np.ndarray:
        return azimuthal_profile(_check_images(images))

    def _classifier(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import SVC

        if self.classifier == "svm":
            return SVC(kernel="rbf", random_state=self.seed)
        return LogisticRegression(max_iter=5000, random_state=self.seed)
