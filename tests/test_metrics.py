"""manifpt.metrics against scipy/sklearn formulas and hand-checkable cases."""
import numpy as np
import pytest
import scipy.linalg

from manifpt import metrics


def reference_fd(a, b):
    """Yu et al.'s calculate_frechet_distance (scipy sqrtm), the formula the paper follows."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = scipy.linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + off).dot(s2 + off))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


@pytest.mark.parametrize("d", [1, 3, 16, 40])
def test_frechet_distance_matches_scipy_formula(d):
    g = np.random.default_rng(d)
    a = g.standard_normal((200, d)) @ g.standard_normal((d, d))
    b = g.standard_normal((300, d)) * 2 + 1
    assert metrics.frechet_distance(a, b) == pytest.approx(reference_fd(a, b), rel=1e-6)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8 * np.trace(np.atleast_2d(np.cov(a, rowvar=False))))


def test_frechet_distance_near_singular_is_finite_and_close():
    g = np.random.default_rng(0)
    basis = g.standard_normal((3, 20))  # rank-3 data in 20 dimensions: singular covariances
    a, b = g.standard_normal((100, 3)) @ basis, g.standard_normal((100, 3)) @ basis + 0.5
    fd = metrics.frechet_distance(a, b)
    assert np.isfinite(fd) and fd >= 0
    assert fd == pytest.approx(reference_fd(a, b), rel=1e-4)


def test_fd_ratio_separates_separated_classes():
    g = np.random.default_rng(1)
    far = np.concatenate([g.standard_normal((60, 5)) + 10 * k for k in range(3)])
    near = np.concatenate([g.standard_normal((60, 5)) + 0.01 * k for k in range(3)])
    y = np.repeat([0, 1, 2], 60)
    r_far, r_near = metrics.fd_ratio(far, y), metrics.fd_ratio(near, y)
    assert r_far["fdr"] > 100 * r_near["fdr"]
    assert r_far["dims"] == 5
    small = metrics.fd_ratio(g.standard_normal((24, 50)), np.repeat([0, 1], 12))  # halves of 6 < 50 dims
    assert small["dims"] == 5 and np.isfinite(small["fdr"])
    with pytest.raises(ValueError, match="at least 2 classes"):
        metrics.fd_ratio(far, np.zeros(180))
    with pytest.raises(ValueError, match="need at least 4"):
        metrics.fd_ratio(far[:63], np.r_[np.zeros(60), np.ones(3)])


def test_constant_features_have_no_fd_ratio_and_an_empty_tsne_panel(tmp_path):
    """McCloskey18's features are all zero on images without saturated pixels (seen on VAE samples): the FD
    ratio is undefined (None, valid JSON) and the t-SNE panel says so instead of crashing sklearn."""
    from manifpt import viz

    y = np.repeat([0, 1, 2], 20)
    const = np.zeros((60, 6))
    r = metrics.fd_ratio(const, y)
    assert r["fdr"] is None and r["intra"] == 0
    g = np.random.default_rng(3)
    panels = {"zeros": (const, y), "points": (g.standard_normal((60, 6)) + y[:, None], y), "nan": (const + np.nan, y)}
    path = viz.tsne_figure(panels, ["a", "b", "c"], tmp_path / "tsne.png")
    assert path.stat().st_size > 0


def test_nmi_accuracy_confusion():
    g = np.random.default_rng(2)
    x = np.concatenate([g.standard_normal((50, 4)) + 8 * k for k in range(3)])
    y = np.repeat([5, 6, 7], 50)
    assert metrics.nmi(x, y) == pytest.approx(1.0)
    assert metrics.nmi(g.standard_normal((150, 4)), y) < 0.2
    assert metrics.accuracy([1, 2, 3, 3], [1, 2, 3, 0]) == 0.75
    assert metrics.mean_std([0.5, 0.7]) == pytest.approx((0.6, np.std([0.5, 0.7], ddof=1)))
    assert metrics.mean_std([0.4]) == (0.4, 0.0)
    cm = metrics.confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    with pytest.raises(ValueError, match="non-empty and of one shape"):
        metrics.accuracy([1], [1, 2])
