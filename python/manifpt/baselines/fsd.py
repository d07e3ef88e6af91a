"""Nguyen, Azizpour & Stamm 2025, "Forensic self-descriptions are all you need for zero-shot detection,
open-set source attribution, and clustering of AI-generated images" (FSD, CVPR 2025).

The recipe, as the paper describes it, and how it is done here:
1. **Predictive filters learned from real images only.** A prediction-error filter predicts a pixel from
   its neighbours and keeps the error; constrained (Bayar & Stamm) so that the neighbours' weights sum to
   1 and the centre's is -1, it removes the content and keeps the pixel-level microstructure that the
   image's making left. Here each filter is the least-squares optimum of that constrained prediction over
   the real images given to `use_reals` (closed form, float64 normal equations), one per support in
   `supports` (the 3 x 3 ring, the 5 x 5 ring, the 4 causal neighbours: diverse filters) and per scale.
   After use_reals they are fixed.
2. **Multi-scale residuals.** Each filter is applied to the image at each of `scales` (s x s average
   pooling: 1 = full size, 2 = half), giving len(supports) x len(scales) residual maps per image.
3. **The self-description: a compact model of the image's own residuals.** For each residual map, the
   least-squares coefficients that predict a residual from its four neighbours (up, down, left, right;
   the three colour channels pooled, ridge `ridge`), plus the log energy of the residual and of that
   prediction's error: 6 numbers per map, 36 with the defaults. The coefficients are the image's model
   of its own microstructure, fitted to that image alone.
4. **Per-source Gaussian mixtures.** The descriptors are standardised; each source gets a Gaussian
   mixture (sklearn GaussianMixture, `components` full-covariance components, `reg_covar` added to the
   diagonal); an image goes to the source of highest likelihood times prior. Its `confidence` is that
   highest log-likelihood: an image no source explains well is an unknown (the paper's open-set rule).
   With "real" as one of the sources, P(real) is the zero-shot detector's posterior.

Departures: the paper trains its filters by gradient descent, jointly, with more scales and filters,
and fits each self-description by optimisation; here both are closed-form least squares, sized for
32 x 32 images (two scales: a quarter of 32 leaves maps too small for a stable per-image fit). The
paper fits its mixtures on large enrolment sets; here, on the study's training images.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch.nn import functional as F

from .base import SklearnBaseline, _check_images

# neighbour offsets (dy, dx) of each filter's support; the centre (0, 0) is the predicted pixel
SUPPORTS = {
    "ring3": [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)],
    "ring5": [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if (dy, dx) != (0, 0)],
    "causal": [(0, -1), (-1, -1), (-1, 0), (-1, 1)],
}
_CROSS = [(-1, 0), (1, 0), (0, -1), (0, 1)]  # the per-image model's neighbours


def _shifted(x: torch.Tensor, offsets, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, C, H, W) -> (centre (N, C, H-2r, W-2r), neighbours (N, C, len(offsets), H-2r, W-2r))."""
    h, w = x.shape[-2:]
    centre = x[..., r : h - r, r : w - r]
    nb = torch.stack([x[..., r + dy : h - r + dy, r + dx : w - r + dx] for dy, dx in offsets], dim=2)
    return centre, nb


def _scaled(images: torch.Tensor, s: int) -> torch.Tensor:
    return images if s == 1 else F.avg_pool2d(images, s)


def fit_filter(images: torch.Tensor, offsets, chunk: int = 256) -> np.ndarray:
    """The constrained least-squares prediction-error filter of `images` (N, C, H, W): weights w of the
    neighbours (summing to 1) minimising sum (x - sum_k w_k x_k)^2. With the last neighbour as reference,
    w_last = 1 - sum of the others, which turns the constrained problem into an unconstrained one on
    differences. The float64 normal equations are summed over chunks of `chunk` images (bounded memory)."""
    r = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    k = len(offsets) - 1
    ata, atb = torch.zeros(k, k, dtype=torch.float64), torch.zeros(k, dtype=torch.float64)
    for i in range(0, len(images), chunk):
        centre, nb = _shifted(images[i : i + chunk].double(), offsets, r)
        t = (centre - nb[:, :, -1]).flatten()
        d = (nb[:, :, :-1] - nb[:, :, -1:]).permute(2, 0, 1, 3, 4).reshape(k, -1)
        ata += d @ d.T
        atb += d @ t
    ata += 1e-9 * torch.trace(ata) / k * torch.eye(k, dtype=ata.dtype)
    w = torch.linalg.solve(ata, atb)
    return torch.cat([w, (1 - w.sum())[None]]).numpy()


def residual(images: torch.Tensor, offsets, weights: np.ndarray) -> torch.Tensor:
    """x - sum_k w_k x_k over the valid region: (N, C, H - 2r, W - 2r)."""
    r = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    centre, nb = _shifted(images, offsets, r)
    w = torch.as_tensor(weights, dtype=images.dtype).view(1, 1, -1, 1, 1)
    return centre - (nb * w).sum(dim=2)


def self_description(res: torch.Tensor, ridge: float) -> torch.Tensor:
    """(N, C, h, w) residual maps -> (N, 6): the image's own least-squares coefficients predicting a
    residual from its 4 neighbours (channels pooled), log energy of the residual and of the error."""
    centre, nb = _shifted(res.double(), _CROSS, 1)
    n = len(res)
    a = nb.permute(0, 2, 1, 3, 4).reshape(n, 4, -1)  # (N, 4, samples)
    b = centre.reshape(n, -1)
    ata = a @ a.transpose(1, 2)
    scale = ata.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(1e-12)
    ata = ata + ridge * scale.view(n, 1, 1) * torch.eye(4, dtype=ata.dtype)
    c = torch.linalg.solve(ata, (a @ b[:, :, None]))[:, :, 0]
    err = b - (c[:, :, None] * a).sum(dim=1)
    e_res = torch.log(b.pow(2).mean(dim=1) + 1e-10)
    e_err = torch.log(err.pow(2).mean(dim=1) + 1e-10)
    return torch.cat([c, e_res[:, None], e_err[:, None]], dim=1).float()


class GaussianMixtureClassifier(ClassifierMixin, BaseEstimator):
    """One Gaussian mixture per class; predict = argmax of log-likelihood + log prior (a scikit-learn
    style estimator, the last step of the baseline's pipeline)."""

    def __init__(self, components: int = 2, reg_covar: float = 1e-2, seed: int = 0):
        self.components, self.reg_covar, self.seed = components, reg_covar, seed

    def fit(self, x, y):
        from sklearn.mixture import GaussianMixture

        y = np.asarray(y)
        self.classes_ = np.unique(y)
        self.mixtures, priors = [], []
        for c in self.classes_:
            xc = x[y == c]
            # a class with few images gets fewer components: each needs a full covariance's worth of points
            k = max(1, min(self.components, len(xc) // (2 * x.shape[1])))
            self.mixtures.append(GaussianMixture(k, covariance_type="full", reg_covar=self.reg_covar,
                                                 random_state=self.seed).fit(xc))
            priors.append(len(xc) / len(y))
        self.log_prior = np.log(np.asarray(priors))
        return self

    def log_likelihoods(self, x) -> np.ndarray:
        return np.column_stack([m.score_samples(x) for m in self.mixtures])

    def predict_proba(self, x) -> np.ndarray:
        z = self.log_likelihoods(x) + self.log_prior
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, x) -> np.ndarray:
        return self.classes_[np.argmax(self.log_likelihoods(x) + self.log_prior, axis=1)]


class FSD(SklearnBaseline):
    name = "fsd"

    def __init__(self, supports=("ring3", "ring5", "causal"), scales=(1, 2), components: int = 2, reg_covar: float = 1e-2,
                 ridge: float = 1e-3, seed: int = 0):
        super().__init__(seed)
        supports, scales = tuple(supports), tuple(int(s) for s in scales)
        unknown = [s for s in supports if s not in SUPPORTS]
        if unknown or not supports:
            raise ValueError(f"fsd: supports must be among {', '.join(SUPPORTS)}, got {list(supports)}")
        if not scales or any(s < 1 for s in scales):
            raise ValueError(f"fsd: scales must be positive integers, got {list(scales)}")
        if components < 1:
            raise ValueError(f"fsd: components must be >= 1, got {components}")
        self.supports, self.scales, self.components, self.reg_covar, self.ridge = supports, scales, components, reg_covar, ridge
        self.filters: dict | None = None

    def use_reals(self, reals) -> FSD:
        """Learns the prediction-error filters from real images (each support, each scale); they stay fixed."""
        x = _check_images(reals)
        self._check_size(x)
        self.filters = {(sup, s): fit_filter(_scaled(x, s), SUPPORTS[sup]) for s in self.scales for sup in self.supports}
        return self

    def _check_size(self, x):
        need = max(self.scales) * 9  # the 5 x 5 ring and the per-image 3 x 3 cross leave at least 3 x 3
        if min(x.shape[-2:]) < need:
            raise ValueError(f"fsd: images must be at least {need} x {need} for scales {list(self.scales)}, "
                             f"got {tuple(x.shape[-2:])}")

    def features(self, images) -> np.ndarray:
        if self.filters is None:
            raise RuntimeError("fsd: call use_reals(reals) first: its filters are learned from real images")
        x = _check_images(images)
        self._check_size(x)
        out = []
        for i in range(0, len(x), 512):  # bounded memory: the shifted stacks are 24 maps of each image
            b = x[i : i + 512]
            out.append(torch.cat([self_description(residual(_scaled(b, s), SUPPORTS[sup], self.filters[sup, s]), self.ridge)
                                  for s in self.scales for sup in self.supports], dim=1))
        return torch.cat(out).numpy()

    def _classifier(self):
        return GaussianMixtureClassifier(self.components, self.reg_covar, self.seed)

    def confidence_features(self, f: np.ndarray) -> np.ndarray:
        """The best source's log-likelihood: low where no known source explains the descriptor."""
        if self.model is None:
            raise RuntimeError("fsd: call fit() first")
        scaler, gmm = self.model[0], self.model[-1]
        return gmm.log_likelihoods(scaler.transform(f)).max(axis=1)

    def confidence(self, images) -> np.ndarray:
        return self.confidence_features(self.features(images))
