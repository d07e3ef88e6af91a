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


class _RadialBins:
    """The radial binning of one image size, shared by every image: which pixels (radius above half the
    corner radius) fall in which of the BINS bins, and how the empty bins are filled. Empty bins are filled
    in increasing order with the mean of their left neighbour (already filled) and the nearest non-empty
    bin on their right, as the per-image loop of the reference recipe does."""

    def __init__(self, h: int, w: int):
        yy, xx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
        r = np.sqrt(yy**2 + xx**2).ravel()
        rmax = r.max()
        self.keep = r > rmax / 2
        self.edges = np.linspace(rmax / 2, rmax, BINS + 1)
        self.which = np.clip(np.digitize(r[self.keep], self.edges) - 1, 0, BINS - 1)
        self.counts = np.bincount(self.which, minlength=BINS)
        full = np.flatnonzero(self.counts > 0)
        self.fill = []  # (empty bin, the bins whose mean it takes), in the order they are filled
        for i in np.flatnonzero(self.counts == 0):
            right = full[full > i]
            self.fill.append((i, [*([i - 1] if i > 0 else []), *right[:1]]))

    def profiles(self, mags: np.ndarray) -> np.ndarray:
        """(n, H*W) magnitudes -> (n, BINS) smoothed radial means (moving average of 5, edges repeated)."""
        n = len(mags)
        # one bincount over (image, bin): each bin's sum accumulates its pixels in the same order as a
        # per-image bincount would, so the numbers are those of the per-image loop
        flat = (np.arange(n)[:, None] * BINS + self.which[None, :]).ravel()
        sums = np.bincount(flat, mags[:, self.keep].ravel(), minlength=n * BINS).reshape(n, BINS)
        y = np.where(self.counts > 0, sums / np.maximum(self.counts, 1), np.nan)
        for i, neighbours in self.fill:
            y[:, i] = np.mean(y[:, neighbours], axis=1)
        return np.stack([np.convolve(np.pad(row, 2, mode="edge"), np.ones(5) / 5, mode="valid") for row in y])

    @property
    def centres(self) -> np.ndarray:
        return (self.edges[:-1] + self.edges[1:]) / 2


def decay_features(images: torch.Tensor) -> np.ndarray:
    from scipy.optimize import curve_fit

    g = (grayscale(images) * 255.0).double()
    mags = torch.fft.fftshift(torch.fft.fft2(g), dim=(-2, -1)).abs().numpy()
    bins = _RadialBins(*g.shape[-2:])
    profiles = bins.profiles(mags.reshape(len(mags), -1))
    xs = bins.centres[BINS // 4 :]
    x1 = xs[0]
    out = np.zeros((len(mags), 3))
    for i, y in enumerate(profiles):
        ys = y[BINS // 4 :]
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
