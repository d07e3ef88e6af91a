"""Metrics of the paper: accuracy over seeds, Frechet distance, the FD ratio (F.4), NMI (Tab. 6).

Choices where the paper is silent:

- **Mean +- std over seeds:** std is the sample standard deviation (ddof = 1); with one seed it is 0.
- **Frechet distance:**
  `FD = ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2))`, the formula of Yu et al.'s
  `calculate_frechet_distance`.
  - The trace of the square root comes from the eigenvalues of the symmetric PSD matrix
    `S1^(1/2) S2 S1^(1/2)`, which has the same non-zero spectrum as `S1 S2`.
  - Tiny negative eigenvalues from rounding are clipped to 0.
  - This needs no complex `sqrtm` and stays finite and accurate for near-singular covariances, where
    `scipy.linalg.sqrtm(S1 @ S2)` needs the `eps * I` retry of the reference code.
- **FD ratio:** when a half-class has fewer samples than dimensions its covariance is singular.
  - By default (`max_dims="auto"`), all features are projected onto their top principal components,
    fitted on all samples. The number kept is the smallest half's size minus 1, capped at the input
    dimension.
  - Pass an integer to choose the number of components, or `None` to keep every dimension.
  - The choice made is returned with the result.
- **NMI:** k-means (scikit-learn, k = number of distinct factor values, n_init=10, seeded) on the
  features, scored with `normalized_mutual_info_score` against the factor labels.
"""
from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np


def accuracy(pred: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    pred, labels = np.asarray(pred), np.asarray(labels)
    if pred.shape != labels.shape or pred.size == 0:
        raise ValueError(f"accuracy: pred and labels must be non-empty and of one shape, got {pred.shape} and {labels.shape}")
    return float((pred == labels).mean())


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("mean_std: no values")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def confusion_matrix(pred, labels, num_classes: int) -> np.ndarray:
    """counts[i, j] = number of samples of true class i predicted as j."""
    pred, labels = np.asarray(pred, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    out = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(out, (labels, pred), 1)
    return out


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if x.shape[0] < 2:
        raise ValueError(f"frechet_distance: need at least 2 samples per set, got {x.shape[0]}")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance_from_stats(mu1, s1, mu2, s2) -> float:
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(s1, np.float64)), np.atleast_2d(np.asarray(s2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"frechet_distance: shapes do not match: mu {mu1.shape}/{mu2.shape}, sigma {s1.shape}/{s2.shape}")
    r1 = _sqrt_psd(s1)
    eig = np.linalg.eigvalsh(r1 @ s2 @ r1)
    tr_covmean = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of feature vectors (rows)."""
    return frechet_distance_from_stats(*_stats(a), *_stats(b))


def fd_ratio(features, labels, *, seed: int = 0, max_dims: int | str | None = "auto") -> dict:
    """The FD ratio of the paper's F.4: mean inter-class FD over mean intra-class FD.

    inter = mean of FD(class i, class j) over all pairs i < j; intra = mean over classes of the FD
    between two disjoint random halves of the class (seeded). Higher: classes further apart
    relative to their own spread. Returns {"fdr", "inter", "intra", "dims"}; "fdr" is None where the
    classes have no spread of their own (intra = 0, e.g. a baseline whose features are constant on these
    images): the ratio is undefined there, and an infinity would not be valid JSON.
    """
    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    y = np.asarray(labels)
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"fd_ratio: need at least 2 classes, got {len(classes)}")
    rng = np.random.default_rng(seed)
    halves = {}
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        if len(idx) < 4:
            raise ValueError(f"fd_ratio: class {c} has {len(idx)} samples; need at least 4 (two halves of 2)")
        halves[c] = (idx[: len(idx) // 2], idx[len(idx) // 2 :])
    if max_dims == "auto":
        max_dims = max(1, min(x.shape[1], min(len(h[0]) for h in halves.values()) - 1))
    if max_dims is not None and max_dims < x.shape[1]:
        centred = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        x = centred @ vt[:max_dims].T
    inter = [frechet_distance(x[y == a], x[y == b]) for a, b in combinations(classes, 2)]
    intra = [frechet_distance(x[h0], x[h1]) for h0, h1 in halves.values()]
    mi, ma = float(np.mean(intra)), float(np.mean(inter))
    return {"fdr": ma / mi if mi > 0 else None, "inter": ma, "intra": mi, "dims": int(x.shape[1])}


def top_components(features, k: int, *, seed: int = 0) -> np.ndarray:
    """The features' projections on their top k principal components (seeded); unchanged when they have
    at most k dimensions."""
    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    if x.shape[1] <= k or len(x) <= k:
        return x
    from sklearn.decomposition import PCA

    return PCA(k, random_state=seed).fit_transform(x)


def nmi(features, factor_labels, *, seed: int = 0) -> float:
    """NMI between a k-means clustering of the features (k = number of factor values) and the factor."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    y = np.asarray(factor_labels)
    k = len(np.unique(y))
    if k < 2:
        raise ValueError("nmi: the factor takes a single value: nothing to cluster against")
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return float(normalized_mutual_info_score(y, clusters))


def expected_calibration_error(probs, labels, bins: int = 15) -> float:
    """ECE (Guo et al. 2017): bin the predictions by confidence (max probability) into equal-width
    bins. It is the mean over samples of |accuracy - confidence| within each sample's bin."""
    p, y = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    if p.ndim != 2 or len(p) != len(y) or len(p) == 0:
        raise ValueError(f"expected_calibration_error: probs (N, K) and labels (N,), got {p.shape} and {y.shape}")
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    correct = (pred == y).astype(np.float64)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def auroc(scores_known, scores_unknown) -> float:
    """Area under the ROC curve of telling known (positive) from unknown by a score (higher = known)."""
    from sklearn.metrics import roc_auc_score

    s = np.concatenate([np.asarray(scores_known, np.float64), np.asarray(scores_unknown, np.float64)])
    y = np.concatenate([np.ones(len(scores_known)), np.zeros(len(scores_unknown))])
    if len(scores_known) == 0 or len(scores_unknown) == 0:
        raise ValueError("auroc: need scores of both known and unknown samples")
    return float(roc_auc_score(y, s))
