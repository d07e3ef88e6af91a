"""Dzanic et al. 2020, "Fourier spectrum discrepancies in deep network generated images" (public code:
tarikdzanic/FourierSpectrumDiscrepancies).

Features (3):
1. Take the grayscale image's raw spectrum magnitude |fftshift(fft2)|.
2. Keep pixels whose radius is above half the corner radius, and average them in 200 radial bins.
   An empty bin takes the mean of its neighbours.
3. Smooth with a moving average of window 5.
4. Fit a power law y = yi * (x / x1)^b (scipy curve_fit, b0 = -2) on the upper 3/4 of the bins.
5. The features are [b, yi, yf]: the decay exponent and the fitted start and end levels.

Classifier: k-nearest neighbours (k = 5) on standardised features.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from .base import SklearnBaseline, _check_images, grayscale

BINS = 200


def _radial(mag: np.ndarray, r: np.ndarray, rmax: float) -> tuple[np.ndarray, np.ndarray]:
    keep = r > rmax / 2
    edges = np.linspace(rmax / 2, rmax, BINS + 1)
    which = np.clip(np.digitize(r[keep], edges) - 1, 0, BINS - 1)
    sums = np.bincount(which, mag[keep], minlength=BINS)
    counts = np.bincount(which, minlength=BINS)
    y = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    for i in np.flatnonzero(np.isnan(y)):  # empty bin: mean of the nearest non-empty neighbours
        left = y[:i][~np.isnan(y[:i])]
        right = y[i + 1 :][~np.isnan(y[i + 1 :])]
        y[i] = np.mean([v for v in (left[-1] if len(left) else None, right[0] if len(right) else None) if v is not None])
    y = np.convolve(np.pad(y, 2, mode="edge"), np.ones(5) / 5, mode="valid")
    return (edges[:-1] + edges[1:]) / 2, y


def decay_features(images: torch.Tensor) -> np.ndarray:
    from scipy.optimize import curve_fit

    g = (grayscale(images) * 255.0).double()
    mags = torch.fft.fftshift(torch.fft.fft2(g), dim=(-2, -1)).abs().numpy()
    h, w = g.shape[-2:]
    yy, xx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    r = np.sqrt(yy**2 + xx**2).ravel()
    rmax = r.max()
    out = np.zeros((len(mags), 3))
    for i, m in enumerate(mags):
        x, y = _radial(m.ravel(), r, rmax)
        xs, ys = x[BINS // 4 :], y[BINS // 4 :]
        x1 = xs[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                (yi, b), _ = curve_fit(lambda t, yi, b: yi * (t / x1) ** b, xs, ys, p0=(max(ys[0], 1e-6), -2.0), maxfev=5000)
            except RuntimeError:  # no convergence: the log-space least-squares line instead
                b, log_yi = np.polyfit(np.log(xs / x1), np.log(np.maximum(ys, 1e-12)), 1)
                yi = np.exp(log_yi)
        out[i] = (b, yi, yi * (xs[-1] / x1) ** b)
    return out


class Dzanic20(SklearnBaseline):
    name = "dzanic20"

    def __init__(self, k: int = 5, seed: int = 0):
        super().__init__(seed)
        self.k = k

    def features(self, images) -> np.ndarray:
        return decay_features(_check_images(images))

    def _classifier(self):
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(n_neighbors=self.k)
