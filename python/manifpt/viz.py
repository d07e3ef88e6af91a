"""Figures: t-SNE panels (the paper's Fig. 1), confusion matrices, artifact triplets (Figs. 3-5).
All written atomically as PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    from .io import atomic_write

    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    _plt().close(fig)
    return Path(path)


def tsne_figure(panels: dict[str, tuple[np.ndarray, np.ndarray]], class_names: list[str], path: Path, seed: int = 0,
                max_points: int = 1000) -> Path:
    """One t-SNE scatter per panel: {title: (features (N, ...), labels (N,))}. Panels with more than
    `max_points` rows show a seeded random subset of them, and features are reduced to 50 dimensions by PCA
    first (the usual t-SNE practice; it bounds the time on GM-Mini's 7500 x 3072 artifacts)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    plt = _plt()
    colors = plt.get_cmap("tab20")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    for ax, (title, (feats, labels)) in zip(axes[0], panels.items()):
        x = np.asarray(feats, dtype=np.float32).reshape(len(feats), -1)
        labels = np.asarray(labels)
        if len(x) > max_points:
            keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:max_points])
            x, labels = x[keep], labels[keep]
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
        if not np.isfinite(x).all() or np.ptp(x, axis=0).max(initial=0) == 0:
            # every image has the same features (e.g. no saturated pixel for McCloskey18): nothing to embed,
            # and t-SNE on it divides by a zero spread (NaN coordinates; sklearn has crashed on them)
            ax.text(0.5, 0.5, "constant features" if np.isfinite(x).all() else "non-finite features",
                    ha="center", va="center", transform=ax.transAxes)
            continue
        if x.shape[1] > 50 and len(x) > 50:
            x = PCA(50, random_state=seed).fit_transform(x)
        perplexity = float(max(2, min(30, (len(x) - 1) // 3)))
        emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
        for k, name in enumerate(class_names):
            m = labels == k
            ax.scatter(emb[m, 0], emb[m, 1], s=6, label=name, color=colors(k % 20))
    shown = [ax for ax in axes[0] if ax.collections]  # the legend goes on the last panel with points
    if shown:
        shown[-1].legend(fontsize=7, markerscale=2, loc="best")
    return _save(fig, path)


def confusion_figure(cm: np.ndarray, class_names: list[str], path: Path, title: str = "") -> Path:
    plt = _plt()
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.6 * k))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(k), class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)


def _show(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) -> displayable (H, W, 3) in [0, 1]; artifacts are rescaled symmetrically around 0.5."""
    x = img.detach().float()
    if x.min() < 0:
        x = 0.5 + 0.5 * x / x.abs().max().clamp_min(1e-12)
    return x.clamp(0, 1).permute(1, 2, 0).numpy()


def triplet_figure(fakes: torch.Tensor, nearest: torch.Tensor, artifacts: dict[str, torch.Tensor], row_titles: list[str],
                   path: Path) -> Path:
    """Rows of (generated x_G, nearest real x*, artifact in each space) like the paper's Figs. 3-5.
    Image-shaped artifacts with 3 channels are shown as images (freq: log-magnitude difference)."""
    plt = _plt()
    cols = 2 + len(artifacts)
    fig, axes = plt.subplots(len(fakes), cols, figsize=(2.0 * cols, 2.0 * len(fakes)), squeeze=False)
    for r in range(len(fakes)):
        panels = [("x_G", fakes[r]), ("x* (nearest real)", nearest[r])] + [(f"a ({s})", a[r]) for s, a in artifacts.items()]
        for c, (title, img) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(_show(img))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
        axes[r][0].set_ylabel(row_titles[r], fontsize=8)
    return _save(fig, path)


def robustness_figure(rows: list[dict], corruptions: dict[str, tuple], path: Path) -> Path:
    """Accuracy against strength, one panel per corruption kind, one line per method (rows of the robustness study)."""
    plt = _plt()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    acc = {(r["method"], r["corruption"], r["strength"]): r["accuracy"] for r in rows}
    fig, axes = plt.subplots(1, len(corruptions), figsize=(3.2 * len(corruptions), 3), squeeze=False)
    for ax, (kind, levels) in zip(axes[0], corruptions.items()):
        for m in methods:
            ys = [acc[(m, "clean", 0)]] + [acc[(m, kind, s)] for s in levels]
            ax.plot(range(len(levels) + 1), [100 * a for a in ys], marker="o", label=m)
        ax.set_xticks(range(len(levels) + 1), ["clean", *map(str, levels)])
        ax.set_title(kind)
        ax.set_ylim(0, 100)
    axes[0][0].set_ylabel("accuracy %")
    axes[0][-1].legend(fontsize=7)
    return _save(fig, path)


def bench_figure(rows, sgemm: dict[str, float], path: Path) -> Path:
    """Effective GFLOP/s of the projection, FAISS and torch.cdist per shape, with the measured sgemm rate."""
    plt = _plt()
    labels = [f"{r.m}x{r.n}x{r.d}" + ("" if r.cpu_path == "auto" else f"\n{r.cpu_path}") for r in rows]
    series = {
        "manifpt (exact)": [r.ours_gflops for r in rows],
        "FAISS IndexFlatL2": [r.faiss_gflops or 0 for r in rows],
        "torch cdist+argmin": [(2 * r.m * r.n * r.d / r.cdist_s / 1e9) if r.cdist_s else 0 for r in rows],
    }
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(series)
    for k, (name, vals) in enumerate(series.items()):
        ax.bar([i + k * width for i in range(len(rows))], vals, width, label=name)
    ax.axhline(max(sgemm.values()), color="k", ls="--", lw=1, label="sgemm rate (measured)")
    ax.set_xticks([i + width for i in range(len(rows))], labels)
    ax.set_xlabel("M x N x D")
    ax.set_ylabel("effective GFLOP/s (2MND / time)")
    ax.set_title("Nearest-real projection + artifact, CPU")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
